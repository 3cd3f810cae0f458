"""Feed entries to items (news/items.py) and the text helpers they rely on (news/text.py)."""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from news.feeds import parse_feed
from news.items import ItemDraft, clean_link, normalize
from news.text import (
    clean_spaces,
    first_sentence,
    has_sentences,
    html_to_text,
    lead,
    sentences,
    without_headline,
)
from tests.fakes.feeds import atom, rss

FEED = "https://news.example.test/feeds/tech.xml"

# --- clean_link ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (
            "https://www.reuters.com/technology/softbank-pledges/?utm_source=twitter"
            "&utm_medium=social#comments",
            "https://www.reuters.com/technology/softbank-pledges/#comments",
        ),
        (
            "https://www.lemonde.fr/economie/article/2025/05/06/softbank.html?xtor=RSS-3208"
            "&fbclid=IwAR0abc",
            "https://www.lemonde.fr/economie/article/2025/05/06/softbank.html?xtor=RSS-3208",
        ),
        ("https://news.ycombinator.com/item?id=42&gclid=xyz", "https://news.ycombinator.com/item?id=42"),
        (
            "https://example.com/search?q=%E8%BD%AF%E9%93%B6&page=2&mc_cid=abc&_hsenc=p2",
            "https://example.com/search?q=%E8%BD%AF%E9%93%B6&page=2",
        ),
        ("https://example.com/a?UTM_Campaign=x&ID=7", "https://example.com/a?ID=7"),
        ("https://example.com/a?b=2&a=1&utm_term=z", "https://example.com/a?b=2&a=1"),
        ("https://example.com/a?a=1&a=2", "https://example.com/a?a=1&a=2"),
        (
            "https://example.com/a?yclid=1&igshid=2&ocid=3&cmpid=4&ref=5&fbclid=6",
            "https://example.com/a",
        ),
        # the fragment stays: Scripting News tells a day's posts apart by it alone
        ("https://example.com/page#section-2", "https://example.com/page#section-2"),
        ("http://scripting.com/2017/06/24.html?utm_source=rss#a100632",
         "http://scripting.com/2017/06/24.html#a100632"),
        ("  https://example.com/a?id=1  ", "https://example.com/a?id=1"),
        ("https://example.com/a?q=a+b&utm_medium=y", "https://example.com/a?q=a+b"),
        ("https://example.com/a?x=%2F&y=", "https://example.com/a?x=%2F&y="),
        ("https://example.com/a", "https://example.com/a"),
    ],
)
def test_clean_link(link: str, expected: str) -> None:
    assert clean_link(link) == expected
    assert clean_link(expected) == expected


# --- normalize -------------------------------------------------------------------------------


def struct(value: datetime) -> time.struct_time:
    """How feedparser hands dates over: a UTC struct_time."""
    return value.astimezone(UTC).timetuple()


WHEN = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_guid_prefers_the_entry_id() -> None:
    draft = normalize({"id": " urn:uuid:1 ", "link": "/a", "title": "SoftBank"}, FEED)
    assert draft is not None and draft.guid == "urn:uuid:1"


@pytest.mark.parametrize("entry_id", [None, "", "   "])
def test_guid_falls_back_to_the_cleaned_link(entry_id: str | None) -> None:
    entry = {"id": entry_id, "link": "/2025/softbank.html?utm_source=rss#top", "title": "SoftBank"}
    draft = normalize(entry, FEED)
    assert draft is not None
    assert draft.link == "https://news.example.test/2025/softbank.html#top"
    assert draft.guid == draft.link


def test_guid_without_id_or_link_is_a_stable_hash_of_the_text() -> None:
    entry = {"title": "软银承诺向法国数据中心投资100亿美元", "summary": "<p>软银周一表示。</p>"}
    first = normalize(entry, FEED)
    again = normalize(dict(entry), FEED)
    other = normalize({**entry, "title": "英伟达股价上涨"}, FEED)
    assert first is not None and again is not None and other is not None
    assert first.guid.startswith("sha1:") and len(first.guid) == len("sha1:") + 40
    assert int(first.guid.removeprefix("sha1:"), 16) >= 0
    assert first.guid == again.guid
    assert other.guid != first.guid
    assert first.link == ""


def test_guid_is_capped() -> None:
    draft = normalize({"id": "x" * 5000, "title": "t"}, FEED)
    assert draft is not None and draft.guid == "x" * 2000


