"""Entity bombs and DTDs (news/xmlguard.py, news/feeds.py): refused in every encoding, quickly,
in the parser's worker processes as in the bot's own; ordinary feeds in any encoding still read."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator

import httpx
import pytest

import news.feeds
from news.adding import check_feed
from news.feeds import DeclaresEntities, NotAFeed, parse_feed
from news.fetch import FetchPolicy
from news.parsing import FeedReader
from news.xmlguard import RefusedEncoding, RefusedXml, as_utf8
from tests.fakes.feeds import FeedServer
from tests.harness import HOSTILE, encoding_tricks, flat_expansion, utf7

LOOPBACK = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_feeds_are_refused_quickly(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quickly because no parser ever expands them: the scan refuses them first (and the scan
    is linear: test_the_scan_is_linear_on_pathological_prologs)."""
    parsed: list[bytes] = []
    monkeypatch.setattr(news.feeds.feedparser, "parse",
                        lambda document, **_: parsed.append(document))
    with pytest.raises(DeclaresEntities) as caught:
        parse_feed(HOSTILE[name])
    assert caught.value.code == "xml_entities"
    assert parsed == [], "the parser was given the bomb"


@pytest.fixture(scope="module")
def reader() -> Iterator[FeedReader]:
    """The parser pool the bot runs, one worker."""
    pool = FeedReader(1)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


@pytest.mark.asyncio
@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_check_feed_refuses_them_in_the_worker(
    name: str, reader: FeedReader, server: FeedServer
) -> None:
    """What /addsource does: fetched, parsed in the pool, refused with its own code (no search
    for feed links in a page refused for what it is)."""
    path = "/" + name.replace("/", "-") + ".xml"
    server.put(path, HOSTILE[name], content_type="application/rss+xml")
    async with httpx.AsyncClient(trust_env=False) as client:
        # refused by the scan, not stopped by the parse time limit (ParseTimeout) nor by a
        # worker dying of it (NotAFeed)
        with pytest.raises(DeclaresEntities):
            await asyncio.wait_for(check_feed(client, server.url(path), LOOPBACK, reader), 30)


# A quadratic scan takes hours on these bodies (the old regex: 29 s at 200 KB); a linear one a
# few hundredths of a second (bench/xmlguard.py measures it). The deadline only ends a hung
# run: it is a thousand times what the scan needs, on any machine.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [2_000_000, 4_000_000])
@pytest.mark.parametrize(("pattern", "refused"), [
    ("<!DOCTYPE a [", True), ("<!DOCTYPE a '", False), ("<!DOCTYPE a ''", False),
    ("<!<!", False), ("<?a?>", False), ("<!--", False), ("<rss><!-<![CDATA", False)])
