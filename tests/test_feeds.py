"""Bytes to feed entries (news/feeds.py): every feed format we promise, and nothing else."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import pytest

import news.feeds
from locales import catalog
from news.feeds import DeclaresEntities, NotAFeed, ParsedFeed, discover_feed_links, parse_feed
from tests.fakes.feeds import html_page

CORPUS = Path(__file__).resolve().parent.parent / ".." / "shared" / "corpus" / "feedparser-tests"

RSS20 = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
<title>  Tech &amp; Markets  </title><link>https://news.example.test/</link>
<description>d</description>
<item><title>软银承诺向法国数据中心投资100亿美元</title>
<link>https://news.example.test/softbank</link><guid isPermaLink="false">sb-1</guid>
<description>&lt;p&gt;软银周一表示。&lt;/p&gt;</description>
<pubDate>Tue, 06 May 2025 07:08:09 +0000</pubDate></item>
<item><title>Nvidia earnings beat estimates</title><link>https://news.example.test/nv</link></item>
</channel></rss>""".encode()

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<title>日経テック</title><id>urn:feed</id><updated>2025-05-06T07:08:09Z</updated>
<entry><id>urn:uuid:1</id><title>ソフトバンクグループ、仏AIデータセンターに投資</title>
<link rel="alternate" href="https://news.example.test/ja/1"/>
<updated>2025-05-06T07:08:09Z</updated>
<summary type="html">&lt;b&gt;速報&lt;/b&gt;</summary></entry>
</feed>""".encode()

RDF = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
 xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://news.example.test/"><title>Лента</title>
<link>https://news.example.test/</link><description>d</description></channel>
<item rdf:about="https://news.example.test/ru/1">
<title>Сбербанк увеличил чистую прибыль на 5% в первом квартале</title>
<link>https://news.example.test/ru/1</link><dc:date>2025-05-06T07:08:09Z</dc:date></item>
</rdf:RDF>""".encode()

JSON_FEED = json.dumps({
    "version": "https://jsonfeed.org/version/1.1",
    "title": "أخبار الطاقة",
    "home_page_url": "https://news.example.test/",
    "items": [{
        "id": "ar-1",
        "url": "https://news.example.test/ar/1",
        "title": "أرامكو السعودية تعلن عن أرباح فصلية قياسية",
        "content_html": "<p>أعلنت أرامكو</p>",
        "date_published": "2025-05-06T07:08:09Z",
    }],
}, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("body", "title", "first_title", "first_link", "count"),
    [
        (RSS20, "Tech & Markets", "软银承诺向法国数据中心投资100亿美元",
         "https://news.example.test/softbank", 2),
        (ATOM, "日経テック", "ソフトバンクグループ、仏AIデータセンターに投資",
         "https://news.example.test/ja/1", 1),
        (RDF, "Лента", "Сбербанк увеличил чистую прибыль на 5% в первом квартале",
         "https://news.example.test/ru/1", 1),
    ],
    ids=["rss2", "atom", "rss1-rdf"],
)
def test_parse_feed_formats(
    body: bytes, title: str, first_title: str, first_link: str, count: int
) -> None:
    feed = parse_feed(body)
    assert isinstance(feed, ParsedFeed)
    assert feed.title == title
    assert len(feed.entries) == count
    assert all(type(entry) is dict for entry in feed.entries)
    first = feed.entries[0]
    assert first["title"] == first_title
    assert first["link"] == first_link
    dated = first.get("published_parsed") or first.get("updated_parsed")
    assert dated is not None and time.strftime("%Y-%m-%dT%H:%M:%S", dated) == "2025-05-06T07:08:09"


def test_parse_json_feed() -> None:
    feed = parse_feed(JSON_FEED)
    assert feed.title == "أخبار الطاقة"
    assert feed.entries[0]["title"] == "أرامكو السعودية تعلن عن أرباح فصلية قياسية"
    assert feed.entries[0]["link"] == "https://news.example.test/ar/1"


@pytest.mark.parametrize(
    "version",
    ["http://jsonfeed.org/version/1", "https://jsonfeed.org/version/1",
     "http://jsonfeed.org/version/1.1", "https://jsonfeed.org/version/1.1",
     "https://jsonfeed.org/version/1.1/", " https://jsonfeed.org/version/1 "],
)
def test_json_feed_versions_of_either_scheme_are_read(version: str) -> None:
    """Pixel Envy's feed, and many written before the spec moved to https, say http://."""
    body = json.dumps({**json.loads(JSON_FEED), "version": version}).encode()
    feed = parse_feed(body)
    assert feed.title == "أخبار الطاقة" and len(feed.entries) == 1


@pytest.mark.parametrize("version", ["https://jsonfeed.org/version/2",
                                     "http://jsonfeed.org/version/0.9"])
def test_an_unknown_json_feed_version_is_refused_with_its_reason(version: str) -> None:
    body = json.dumps({**json.loads(JSON_FEED), "version": version}).encode()
    with pytest.raises(NotAFeed) as refused:
        parse_feed(body)
    assert (refused.value.code, refused.value.detail) == ("json_feed_version", version)
    # parser processes hand errors back pickled (news.parsing): the reason survives
    again = pickle.loads(pickle.dumps(refused.value))
    assert (again.code, again.detail) == ("json_feed_version", version)
    assert catalog.text("en", f"fetch.error.{again.code}", detail=again.detail) != (
        f"fetch.error.{again.code}")


