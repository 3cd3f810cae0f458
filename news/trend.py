"""A topic's matched stories per day, stacked by level, drawn as a PNG (matplotlib, Agg).

Pure functions of their inputs, but for `trend_chart`, which reads the stored stories first.
"""

from __future__ import annotations

import html
import io
import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_skeleton
from sqlalchemy import Engine

from news.briefs import Brief, Level, adjusted_level
from news.matching import Matcher, Topic
from news.semantic import topic_label
from news.text import TITLE_CHARS, clip
from storage import trend as stored
from storage.db import session_scope
from storage.models import utcnow
from storage.trend import Candidate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

MAX_DAYS = 90
DEFAULT_DAYS = 30
LEVELS: tuple[Level, ...] = (1, 2, 3)  # SPEC §5: listed from 1, the highest, down
COLORS = {1: "#d93025", 2: "#f2b705", 3: "#c4c7cc"}  # 🔴 🟡 ⚪
TOPIC_CHARS = 50  # in the title, on its own line above the legend
WIDTH, HEIGHT, DPI = 1200, 675, 100  # pixels: wide enough for 90 bars, Telegram's 16:9 preview

# Fonts with CJK glyphs, most common first; DejaVu Sans (matplotlib's own) covers Arabic.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Sans CJK KR",
    "Source Han Sans SC", "Source Han Sans CN", "Source Han Sans", "Noto Sans SC",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "AR PL UMing CN",
)
CJK_FILES = ("cjk", "sourcehan", "wqy", "droidsansfallback", "uming", "ukai")
FALLBACK_FAMILY = "DejaVu Sans"

Translate = Callable[..., str]  # `t(key, **values)`: the catalogue in the chat's language


@dataclass(frozen=True)
class Point:
    """One matched story on the local day it came out, at the level the chat sees it."""

    story_id: int
    day: date
    level: Level
    headline: str
    sources: int


@dataclass(frozen=True)
class Trend:
    """Counts per level per day, oldest day first, and the busiest day with its top story."""

    days: list[date]
    counts: dict[Level, list[int]]
    busiest: date | None
    busiest_count: int
    top_headline: str

    @property
    def total(self) -> int:
        return sum(sum(row) for row in self.counts.values())


def level_of(candidate: Candidate, query: str) -> Level:
    """The level the chat's alert showed (its brief), else the offline rule of SPEC §5."""
    if candidate.brief is not None:
        return adjusted_level(candidate.brief, candidate.origin or "offline", [query])
    sources = len(candidate.texts)
    level: Level = 1 if sources >= 3 else 2 if sources == 2 else 3
    offline = Brief(headline=candidate.title[:300] or "…", core_point="…", tracking_level=level)
    return adjusted_level(offline, "offline", [query])


def matched(candidates: Sequence[Candidate], query: str, tz: ZoneInfo) -> list[Point]:
    """The stories the query matches (any of their items, as /topics counts), on local days."""
    matcher = Matcher([Topic(0, 0, 0, query)])
    points = []
    for candidate in candidates:
        if any(matcher.match(text) for text in candidate.texts):
            headline = candidate.brief.headline if candidate.brief else candidate.title
            points.append(Point(candidate.story_id, candidate.published_at.astimezone(tz).date(),
                                level_of(candidate, query), headline, len(candidate.texts)))
    return points


def window(today: date, days: int) -> list[date]:
    """The last `days` local days, today included, oldest first."""
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def tally(points: Sequence[Point], days: Sequence[date]) -> Trend:
    """Stories per day per level; the busiest day's top story is its highest level, most sources."""
    index = {day: n for n, day in enumerate(days)}
    counts: dict[Level, list[int]] = {level: [0] * len(days) for level in LEVELS}
    by_day: dict[date, list[Point]] = {}
    for point in points:
        if point.day in index:
            counts[point.level][index[point.day]] += 1
            by_day.setdefault(point.day, []).append(point)
    if not by_day:
        return Trend(list(days), counts, None, 0, "")
    # Most stories wins; among equal days the latest, as the reader cares about now.
    busiest = max(by_day, key=lambda day: (len(by_day[day]), day))
    top = min(by_day[busiest], key=lambda p: (p.level, -p.sources, p.story_id))
    return Trend(list(days), counts, busiest, len(by_day[busiest]), top.headline)


def day_label(day: date, language: str, skeleton: str = "MMMd") -> str:
    """`Nov 21`, `11月21日`, `21 nov.`: short dates in the chat's language."""
    try:
        return format_skeleton(skeleton, day, locale=language)
    except (ValueError, LookupError):
        return day.isoformat()