def test_the_scan_is_linear_on_pathological_prologs(pattern: str, refused: bool,
                                                    size: int) -> None:
    body = (pattern * (size // len(pattern))).encode()
    try:
        as_utf8(body)
    except RefusedXml:
        assert refused, pattern
    else:
        assert not refused, pattern


RSS = ('<?xml version="1.0" encoding="{encoding}"?>\n{doctype}<rss version="2.0"><channel>'
       "<title>Café Müller</title><item><title>Ünïcode ✓</title><link>http://ex.test/1</link>"
       "<description>{description}</description></item></channel></rss>")
NETSCAPE = ('<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
            '"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n')


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be", "utf-32-le"])
def test_ordinary_feeds_read_in_any_unicode_encoding(encoding: str) -> None:
    declared = encoding.replace("-le", "").replace("-be", "")
    text = RSS.format(encoding=declared, doctype=NETSCAPE, description="plain")
    body = ({"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff", "utf-32-le": b"\xff\xfe\0\0"}
            .get(encoding, b"") + text.encode(encoding))
    feed = parse_feed(body)
    assert feed.title == "Café Müller"
    assert [entry["title"] for entry in feed.entries] == ["Ünïcode ✓"]


@pytest.mark.parametrize("encoding", ["iso-8859-1", "windows-1252", "shift_jis"])
def test_declared_legacy_encodings_still_read(encoding: str) -> None:
    text = RSS.format(encoding=encoding, doctype="", description="plain").replace(
        "Ünïcode ✓", "Ünïcode" if encoding != "shift_jis" else "日本語")
    feed = parse_feed(text.encode(encoding, "replace"))
    assert feed.title == ("Café Müller" if encoding != "shift_jis" else "Caf? M?ller")
    assert feed.entries[0]["title"] in ("Ünïcode", "日本語")


def test_an_article_quoting_entities_in_cdata_is_read() -> None:
    quoted = '<![CDATA[<p>XXE looks like <!ENTITY x SYSTEM "file:///etc/passwd"></p>]]>'
    feed = parse_feed(RSS.format(encoding="utf-8", doctype="", description=quoted).encode())
    assert "<!ENTITY x" in feed.entries[0]["summary"]


@pytest.mark.parametrize("prolog", [
    '<!-- <!ENTITY a "hidden in a comment"> -->\n<!DOCTYPE rss>\n',
    '<!ENTITY a "outside any DOCTYPE">\n',
    '<!doctype rss [ ]>\n',  # an internal subset, even empty and in lower case
    '<!DOCTYPE rss SYSTEM "x>y" [ ]>\n',  # a quoted `>` does not end the declaration
])
def test_entities_and_subsets_anywhere_before_the_root_are_refused(prolog: str) -> None:
    body = RSS.format(encoding="utf-8", doctype=prolog, description="&a;").encode()
    with pytest.raises(DeclaresEntities):
        parse_feed(body)


@pytest.mark.parametrize("inside", ['<!ENTITY a "x">&a;', '<!DOCTYPE x [<!ENTITY a "x">]>&a;'])
def test_declarations_inside_the_document_are_refused(inside: str) -> None:
    body = RSS.format(encoding="utf-8", doctype="", description=inside).encode()
    with pytest.raises(DeclaresEntities):
        parse_feed(body)


def test_utf16_without_a_byte_order_mark_is_sniffed() -> None:
    text = '<?xml version="1.0" encoding="utf-16"?>\n' + flat_expansion(refs=10)
    with pytest.raises(DeclaresEntities):
        parse_feed(text.encode("utf-16-le"))
    with pytest.raises(DeclaresEntities):
        parse_feed(text.encode("utf-16-be"))


def test_a_refusal_is_not_a_feed_with_its_own_code() -> None:
    """Polling and /sources treat it as a failed feed; the admin reads the reason."""
    assert issubclass(DeclaresEntities, NotAFeed)
    assert DeclaresEntities.code != NotAFeed.code


ENCODING_TRICKS = encoding_tricks(flat_expansion())


def test_each_trick_expands_in_feedparser_when_passed_through() -> None:
    """The tricks are real: feedparser, given the raw bytes, decodes each as the hidden
    encoding and expands the entity (so refusing them below proves something)."""
    import feedparser

    for name, text in ENCODING_TRICKS.items():
        if name.startswith("declared"):
            continue  # the old guard decoded or rewrote these: refusing them is new
        parsed = feedparser.parse(text.encode(), sanitize_html=False,
                                  resolve_relative_uris=False)
        assert len(parsed.entries[0]["summary"]) >= 3_000_000, name


@pytest.mark.parametrize("name", sorted(ENCODING_TRICKS))
def test_encodings_no_feed_uses_are_refused(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []
    monkeypatch.setattr(news.feeds.feedparser, "parse",
                        lambda document, **_: parsed.append(document))
    with pytest.raises(NotAFeed) as caught:
        parse_feed(ENCODING_TRICKS[name].encode())
    assert caught.value.code == "xml_encoding"
    assert caught.value.detail in ("utf-7", "unicode-escape", "raw-unicode-escape", "base64")
    assert parsed == [], "the parser was given it"


@pytest.mark.parametrize("codec", ["utf_7", "UTF-7", "unicode_escape", "raw_unicode_escape",
                                   "hex", "zlib", "rot13", "idna", "punycode", "undefined"])
def test_refused_codecs(codec: str) -> None:
    with pytest.raises(RefusedEncoding):
        as_utf8(f'<?xml version="1.0" encoding="{codec}"?><rss/>'.encode())


@pytest.mark.parametrize("first_line", [
    '<?xml version="1.0" encoding="windows-1251"?>',
    '<?xml version="1.0" encoding="windows-1251"?><?x encoding="koi8-r"?>',
    '<?xml version="1.0" x="?>" encoding="windows-1251"?>',
    '<?xml-stylesheet href="a.xsl"?><?x encoding="koi8-r"?>',
    '\n\n  <?xml version="1.0" encoding="windows-1251"?>',
    "",
])
def test_feedparser_reads_exactly_the_text_that_was_checked(first_line: str) -> None:
    """Whatever the first line names, feedparser's own detection, run on what the guard hands
    it, decodes it as UTF-8 to the very text the guard checked: no second opinion remains."""
    from feedparser.encodings import convert_to_utf8

    body = (first_line + '\n<rss version="2.0"><channel><title>Лента</title><item>'
            "<title>Привет</title><link>http://ex.test/1</link></item></channel></rss>"
            ).encode("windows-1251")
    checked = as_utf8(body)
    result: dict[str, object] = {}
    converted = convert_to_utf8(news.feeds.RESPONSE_HEADERS, checked, result)
    assert result["encoding"] == "utf-8" and not result.get("bozo"), result
    assert converted.split(b"\n", 1)[1] == checked.split(b"\n", 1)[1]
    assert checked.split(b"\n", 1)[0] == b'<?xml version="1.0" encoding="utf-8"?>'
    feed = parse_feed(body)
    assert feed.entries[0]["title"] == (
        "Привет" if "windows-1251" in first_line
        else "Привет".encode("windows-1251").decode("windows-1252"))


def test_a_refused_encoding_is_refused_behind_a_byte_order_mark_too() -> None:
    """The mark decides (UTF-16 here), so nothing would decode it as UTF-7; refused anyway,
    as nothing honest names it."""
    text = '<?x encoding="utf-7"?>\n' + utf7(flat_expansion(refs=10))
    with pytest.raises(RefusedEncoding):
        as_utf8(b"\xff\xfe" + text.encode("utf-16-le"))
