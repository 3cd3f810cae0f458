"""news.why: why a story reached a chat or not, as tables of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from news.briefs import Brief
from news.matching import searchable
from news.schedule import Preferences
from news.topics import parse
from news.why import (
    Hit,
    Miss,
    StoryFacts,
    TopicFacts,
    Verdict,
    explain,
    hits,
    level_why,
    miss,
    verdict,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
HEADLINE = "SoftBank pledges billions for an AI valley in Hauts-de-France"
TEXT = "Regional president Xavier Bertrand called it a game-changer. Data centers come first."
STORY = StoryFacts(T0, HEADLINE, TEXT, (1,), ("Test News",))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SoftBank", [Hit("SoftBank", "headline")]),
        ("softbank Bertrand", [Hit("softbank", "headline"), Hit("Bertrand", "text")]),
        ('"data centers" OR Nvidia', [Hit("data centers", "text")]),
        ("SoftBank -crypto", [Hit("SoftBank", "headline")]),
        ("Nvidia", []),
        ("bank", []),  # whole words only, as the matcher
    ],
)
def test_hits_say_which_term_matched_where(query: str, expected: list[Hit]) -> None:
    assert hits(query, HEADLINE, TEXT) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SoftBank", None),
        ("SoftBank Nvidia", Miss("missing", "Nvidia")),
        ("Nvidia OR Arm", Miss("missing", "Nvidia")),
        ("SoftBank -Bertrand", Miss("excluded", "Bertrand")),
        ("SoftBank -(crypto OR valley)", Miss("excluded", "valley")),
        ("SoftBank -crypto", None),
        ('(SoftBank OR 软银) "AI valley"', None),
    ],
)
def test_miss_names_the_term_missing_or_excluded(query: str, expected: Miss | None) -> None:
    assert miss(parse(query), searchable(f"{HEADLINE}\n{TEXT}")) == expected


def topic(query: str, created: datetime = T0 - timedelta(days=1),
          updated: datetime | None = None, muted: frozenset[int] = frozenset()) -> TopicFacts:
    return TopicFacts(query, created, updated or created, muted)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (topic("SoftBank Nvidia"), Verdict("SoftBank Nvidia", "missing", "Nvidia")),
        (topic("SoftBank -Hauts-de-France"),
         Verdict("SoftBank -Hauts-de-France", "excluded", "Hauts-de-France")),
        (topic("SoftBank", created=T0 + timedelta(hours=1)), Verdict("SoftBank", "before")),
        (topic("SoftBank", muted=frozenset({1})), Verdict("SoftBank", "muted")),
        (topic("SoftBank", muted=frozenset({2})), Verdict("SoftBank", "matches")),
        (topic("SoftBank", updated=T0 + timedelta(hours=1)), Verdict("SoftBank", "changed")),
        (topic("SoftBank"), Verdict("SoftBank", "matches")),
    ],
)
def test_verdict_per_topic(facts: TopicFacts, expected: Verdict) -> None:
    assert verdict(facts, STORY) == expected


NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_explain_unknown_story_and_chat_without_topics() -> None:
    assert explain(None, [topic("SoftBank")], None, None, Preferences(), NOW).kind == "unknown"
    assert explain(STORY, [], None, None, Preferences(), NOW).kind == "no_topics"


def test_explain_held_for_the_digest_says_the_next_digest() -> None:
    prefs = Preferences(mode="digest", digest_time="08:00", timezone="Asia/Shanghai")
    found = explain(STORY, [topic("SoftBank")], "digest", NOW, prefs, NOW)
    # 10:00 UTC is 18:00 in Shanghai: today's 08:00 has passed, tomorrow's is next
    assert (found.kind, found.state) == ("held", "digest")
    assert found.until == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def test_explain_held_for_quiet_hours_says_when_they_end() -> None:
    until = NOW + timedelta(hours=3)
    found = explain(STORY, [topic("SoftBank")], "quiet", until, Preferences(), NOW)
    assert (found.kind, found.state, found.until) == ("held", "quiet", until)


def test_explain_lists_every_topic_verdict() -> None:
    found = explain(STORY, [topic("Nvidia"), topic("SoftBank", muted=frozenset({1}))], None,
                    None, Preferences(), NOW)
    assert found.kind == "topics"
    assert [v.reason for v in found.verdicts] == ["missing", "muted"]
    assert explain(STORY, [topic("SoftBank")], "sent", None, Preferences(), NOW).kind == "sent"


def brief(level: int, headline: str = HEADLINE, reason: str = "") -> Brief:
    return Brief(headline=headline, core_point="x", tracking_level=level,  # type: ignore[arg-type]
                 tracking_reason=reason)


@pytest.mark.parametrize(
    ("written", "origin", "sources", "published", "expected"),
    [
        (brief(2, reason="Large investment"), "llm", 1, None, (2, "Large investment", False,
                                                                False, False)),
        (brief(3), "offline", 1, T0, (2, "", True, False, True)),  # headline names SoftBank
        (brief(3, headline="A valley for AI"), "offline", 1, T0, (3, "", True, False, False)),
        (brief(3, headline="A valley"), "offline", 2, T0 - timedelta(days=5),
         (3, "", True, True, False)),  # two sources, but published days before: lowered
        (brief(1), "offline", 3, T0, (1, "", True, False, False)),
    ],
)
def test_level_why(written: Brief, origin: str, sources: int, published: datetime,
                   expected: tuple[int, str, bool, bool, bool]) -> None:
    said = level_why(written, origin, ["SoftBank"], sources, published, T0)
    assert (said.level, said.reason, said.offline, said.lowered, said.raised) == expected


def test_a_press_answer_is_plain_text_within_telegrams_200_units() -> None:
    from handlers.common import button_note

    said = "<b>Why this alert</b>\n" + "🟡 Keep &amp; watching " * 30
    note = button_note(said)
    assert note.startswith("Why this alert\n🟡 Keep & watching") and note.endswith("…")
    assert len(note.encode("utf-16-le")) <= 400 < len(said.encode("utf-16-le"))
    assert button_note("<i>short</i>") == "short"