@pytest.mark.parametrize(
    "body",
    [
        # an unescaped ampersand: not well-formed XML, but every reader copes
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Bozo & Co</title>'
        b"<item><title>AT&T deal</title><link>http://ex.test/a</link></item></channel></rss>",
        # an HTML entity XML does not define
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Caf&eacute;</title>'
        b"<item><title>Le&nbsp;prix</title><link>http://ex.test/b</link></item></channel></rss>",
        # truncated in the middle of the channel
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Cut</title>'
        b"<item><title>Still here</title><link>http://ex.test/c</link></item>",
    ],
    ids=["bare-ampersand", "undefined-entity", "truncated"],
)
def test_bozo_but_readable_feeds_are_accepted(body: bytes) -> None:
    feed = parse_feed(body)
    assert len(feed.entries) == 1
    assert feed.entries[0]["link"].startswith("http://ex.test/")


@pytest.mark.parametrize(
    "body",
    [
        html_page("SoftBank news").encode(),
        html_page("Has a feed link", "/feed.xml").encode(),
        b"<!DOCTYPE html><html><body><p>Rates < 5% & rising</p></body></html>",
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        b"",
        b"hello world",
        b'{"not": "a feed"}',
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
    ],
    ids=["html", "html-with-link", "html-loose", "random", "png", "empty", "text", "json",
         "svg"],
)
def test_non_feeds_raise_not_a_feed(body: bytes) -> None:
    with pytest.raises(NotAFeed):
        parse_feed(body)


def test_entity_expansion_does_not_blow_up(monkeypatch: pytest.MonkeyPatch) -> None:
    entities = "".join(
        f'<!ENTITY lol{i + 1} "' + f"&lol{i if i else ''};" * 10 + '">\n' for i in range(9)
    )
    body = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n' + entities + "]>\n"
        '<rss version="2.0"><channel><title>&lol9;</title>'
        "<item><title>x &lol9;</title></item></channel></rss>"
    ).encode()
    parsed: list[bytes] = []
    real_parse = news.feeds.feedparser.parse

    def spy(document: bytes, **kwargs: Any) -> Any:
        parsed.append(document)
        return real_parse(document, **kwargs)

    monkeypatch.setattr(news.feeds.feedparser, "parse", spy)
    with pytest.raises(DeclaresEntities):
        parse_feed(body)
    assert parsed == [], "refused before any parser could expand it"


# --- discovery -------------------------------------------------------------------------------

PAGE = b"""<!DOCTYPE html><html><head>
<link rel="stylesheet" type="text/css" href="/s.css">
<link rel="alternate" type="application/rss+xml" title="RSS" href="/feed.xml">
<link rel="alternate" type="application/atom+xml" href="atom.xml">
<LINK REL="Alternate" TYPE="Application/RSS+XML; charset=utf-8" HREF="https://other.test/rss">
<link rel="alternate" hreflang="fr" href="/fr/">
<link rel="alternate" type="text/html" href="/m/">
<link rel="alternate stylesheet" type="text/css" href="/alt.css">
<link rel="icon" type="application/rss+xml" href="/not-alternate.xml">
<link rel="alternate" type="application/feed+json" href="//cdn.test/feed.json">
<link rel="alternate" type="application/rss+xml" href="">
<link rel="alternate" type="application/rss+xml" href="/a?x=1&amp;y=2">
</head><body><a rel="alternate" type="application/rss+xml" href="/nope.xml">x</a></body></html>"""


def test_discover_feed_links() -> None:
    assert discover_feed_links(PAGE, "https://news.test/section/index.html") == [
        "https://news.test/feed.xml",
        "https://news.test/section/atom.xml",
        "https://other.test/rss",
        "https://cdn.test/feed.json",
        "https://news.test/a?x=1&y=2",
    ]


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (html_page("Plain"), []),
        (html_page("RSS", "/rss.xml"), ["https://site.test/rss.xml"]),
        (html_page("Atom", "feed.atom", "application/atom+xml"), ["https://site.test/blog/feed.atom"]),
        (html_page("CSS only", "/s.css", "text/css"), []),
        (html_page("Absolute", "http://feeds.test/x"), ["http://feeds.test/x"]),
    ],
)
def test_discover_with_fake_pages(page: str, expected: list[str]) -> None:
    assert discover_feed_links(page.encode(), "https://site.test/blog/") == expected


def test_discover_survives_bad_bytes() -> None:
    body = b"\xff\xfe<html><head>\x00<link rel=alternate type=application/rss+xml href=/f>"
    assert discover_feed_links(body, "https://site.test/") == ["https://site.test/f"]


# --- the feedparser corpus -------------------------------------------------------------------


def test_feedparser_corpus() -> None:
    """Every file of feedparser's own test suite gives a ParsedFeed or NotAFeed, nothing else."""
    if not CORPUS.is_dir():
        pytest.skip("feedparser corpus not present (../shared is not part of a clone)")
    files = sorted(path for path in CORPUS.rglob("*") if path.is_file())
    assert len(files) > 2000
    parsed: dict[Path, ParsedFeed | NotAFeed] = {}
    others: list[str] = []
    for path in files:
        try:
            parsed[path] = parse_feed(path.read_bytes())
        except NotAFeed as exc:
            parsed[path] = exc
        except Exception as exc:  # the point of the test: nothing else may escape
            others.append(f"{path.relative_to(CORPUS)}: {type(exc).__name__}: {exc}")
    assert others == []
    for family in ("rss", "atom", "atom10", "rdf"):
        folder = CORPUS / "wellformed" / family
        refused = [p.name for p in parsed if p.parent == folder and isinstance(parsed[p], NotAFeed)
                   and not isinstance(parsed[p], DeclaresEntities)]
        assert refused == [], f"well-formed {family} files refused"
    # entity declarations are refused on purpose (news.xmlguard), and only where there are some
    declaring = {p for p, result in parsed.items() if isinstance(result, DeclaresEntities)}
    assert declaring == {p for p in files if b"<!ENTITY" in p.read_bytes()}