def test_relative_links_resolve_against_the_feed() -> None:
    cases = {
        "/a": "https://news.example.test/a",
        "b.html": "https://news.example.test/feeds/b.html",
        "//cdn.example.test/c": "https://cdn.example.test/c",
        "http://other.test/d?fbclid=1": "http://other.test/d",
    }
    for raw, expected in cases.items():
        draft = normalize({"link": raw, "title": "t"}, FEED)
        assert draft is not None and draft.link == expected


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("<b>Breaking:</b> SoftBank &amp; OpenAI", "Breaking: SoftBank & OpenAI"),
        ("<p>软银承诺</p><p>投资法国</p>", "软银承诺 投资法国"),
        ("  Сбербанк   увеличил\nприбыль  ", "Сбербанк увеличил прибыль"),
        ("AT&amp;T &lt;3 DirecTV", "AT&T <3 DirecTV"),
        ("<script>alert(1)</script>Apple results", "Apple results"),
        ("أرامكو &#8211; أرباح", "أرامكو – أرباح"),
    ],
)
def test_title_is_plain_text_on_one_line(title: str, expected: str) -> None:
    draft = normalize({"title": title, "link": "/x"}, FEED)
    assert draft is not None and draft.title == expected


def test_title_falls_back_to_the_first_line_of_the_text() -> None:
    draft = normalize({"summary": "<p>First paragraph " + "x" * 300 + "</p><p>Second</p>"}, FEED)
    assert draft is not None
    assert draft.title == ("First paragraph " + "x" * 300)[:199] + "…"
    assert draft.summary.endswith("\nSecond")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"summary": "Short teaser"}, "Short teaser"),
        (
            {"summary": "Short teaser",
             "content": [{"value": "<p>Full text of the article.</p><p>Second paragraph.</p>"}]},
            "Full text of the article.\nSecond paragraph.",
        ),
        (
            {"summary": "<p>A much longer summary than the content has.</p>",
             "content": [{"value": "Tiny"}]},
            "A much longer summary than the content has.",
        ),
        (
            {"content": [{"value": "one"}, {"value": "<div>the longest of three</div>"},
                         {"value": "three"}]},
            "the longest of three",
        ),
        ({"summary": None, "content": [{"value": None}]}, ""),
    ],
)
def test_summary_is_the_longest_text(entry: dict[str, Any], expected: str) -> None:
    draft = normalize({"title": "t", **entry}, FEED)
    assert draft is not None and draft.summary == expected


def test_summary_is_capped() -> None:
    draft = normalize({"title": "t", "summary": "y" * 30000}, FEED)
    assert draft is not None and len(draft.summary) == 20000


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"published_parsed": struct(WHEN)}, WHEN),
        ({"updated_parsed": struct(WHEN)}, WHEN),
        (
            {"published_parsed": struct(WHEN), "updated_parsed": struct(WHEN + timedelta(days=1))},
            WHEN,
        ),
        ({"published_parsed": None, "updated_parsed": struct(WHEN)}, WHEN),
        ({"published_parsed": "garbage", "updated_parsed": struct(WHEN)}, WHEN),
        ({}, None),
        ({"published_parsed": "garbage"}, None),
    ],
)
def test_published_at_is_aware_utc(entry: dict[str, Any], expected: datetime | None) -> None:
    draft = normalize({"title": "t", **entry}, FEED)
    assert draft is not None
    assert draft.published_at == expected
    if expected is not None:
        assert draft.published_at is not None and draft.published_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "entry",
    [
        {},
        {"title": "   ", "summary": "<p> </p>"},
        {"title": "<img src='x.png'>"},
        {"link": "https://example.com/only-a-link", "id": "urn:1"},
        {"title": "\u200b", "content": [{"value": "<script>track()</script>"}]},
    ],
)
def test_entries_without_text_are_dropped(entry: dict[str, Any]) -> None:
    assert normalize(entry, FEED) is None


