"""brief -> Telegram HTML in the chat's language; every external string is escaped here."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from news.semantic import topic_label
from news.text import TITLE_CHARS, clip
from news.topics import fold
from news.types import NAME_CHARS, Brief, Impact, Level, Player

LIMIT = 4096
MAX_SOURCES = 10
MAX_FLAG_TOPICS = 3
MAX_TOPIC_CHARS = 60
RLM = "\u200f"  # right-to-left mark: makes a paragraph start right to left
FLAGS: dict[int, str] = {1: "🔴", 2: "🟡", 3: "⚪"}
DASH = " — "  # between a name, a level or a flag and its one line, as in the seed

Translate = Callable[[str], str]


@dataclass(frozen=True)
class SourceRef:
    """One source that reported the story, as the reader sees it."""

    name: str
    link: str
    published: datetime | None


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def _link(ref: SourceRef) -> str:
    name = _e(clip(ref.name, NAME_CHARS))  # rows stored before names were capped
    if ref.link.startswith(("http://", "https://")):
        return f'<a href="{html.escape(ref.link, quote=True)}">{name}</a>'
    return name


def headline_link(title: str, link: str) -> str:
    """A headline linked to its article where the link is http(s)."""
    return _link(SourceRef(title, link, None))


def flag_line(level: Level, topics: list[str], t: Translate) -> str:
    """`🔴 重点追踪 · SoftBank`: the first thing the reader sees."""
    label = f"{FLAGS[level]} <b>{_e(t(f'level.{level}'))}</b>"
    shown = [_e(_shorten(topic_label(topic), MAX_TOPIC_CHARS))
             for topic in topics[:MAX_FLAG_TOPICS]]
    if len(topics) > MAX_FLAG_TOPICS:
        shown.append(f"+{len(topics) - MAX_FLAG_TOPICS}")
    return " · ".join([label, *shown])


def _shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut with an ellipsis (before escaping, so no entity is cut)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def render_brief(
    brief: Brief,
    *,
    origin: str,
    level: Level,
    topics: list[str],
    sources: list[SourceRef],
    t: Translate,
    rtl: bool = False,
) -> str:
    """The sections of SPEC §5 in the seed's order; empty ones are left out, label and all,
    and optional ones are dropped, last first, to fit 4096."""
    core_label = t("brief.core_point")
    if origin == "offline":
        core_label = f"{core_label} · {t('brief.original_text')}"
    head = [flag_line(level, topics, t), f"<b>{_e(clip(brief.headline, TITLE_CHARS))}</b>"]
    core = f"<b>{_e(core_label)}</b>\n{{core}}"
    optional: list[str] = []
    players = [_player_line(p) for p in brief.key_players if p.name.strip()]
    if players:
        optional.append(f"<b>{_e(t('brief.key_players'))}</b>\n" + "\n".join(players))
    impacts = [_impact_line(i, t) for i in brief.industry_impact if i.sector.strip()]
    if impacts:
        optional.append(f"<b>{_e(t('brief.industry_impact'))}</b>\n" + "\n".join(impacts))
    tracking = f"{FLAGS[level]} {_e(t(f'level.{level}'))}"
    if brief.tracking_reason.strip() and origin != "offline":
        tracking += f"{DASH}{_e(brief.tracking_reason.strip())}"
    optional.append(f"<b>{_e(t('brief.tracking'))}</b>\n{tracking}")
    source_lines = [
        f"• {_link(ref)}" + (f", {ref.published:%Y-%m-%d}" if ref.published else "")
        for ref in sources[:MAX_SOURCES]
    ]
    if len(sources) > MAX_SOURCES:
        source_lines.append(f"• +{len(sources) - MAX_SOURCES}")
    tail = [f"<b>{_e(t('brief.sources'))}</b>\n" + "\n".join(source_lines)] if sources else []
    return fit_sections(head, core, brief.core_point, optional, tail,
                        right_to_left if rtl else str)


def _player_line(player: Player) -> str:
    """`软银 (SoftBank) — role`: the reader's name, with the source's spelling when it differs."""
    name, spelled = player.name.strip(), player.name_in_source.strip()
    line = f"• <b>{_e(name)}</b>"
    if spelled and fold(spelled) != fold(name):
        line += f" ({_e(spelled)})"
    return line + (f"{DASH}{_e(player.role.strip())}" if player.role.strip() else "")


def _impact_line(impact: Impact, t: Translate) -> str:
    """`sector: high — why`, the level as a word and the separator as the chat's language
    writes them (`Semi-conducteurs : élevé`, `半导体：高`)."""
    separator = _e(t("impact.separator"))
    line = f"• {_e(impact.sector.strip())}{separator}{_e(t('impact.' + impact.level))}"
    return line + (f"{DASH}{_e(impact.why.strip())}" if impact.why.strip() else "")


def right_to_left(message: str) -> str:
    """Each line opened by a right-to-left mark, so it starts at the right (Arabic chats)."""
    return "\n".join(RLM + line if line else line for line in message.split("\n"))


def units(text: str) -> int:
    """Telegram counts UTF-16 code units: an emoji (a surrogate pair) counts twice."""
    return len(text.encode("utf-16-le")) // 2


def visible_length(markup: str) -> int:
    """The length Telegram checks against LIMIT: the text left after entity parsing (tags
    out, `&amp;` one character), in UTF-16 code units."""
    return units(html.unescape(_strip_tags(markup)))


def fit_lines(
    head: str,
    lines: Sequence[str],
    *,
    limit: int = LIMIT,
    more: Callable[[Sequence[str]], str] | None = None,
    finish: Callable[[str], str] = str,
) -> str:
    """The head, then as many of the lines as fit, whole and in order, joined by newlines and
    finished (right_to_left); `more` writes one last line for those left out (`• +3`), within
    the limit too. A line is never cut, so neither is a tag or an entity in it; the head (and
    `more`'s line) is kept even where that alone is too long."""
    def message(kept: int) -> str:
        rest = [more(lines[kept:])] if more is not None and kept < len(lines) else []
        return finish("\n".join([head, *lines[:kept], *rest]))

    whole = message(len(lines))
    if visible_length(whole) <= limit:
        return whole
    return message(_longest(lambda kept: visible_length(message(kept)) <= limit,
                            len(lines) - 1))


def fit_sections(
    head: list[str],
    core: str,
    core_text: str,
    optional: list[str],
    tail: list[str],
    finish: Callable[[str], str] = str,
) -> str:
    """Sections joined by blank lines: the head, the core (`core` with `{core}` standing for
    the escaped core_text), the optional sections, the tail. What does not fit LIMIT goes:
    optional sections from the end, then the core text is shortened with an ellipsis. The
    core is cut before it is escaped, so no entity is cut in half."""
    def build(sections: list[str], text: str) -> str:
        return finish("\n\n".join([*head, core.format(core=_e(text)), *sections, *tail]))

    sections = list(optional)
    message = build(sections, core_text)
    while visible_length(message) > LIMIT and sections:
        sections.pop()
        message = build(sections, core_text)
    if visible_length(message) <= LIMIT:
        return message
    kept = _longest(lambda cut: visible_length(
        build(sections, core_text[:cut].rstrip() + "…")) <= LIMIT, len(core_text))
    return build(sections, core_text[:kept].rstrip() + "…")


def _longest(fits: Callable[[int], bool], most: int) -> int:
    """The largest n in 0..most with fits(n), for a test that holds up to some n and fails
    above it (0 when none fits): a binary search, as each try renders a whole message."""
    low, high = 0, most
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _strip_tags(markup: str) -> str:
    out, inside = [], False
    for ch in markup:
        if ch == "<":
            inside = True
        elif ch == ">" and inside:
            inside = False
        elif not inside:
            out.append(ch)
    return "".join(out)