def zone(name: str) -> ZoneInfo:
    """The chat's time zone; a name that no longer resolves counts as UTC."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def since(days: Sequence[date], tz: ZoneInfo) -> datetime:
    """The first instant of the window: midnight of its oldest local day."""
    return datetime.combine(days[0], time(), tzinfo=tz)


@dataclass(frozen=True)
class Chart:
    """What /trend sends: the counts (for the caption) and the PNG, None when nothing matched."""

    trend: Trend
    png: bytes | None


def chart(
    candidates: Sequence[Candidate], *, query: str, days: Sequence[date], tz: ZoneInfo,
    labels: Labels, language: str,
) -> Chart:
    """Match, count and draw: the whole path from stored stories to a PNG."""
    trend = tally(matched(candidates, query, tz), days)
    return Chart(trend, render_png(trend, labels, language) if trend.total else None)


def trend_chart(
    engine: Engine, t: Translate, *, language: str, timezone: str, query: str, days: int,
    now: datetime | None = None,
) -> Chart:
    """The stored stories of the window, matched against the query, counted and drawn."""
    tz = zone(timezone)
    span = window((now or utcnow()).astimezone(tz).date(), days)
    with session_scope(engine) as session:
        rows = stored.candidates(session=session, since=since(span, tz), language=language)
    return chart(rows, query=query, days=span, tz=tz, language=language,
                 labels=Labels.of(t, query, days))


def caption(t: Translate, language: str, query: str, days: int, found: Trend) -> str:
    """The busiest day and its top headline, under the chart."""
    assert found.busiest is not None
    return t("trend.caption", topic=clip(topic_label(query), 100), total=found.total, days=days,
             day=day_label(found.busiest, language, "MMMEd"), count=found.busiest_count,
             headline=clip(found.top_headline, TITLE_CHARS))


@dataclass(frozen=True)
class Labels:
    """The chart's words, already in the chat's language."""

    title: str
    x_axis: str
    y_axis: str
    levels: dict[Level, str]

    @classmethod
    def of(cls, t: Translate, topic: str, days: int) -> Labels:
        """From the catalogue (`t(key, **values)`): title, axes, and `level.1`..`level.3`."""
        def plain(key: str, **values: object) -> str:  # the catalogue escapes for HTML
            return html.unescape(t(key, **values))

        return cls(plain("trend.chart_title", topic=clip(topic_label(topic), TOPIC_CHARS),
                         days=days),
                   plain("trend.axis_day"), plain("trend.axis_count"),
                   {level: plain(f"level.{level}") for level in LEVELS})


@cache
def _font_families(language: str) -> tuple[str, ...]:
    """A CJK font the system has (Japanese shapes for ja), then DejaVu Sans for Arabic.

    matplotlib falls back glyph by glyph along this list. With no CJK font the chart is
    still drawn; CJK characters show as boxes until one is installed (README: fonts-noto-cjk).
    """
    from matplotlib import font_manager

    def available() -> set[str]:
        return {entry.name for entry in font_manager.fontManager.ttflist}

    names = available()
    if not any(family in names for family in CJK_FAMILIES):
        # Installed after matplotlib cached its font list: add the files directly.
        for path in font_manager.findSystemFonts():
            if any(part in path.lower().replace("-", "") for part in CJK_FILES):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        names = available()
    preferred = sorted(CJK_FAMILIES, key=lambda family: not (language == "ja" and "JP" in family))
    cjk = [family for family in preferred if family in names][:1]
    if not cjk:
        log.warning("no CJK font found; charts show CJK text as boxes (install fonts-noto-cjk)")
    return (*cjk, FALLBACK_FAMILY)


_DRAWING = threading.Lock()  # matplotlib's font cache is shared: one chart at a time


def render_png(trend: Trend, labels: Labels, language: str) -> bytes:
    """The stacked bar chart as PNG bytes, WIDTH x HEIGHT pixels, no display needed."""
    with _DRAWING, warnings.catch_warnings():
        # A glyph no installed font has is drawn as a box: not worth failing a chart over.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        figure = draw(trend, labels, language)
        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def draw(trend: Trend, labels: Labels, language: str) -> Figure:
    """The chart as a matplotlib figure on an Agg canvas (tests measure its parts)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    _draw(figure, trend, labels, language, list(_font_families(language)))
    return figure


def _draw(
    figure: Figure, trend: Trend, labels: Labels, language: str, families: list[str]
) -> None:
    from matplotlib.ticker import MaxNLocator

    axes = figure.add_subplot()
    positions = list(range(len(trend.days)))
    bottom = [0] * len(trend.days)
    for level in LEVELS:
        values = trend.counts[level]
        axes.bar(positions, values, bottom=bottom, color=COLORS[level], width=0.8,
                 edgecolor="#80868b" if level == 3 else COLORS[level], linewidth=0.5,
                 label=labels.levels[level])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    step = max(1, round(len(trend.days) / 10))
    ticks = positions[::-1][::step][::-1]  # today always labelled
    axes.set_xticks(ticks, [day_label(trend.days[n], language) for n in ticks],
                    fontfamily=families)
    axes.set_xlim(-0.6, len(trend.days) - 0.4)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(0, max([*bottom, 1]) * 1.12)
    axes.grid(axis="y", color="#e0e0e0", linewidth=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    # The title on its own line, the legend on the next, above the bars: a long topic can
    # fill the title's line without running under the legend, which never hides a bar.
    figure.suptitle(labels.title, fontfamily=families, fontsize=15, x=0.01,
                    horizontalalignment="left")
    axes.set_xlabel(labels.x_axis, fontfamily=families)
    axes.set_ylabel(labels.y_axis, fontfamily=families)
    axes.legend(prop={"family": families}, frameon=False, loc="lower right",
                bbox_to_anchor=(1.0, 1.0), ncols=len(LEVELS), borderaxespad=0.2)