def test_entries_from_real_rss_and_atom() -> None:
    tokyo = timezone(timedelta(hours=9))
    items = [{
        "title": "ソフトバンク、仏AIデータセンターに投資 <速報>",
        "link": "/2025/05/06/softbank?utm_source=rss",
        "guid": "urn:uuid:sb-1",
        "description": "<p>ソフトバンクグループは月曜日、発表した。</p>",
        "pub_date": datetime(2025, 5, 6, 16, 8, 9, tzinfo=tokyo),
    }]
    rss_feed = parse_feed(rss("News", items).encode())
    atom_feed = parse_feed(atom("News", items).encode())
    expected = ItemDraft(
        guid="urn:uuid:sb-1",
        link="https://news.example.test/2025/05/06/softbank",
        title="ソフトバンク、仏AIデータセンターに投資 <速報>",
        summary="ソフトバンクグループは月曜日、発表した。",
        published_at=WHEN,
    )
    for parsed in (rss_feed, atom_feed):
        draft = normalize(parsed.entries[0], FEED)
        assert draft is not None
        assert draft.guid == expected.guid
        assert draft.link == expected.link
        assert draft.summary == expected.summary
        assert draft.published_at == expected.published_at
        assert draft.title == expected.title


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<p>Hello &amp; <b>world</b></p>", "Hello & world"),
        ("<p>One</p><p>Two</p>", "One\nTwo"),
        ("Line1<br>Line2<br/>Line3", "Line1\nLine2\nLine3"),
        ("<ul><li>软银</li><li>英伟达</li></ul>", "软银\n英伟达"),
        ("<p>Before</p><script>var x = '<p>no</p>';</script><p>After</p>", "Before\nAfter"),
        ("<style>p { color: red }</style><p>Styled</p>", "Styled"),
        ("<noscript>Enable JS</noscript>Body", "Body"),
        ("<template><p>hidden</p></template>Shown", "Shown"),
        ("Tom &amp; Jerry &lt;3", "Tom & Jerry <3"),
        ("AT&T &#x2014; T-Mobile &mdash; Verizon", "AT&T — T-Mobile — Verizon"),
        ("&lt;b&gt;not a tag&lt;/b&gt;", "<b>not a tag</b>"),
        ("Rates < 5% as inflation cools", "Rates < 5% as inflation cools"),
        ("<p>a</p>\n\n\n<p>b</p>", "a\nb"),
        ("  lots   of\t\tspace  ", "lots of space"),
        ("<h1>Title</h1>Body text", "Title\nBody text"),
        ("x\r\ny", "x\ny"),
        ("", ""),
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup) == expected


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<p>Protection des données&nbsp;personnelles</p>", "Protection des données personnelles"),
        ("Le\u202fprix\u00a0: 20\u00a0%", "Le prix : 20 %"),
    ],
)
def test_non_breaking_spaces_become_spaces(markup: str, expected: str) -> None:
    assert html_to_text(markup) == expected


def test_clean_spaces_drops_control_characters() -> None:
    assert clean_spaces("Soft\x00Bank\x07 \u200bshares\n\n\nrise") == "SoftBank shares\nrise"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "First one. Second one! Third? Fourth.",
            ["First one.", "Second one!", "Third?", "Fourth."],
        ),
        (
            "软银承诺投资。英伟达股价上涨！市场观望？最后一句",
            ["软银承诺投资。", "英伟达股价上涨！", "市场观望？", "最后一句"],
        ),
        ("Paragraph one\nParagraph two. Still two.", ["Paragraph one", "Paragraph two.",
                                                      "Still two."]),
        ("ソフトバンクは発表した。株価は上昇。", ["ソフトバンクは発表した。", "株価は上昇。"]),
        ("", []),
        ("   \n  ", []),
    ],
)
def test_sentences(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


EN = ("SoftBank pledged $10bn on Monday. The money goes to French data centres. "
      "Macron welcomed it. Shares rose 3%.")
ZH = "软银周一承诺投资100亿美元。资金将用于法国数据中心。马克龙表示欢迎。软银股价上涨3%。"


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        (EN, {}, "SoftBank pledged $10bn on Monday. The money goes to French data centres. "
                 "Macron welcomed it."),
        (EN, {"max_sentences": 1}, "SoftBank pledged $10bn on Monday."),
        (EN, {"max_chars": 40}, "SoftBank pledged $10bn on Monday."),
        ("One. Two. Three. Four.", {"max_chars": 10}, "One. Two."),
        ("One. Two. Three. Four.", {}, "One. Two. Three."),
        ("", {}, ""),
    ],
)
def test_lead(text: str, kwargs: dict[str, int], expected: str) -> None:
    assert lead(text, **kwargs) == expected


def test_lead_chinese() -> None:
    two = lead(ZH, max_sentences=2)
    assert two.startswith("软银周一承诺投资100亿美元。")
    assert "资金将用于法国数据中心。" in two
    assert "马克龙" not in two
    assert lead(ZH, max_sentences=1) == "软银周一承诺投资100亿美元。"


def test_lead_chinese_has_no_spaces_between_sentences() -> None:
    assert lead(ZH, max_sentences=2) == "软银周一承诺投资100亿美元。资金将用于法国数据中心。"


@pytest.mark.parametrize(
    ("text", "max_chars"),
    [
        ("A" * 1000, 600),
        ("软" * 900, 600),
        ("Сбербанк " * 200, 100),
    ],
)
def test_lead_cuts_with_an_ellipsis(text: str, max_chars: int) -> None:
    cut = lead(text, max_chars=max_chars)
    assert cut.endswith("…")
    assert len(cut) <= max_chars
    assert text.startswith(cut[:-1].rstrip())


