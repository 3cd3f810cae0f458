"""bytes -> feed entries; feedparser never fetches anything itself (it has no timeout)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import feedparser

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json",
              "application/json", "application/xml", "text/xml")


class NotAFeed(Exception):
    """The bytes are not a feed we can read."""


@dataclass(frozen=True)
class ParsedFeed:
    """A feed's title and its entries as feedparser dictionaries."""

    title: str
    entries: list[dict[str, Any]] = field(default_factory=list)


def parse_feed(body: bytes, url: str) -> ParsedFeed:
    """Parse RSS/Atom bytes; malformed but readable feeds are accepted, non-feeds refused."""
    parsed = feedparser.parse(body, response_headers={"content-location": url})
    if not parsed.get("version") and not parsed.entries:
        raise NotAFeed(str(parsed.get("bozo_exception", "no feed found")))
    title = str(parsed.feed.get("title") or "").strip()
    return ParsedFeed(title=title, entries=[dict(entry) for entry in parsed.entries])


class _AlternateLinks(HTMLParser):
    """Collects `<link rel="alternate" type="…feed…" href>` from an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        values = {name: (value or "") for name, value in attrs}
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").lower().split(";")[0].strip()
        if "alternate" in rels and kind in FEED_TYPES and values.get("href"):
            self.hrefs.append(values["href"])


def discover_feed_links(html: bytes, page_url: str) -> list[str]:
    """The feed URLs an HTML page advertises, absolute, in page order."""
    finder = _AlternateLinks()
    finder.feed(html.decode("utf-8", errors="replace"))
    finder.close()
    return [urljoin(page_url, href) for href in finder.hrefs]
