"""OPML import and export: nested folders, duplicates, hostile documents."""

from __future__ import annotations

import pytest

from news.opml import MAX_BYTES, NotOpml, Outline, export_opml, parse_opml

NESTED = b"""<?xml version="1.0"?>
<opml version="2.0"><head><title>Mine</title></head><body>
  <outline text="Tech">
    <outline type="rss" text="Le Monde" xmlUrl="https://www.lemonde.fr/rss/une.xml"/>
    <outline type="rss" title="HN &amp; co" xmlUrl="https://news.ycombinator.com/rss"/>
  </outline>
  <outline type="rss" text="dup" xmlUrl="https://www.lemonde.fr/rss/une.xml"/>
  <outline type="rss" text="ftp" xmlUrl="ftp://example.com/feed"/>
  <outline text="folder without feed"/>
</body></opml>"""


def test_nested_outlines_are_read_once_each_and_only_http() -> None:
    assert parse_opml(NESTED) == [
        Outline("https://www.lemonde.fr/rss/une.xml", "Le Monde"),
        Outline("https://news.ycombinator.com/rss", "HN & co"),
    ]


def test_export_round_trips_with_escaping() -> None:
    outlines = [Outline("https://a.test/feed?x=1&y=2", 'A <"quoted"> & co'),
                Outline("https://b.test/rss", "软银新闻")]
    assert parse_opml(export_opml(outlines)) == outlines


@pytest.mark.parametrize("data", [
    b"not xml at all",
    b"<rss><channel/></rss>",
    b"<opml version='2.0'><head/></opml>",
    b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>
<opml><body><outline xmlUrl="https://a.test/&lol2;"/></body></opml>""",
    b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>
<opml><body><outline title="&ext;" xmlUrl="https://a.test/"/></body></opml>""",
    b"<opml><body>" + b"<outline/>" * (MAX_BYTES // 10) + b"</body></opml>",
])
def test_hostile_or_foreign_documents_are_refused(data: bytes) -> None:
    with pytest.raises(NotOpml):
        parse_opml(data)