def test_clean_spaces_agrees_with_the_character_by_character_definition() -> None:
    def by_character(text: str) -> str:
        spaced = (" " if ch.isspace() and ch != "\n" else ch for ch in text)
        kept = "".join(ch for ch in spaced if ch in " \n" or ch.isprintable())
        lines = (re.sub(" +", " ", line).strip() for line in kept.split("\n"))
        return "\n".join(line for line in lines if line)

    rng = random.Random(11)
    alphabet = list("ab ,.\n\t\r\x0b\x0c\x00\x07\x1f\x7f\x85\xa0\u1680\u2000\u2028\u2029\u200b"
                    "\u202f\u205f\u3000\ufeff\u00e9\u4e2d")
    for _ in range(5000):
        sample = "".join(rng.choices(alphabet, k=rng.randint(0, 30)))
        assert clean_spaces(sample) == by_character(sample), repr(sample)


def test_lazy_sentences_agree_with_splitting_the_whole_text() -> None:
    """sentences(), first_sentence() and has_sentences() stop early; the oracle splits all."""
    def by_splitting(text: str) -> list[str]:
        pieces = (piece.strip() for block in text.split("\n")
                  for piece in re.split(r"(?<=[.!?。！？])\s+|(?<=[。！？])", block))
        return [piece for piece in pieces if piece]

    rng = random.Random(13)
    alphabet = list("ab .!?。！？\n\t")
    for _ in range(5000):
        sample = "".join(rng.choices(alphabet, k=rng.randint(0, 25)))
        expected = by_splitting(sample)
        assert sentences(sample) == expected, repr(sample)
        assert first_sentence(sample) == (expected[0] if expected else ""), repr(sample)
        for count in range(5):
            assert has_sentences(sample, count) == (len(expected) >= count), repr(sample)


# --- dates feedparser misreads ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2020/1/10 14:33:00", datetime(2020, 1, 10, 14, 33, tzinfo=UTC)),  # a Chinese forum
        ("2020/01/10 14:33:00 +0800", datetime(2020, 1, 10, 6, 33, tzinfo=UTC)),
        ("2020/1/10 14:33", datetime(2020, 1, 10, 14, 33, tzinfo=UTC)),
        ("2020-01-10 14:33", datetime(2020, 1, 10, 14, 33, tzinfo=UTC)),
        ("2020-01-10 14:33 GMT", datetime(2020, 1, 10, 14, 33, tzinfo=UTC)),
        ("2020-01-10 14:33 +08:00", datetime(2020, 1, 10, 6, 33, tzinfo=UTC)),
        ("2020-01-10 14:33:05 -0500", datetime(2020, 1, 10, 19, 33, 5, tzinfo=UTC)),
        ("Fri, 10 Jan 2020 14:33:00 +0800", datetime(2020, 1, 10, 6, 33, tzinfo=UTC)),
    ],
)
def test_numeric_dates_are_read_as_written(written: str, expected: datetime) -> None:
    """feedparser alone takes `2020/1/10 14:33:00` for the 1st of the current month."""
    body = ('<?xml version="1.0" encoding="gb2312"?><rss version="2.0"><channel>'
            "<title>论坛</title><item><title>帖子</title><link>http://bbs.test/1</link>"
            f"<pubDate>{written}</pubDate></item></channel></rss>")
    feed = parse_feed(body.encode("gb2312"))
    draft = normalize(feed.entries[0], FEED)
    assert draft is not None and draft.published_at == expected


# --- the headline said once ----------------------------------------------------------------

QUOKKA = "Quokka Selfies & the ‘Smile’ Myth"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # an article page's extracted text opens with its <h1>
        (f"{QUOKKA}\nFrom the BBC: the quokka is not smiling. It is panting.",
         "From the BBC: the quokka is not smiling. It is panting."),
        # the same, with other quotes and a trailing space (a near match)
        ("Quokka Selfies & the 'Smile' Myth \nFrom the BBC: the quokka is not smiling.",
         "From the BBC: the quokka is not smiling."),
        # a feed whose text opens with the title as a sentence of its own
        ("Quokka selfies and the smile myth. From the BBC: the quokka is panting.",
         "From the BBC: the quokka is panting."),
        ("软银承诺向法国数据中心投资100亿美元\n软银周一表示将投资。",
         "软银周一表示将投资。"),
        # a lead that merely starts like the headline stays whole
        ("Quokka selfies are everywhere on Rottnest Island this summer.",
         "Quokka selfies are everywhere on Rottnest Island this summer."),
        # text that is only the headline stays
        (QUOKKA, QUOKKA),
        ("", ""),
    ],
)
def test_without_headline(text: str, expected: str) -> None:
    headline = "软银承诺向法国数据中心投资100亿美元" if text.startswith("软银") else QUOKKA
    assert without_headline(text, headline) == expected
