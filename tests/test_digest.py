"""Digest messages: grouped by topic, level 1 first, whole lines, at most 4096 each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from news.digest import Entry, render_digest
from tests.fakes.telegram_html import parse_html, utf16_len

T0 = datetime(2026, 11, 24, tzinfo=UTC)


def entry(topic: str, level: int, headline: str, minutes: int = 0) -> Entry:
    link = f"http://news.test/{headline}"
    return Entry(topic, level, headline, link, T0 + timedelta(minutes=minutes))


def test_groups_by_topic_highest_level_first() -> None:
    entries = [entry("Nvidia", 3, "n-low"), entry("SoftBank", 2, "s-mid"),
               entry("Nvidia", 1, "n-top"), entry("SoftBank", 2, "s-newer", minutes=5),
               entry("Zeta", 3, "z")]
    [message] = render_digest(entries, "<b>Digest</b>")
    text = parse_html(message)
    assert text.index("Nvidia") < text.index("SoftBank") < text.index("Zeta")
    assert text.index("🔴 n-top") < text.index("⚪ n-low")
    assert text.index("s-newer") < text.index("s-mid"), "same level: newest first"
    assert '<a href="http://news.test/n-top">n-top</a>' in message


def test_escapes_headlines_and_skips_links_that_are_not_http() -> None:
    [message] = render_digest([Entry("A&B <x>", 1, "<b>1 < 2</b>", "javascript:alert(1)", T0)],
                              "H")
    assert "javascript" not in message and "&lt;b&gt;1 &lt; 2&lt;/b&gt;" in message
    assert parse_html(message)


def test_splits_at_4096_on_whole_lines_repeating_the_topic() -> None:
    entries = [entry("SoftBank", 2, f"headline {n} " + "x" * 120, minutes=n) for n in range(100)]
    messages = render_digest(entries, "<b>Digest</b>")
    assert len(messages) > 3
    seen = []
    for message in messages:
        text = parse_html(message)
        assert utf16_len(text) <= 4096
        assert "SoftBank" in text.split("\n")[0] or text.startswith("Digest")
        seen += [line for line in text.split("\n") if line.startswith("🟡")]
    assert len(seen) == 100, "no line lost or cut"


def test_a_topic_followed_by_meaning_is_headed_by_its_meaning() -> None:
    [message] = render_digest([entry('~"data centers"@0.50 -crypto', 1, "farm")], "H")
    assert parse_html(message).split("\n")[2] == "~ data centers -crypto"
