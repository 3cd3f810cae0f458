"""bytes -> feed entries; feedparser never fetches anything itself (it has no timeout)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import feedparser

import news.dates  # noqa: F401  (registers the date readers feedparser lacks)
from news.xmlguard import RefusedEncoding, RefusedXml, as_utf8

# JSON Feed's versions, as feeds write them: many were written before the spec's site moved
# to https, and some end with a slash.
JSON_FEED_VERSIONS = frozenset(f"{scheme}://jsonfeed.org/version/{number}"
                               for scheme in ("http", "https") for number in ("1", "1.1"))

# What feedparser is told the body is: UTF-8, whatever the document says (news.xmlguard
# decided its encoding and re-encoded it); an HTTP charset outranks any in the document.
RESPONSE_HEADERS = {"content-type": "application/xml; charset=utf-8"}

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json",
              "application/json", "application/xml", "text/xml")


class NotAFeed(Exception):
    """The bytes are not a feed we can read (`code` keys the catalogue, fetch.error.<code>)."""

    code = "not_a_feed"  # the catalogue's fetch.error.<code> says why in plain words

    def __init__(self, message: str, code: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.code = code or type(self).code  # subclasses name their reason by class
        self.detail = detail

    def __reduce__(self) -> tuple[type[NotAFeed], tuple[str, str, str]]:
        # raised in parser processes (news.parsing): the code must survive pickling
        return type(self), (str(self), self.code, self.detail)


class DeclaresEntities(NotAFeed):
    """An XML feed with a DTD internal subset or entity declarations: refused (news.xmlguard)."""

    code = "xml_entities"


class UnusableEncoding(NotAFeed):
    """A feed naming an encoding no feed uses, which can hide markup from the entity scan."""

    code = "xml_encoding"


@dataclass(frozen=True)
class ParsedFeed:
    """A feed's title and its entries as feedparser dictionaries."""

    title: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    ttl_seconds: int = 0  # RSS <ttl>: how long the publisher asks readers to wait
    # WebSub (news.hubs): the hubs the feed names (`<link rel="hub">`, JSON Feed `hubs`) and
    # the URL it calls itself (`rel="self"`, JSON Feed `feed_url`), the topic to subscribe to.
    hubs: tuple[str, ...] = ()
    self_url: str = ""


def parse_feed(body: bytes) -> ParsedFeed:
    """Parse RSS/Atom/JSON Feed bytes; malformed but readable feeds accepted, non-feeds refused."""
    if _looks_like_json(body):
        return _parse_json_feed(body)
    try:
        body = as_utf8(body)  # what feedparser reads is what was checked for entities
    except RefusedEncoding as exc:
        raise UnusableEncoding(str(exc), detail=exc.encoding) from exc
    except RefusedXml as exc:
        raise DeclaresEntities(str(exc)) from exc
    # Entries become plain text (news.text) and their links are joined to the feed's URL in
    # news.items, so sanitizing and resolving URIs here is work thrown away: without them
    # parsing costs a third less.
    parsed = feedparser.parse(body, response_headers=RESPONSE_HEADERS, sanitize_html=False,
                              resolve_relative_uris=False)
    if not parsed.get("version") and not parsed.entries:
        raise NotAFeed(str(parsed.get("bozo_exception", "no feed found")))
    title = str(parsed.feed.get("title") or "").strip()
    ttl = str(parsed.feed.get("ttl") or "").strip()
    ttl_seconds = min(int(ttl) * 60, 24 * 3600) if ttl.isdigit() else 0
    links = [link for link in parsed.feed.get("links") or [] if isinstance(link, dict)]
    return ParsedFeed(title=title, entries=[dict(entry) for entry in parsed.entries],
                      ttl_seconds=ttl_seconds, hubs=_rel(links, "hub"),
                      self_url=next(iter(_rel(links, "self")), ""))


def _rel(links: list[dict[str, Any]], rel: str) -> tuple[str, ...]:
    """The hrefs of the feed-level links of one relation, in document order."""
    return tuple(str(link.get("href") or "").strip() for link in links
                 if str(link.get("rel") or "").lower() == rel and link.get("href"))


def _looks_like_json(body: bytes) -> bool:
    """Whether the body opens as a JSON object or array would (an XML feed opens with `<`)."""
    return body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"{", b"[")


def _parse_json_feed(body: bytes) -> ParsedFeed:
    """JSON Feed 1 and 1.1, which feedparser 6.0 cannot read, as feedparser-like entries."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad encodings are ValueError
        raise NotAFeed(f"invalid JSON: {exc}") from exc
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or "jsonfeed.org/version/" not in version:
        raise NotAFeed("JSON, but not a JSON Feed")
    if version.strip().rstrip("/") not in JSON_FEED_VERSIONS:
        raise NotAFeed(f"unknown JSON Feed version {version!r}", "json_feed_version",
                       version.strip()[:100])
    items = document.get("items")
    if not isinstance(items, list):
        items = []
    entries = [_json_entry(item) for item in items if isinstance(item, dict)]
    hubs = document.get("hubs")
    return ParsedFeed(title=_string(document.get("title")).strip(), entries=entries,
                      hubs=tuple(_string(hub.get("url")).strip() for hub in hubs
                                 if isinstance(hub, dict) and _string(hub.get("url")).strip()
                                 and _string(hub.get("type")).lower() in ("websub", ""))
                      if isinstance(hubs, list) else (),
                      self_url=_string(document.get("feed_url")).strip())


def _json_entry(item: dict[str, Any]) -> dict[str, Any]:
    """One JSON Feed item with the keys news.items.normalize reads from feedparser entries."""
    entry: dict[str, Any] = {
        "id": _string(item.get("id")),
        "link": _string(item.get("url")) or _string(item.get("external_url")),
        "title": _string(item.get("title")),
        # summary is HTML to normalize(): plain-text fields are escaped so `a<b` survives
        "summary": _string(item.get("content_html"))
        or escape(_string(item.get("content_text")) or _string(item.get("summary")), False),
    }
    for key, field_name in (("published_parsed", "date_published"),
                            ("updated_parsed", "date_modified")):
        parsed = _utc_time(item.get(field_name))
        if parsed is not None:
            entry[key] = parsed
    return entry


def _string(value: object) -> str:
    """A JSON value as text: strings as they are, numbers (ids in JSON Feed 1) written out."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _utc_time(value: object) -> time.struct_time | None:
    """An RFC 3339 date as feedparser gives dates: a struct_time in UTC; None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).utctimetuple()
    except (OverflowError, ValueError):
        return None


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
