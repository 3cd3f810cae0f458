"""OPML, the format feed readers exchange subscription lists in; parsed with defusedxml."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

MAX_BYTES = 1024 * 1024
MAX_OUTLINES = 2000


class NotOpml(Exception):
    """Not an OPML document we can read (or a hostile one: entities, too large)."""


@dataclass(frozen=True)
class Outline:
    url: str
    title: str


def parse_opml(data: bytes) -> list[Outline]:
    """Every outline with an http(s) xmlUrl, nested folders included, duplicates dropped."""
    if len(data) > MAX_BYTES:
        raise NotOpml("too large")
    try:
        root = ElementTree.fromstring(data, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise NotOpml(str(exc)) from exc
    if root.tag.lower() != "opml" or root.find("body") is None:
        raise NotOpml("no <opml><body>")
    seen: set[str] = set()
    outlines: list[Outline] = []
    for node in root.iter("outline"):
        url = (node.get("xmlUrl") or node.get("xmlurl") or "").strip()
        if url.startswith(("http://", "https://")) and url not in seen:
            seen.add(url)
            title = (node.get("title") or node.get("text") or "").strip()
            outlines.append(Outline(url, title[:200]))
    return outlines[:MAX_OUTLINES]


def export_opml(outlines: list[Outline], title: str = "Tidings sources") -> bytes:
    root = Element("opml", version="2.0")
    SubElement(SubElement(root, "head"), "title").text = title
    body = SubElement(root, "body")
    for outline in outlines:
        SubElement(body, "outline", type="rss", text=outline.title, title=outline.title,
                   xmlUrl=outline.url)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="utf-8")
