"""Fake feed/web server plus RSS/Atom/HTML builders, so fetching runs over real HTTP in tests."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

RSS_TYPE = "application/rss+xml; charset=utf-8"
ITEM_KEYS = frozenset({"title", "link", "guid", "description", "pub_date"})


@dataclass
class Resource:
    """What one path serves, with validators fixed at put() time."""

    body: bytes
    content_type: str
    status: int
    headers: dict[str, str]
    delay: float
    etag: str
    last_modified: float
    hold: threading.Event | None = None  # answered only once set (or the server stops)


class _Handler(BaseHTTPRequestHandler):
    """Serves one request per connection so stop() never waits on idle keep-alive sockets."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_HEAD(self) -> None:
        """Same as GET without a body, as feed discovery code sometimes probes with HEAD."""
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        """Answer from the stored resource, honouring conditional-GET validators."""
        fake = self.server.fake
        res = fake._record(self.path, {k.lower(): v for k, v in self.headers.items()})
        self.close_connection = True
        try:
            self._answer(fake, res, head)
        finally:
            fake._done(self.path)

    def _answer(self, fake: FeedServer, res: Resource | None, head: bool) -> None:
        """The delay, then the stored resource (or a 404)."""
        if res is not None and res.delay:
            fake._stopping.wait(res.delay)
        if res is not None and res.hold is not None:
            while not res.hold.wait(0.05) and not fake._stopping.is_set():
                pass
        fake._answering(self.path)
        if res is None:
            status, body, headers = 404, b"Not Found", {"Content-Type": "text/plain"}
        else:
            status, body = res.status, res.body
            headers = {"Content-Type": res.content_type, "ETag": res.etag}
            headers["Last-Modified"] = formatdate(res.last_modified, usegmt=True)
            headers.update(res.headers)
            if status == 200 and self._not_modified(res):
                status, body = 304, b""
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if not head and status != 304:
                self.wfile.write(body)
        except OSError:
            pass

    def _not_modified(self, res: Resource) -> bool:
        """RFC 9110: If-None-Match wins; otherwise If-Modified-Since at one-second precision."""
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            return "*" in tags or res.etag in tags
        ims = self.headers.get("If-Modified-Since")
        if ims is None:
            return False
        try:
            since = parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError):
            return False
        return since >= int(res.last_modified)


class _HTTPServer(ThreadingHTTPServer):
    """Joins handler threads on close so no socket outlives the test."""

    daemon_threads = False
    block_on_close = True
    fake: FeedServer


class FeedServer:
    """Threaded static server whose paths are set by put() and whose traffic is recorded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.answered: list[str] = []  # paths whose answer was sent, its delay over, in order
        self.in_flight = 0  # requests received and not yet answered
        self.peak_in_flight = 0  # the most in flight at once: what a client ran in parallel
        self._resources: dict[str, Resource] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Bound port; only valid once started."""
        if self._httpd is None:
            raise RuntimeError("FeedServer is not started")
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        """Absolute URL for a path (query string allowed)."""
        return f"http://127.0.0.1:{self.port}{_norm(path)}"

    def put(
        self,
        path: str,
        body: bytes | str,
        content_type: str = RSS_TYPE,
        status: int = 200,
        headers: dict[str, str] | None = None,
        *,
        delay: float = 0.0,
        last_modified: datetime | None = None,
        hold: threading.Event | None = None,
    ) -> None:
        """Set (or replace) what a path serves, with a fresh ETag and Last-Modified; `hold`
        keeps each answer back until the test sets it, so it can act while one is pending."""
        data = body.encode() if isinstance(body, str) else body
        etag = f'"{hashlib.sha256(data).hexdigest()[:20]}"'
        stamp = last_modified.timestamp() if last_modified else time.time()
        res = Resource(data, content_type, status, dict(headers or {}), delay, etag, stamp,
                       hold)
        with self._lock:
            self._resources[_norm(path)] = res

    def remove(self, path: str) -> None:
        """Make a path 404 again."""
        with self._lock:
            self._resources.pop(_norm(path), None)

    def etag(self, path: str) -> str:
        """Current ETag of a path, for asserting what the client should send back."""
        with self._lock:
            return self._resources[_norm(path)].etag

    def hits(self, path: str) -> int:
        """How many requests reached a path (404s included)."""
        key = _norm(path)
        with self._lock:
            return sum(1 for p, _ in self.requests if p == key)

    def answers(self, path: str) -> int:
        """How many answers to a path were sent: a delayed one counts only once its delay ran
        out, so a client that gave up earlier finds it still at 0."""
        key = _norm(path)
        with self._lock:
            return self.answered.count(key)

    def _record(self, path: str, headers: dict[str, str]) -> Resource | None:
        """Log a request (header names lower-cased) and look up its resource."""
        with self._lock:
            self.requests.append((path, headers))
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            return self._resources.get(path)

    def _answering(self, path: str) -> None:
        with self._lock:
            if not self._stopping.is_set():  # stop() cut the delay short: not a real answer
                self.answered.append(path)

    def _done(self, path: str) -> None:
        with self._lock:
            self.in_flight -= 1

    def start(self) -> FeedServer:
        """Bind to a free port on 127.0.0.1 and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Cut pending delays short, stop serving and close every socket."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _norm(path: str) -> str:
    """Paths are keyed with a leading slash, exactly as the request line carries them."""
    return path if path.startswith("/") else "/" + path


def _utc(value: datetime) -> datetime:
    """Treat naive datetimes as UTC so output never depends on the machine's zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _check(item: dict[str, Any]) -> None:
    """Reject typos in item keys instead of silently dropping fields."""
    unknown = set(item) - ITEM_KEYS
    if unknown:
        raise ValueError(f"unknown item keys: {sorted(unknown)}")


def _hub_links(prefix: str, hub: str | None, self_url: str | None) -> list[str]:
    """WebSub's discovery links (`<link rel="hub">`, `rel="self"`), as a feed carries them."""
    links = [f'<{prefix}link rel="hub" href="{escape(hub)}"/>'] if hub else []
    return links + ([f'<{prefix}link rel="self" href="{escape(self_url)}"/>'] if self_url else [])


def rss(title: str, items: list[dict[str, Any]], link: str = "http://example.test/", *,
        hub: str | None = None, self_url: str | None = None) -> str:
    """Valid RSS 2.0; item keys: title, link, guid, description, pub_date (datetime); `hub`
    and `self_url` add WebSub's atom:link elements."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>' if hub or self_url
        else '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>{escape(link)}</link>",
        f"<description>{escape(title)}</description>",
        *_hub_links("atom:", hub, self_url),
    ]
    for item in items:
        _check(item)
        parts.append("<item>")
        for key in ("title", "link", "description"):
            if item.get(key) is not None:
                parts.append(f"<{key}>{escape(item[key])}</{key}>")
        if item.get("guid") is not None:
            parts.append(f'<guid isPermaLink="false">{escape(item["guid"])}</guid>')
        if item.get("pub_date") is not None:
            stamp = _utc(item["pub_date"]).strftime("%a, %d %b %Y %H:%M:%S +0000")
            parts.append(f"<pubDate>{stamp}</pubDate>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts)


def atom(title: str, entries: list[dict[str, Any]], link: str = "http://example.test/", *,
         hub: str | None = None, self_url: str | None = None) -> str:
    """Valid Atom 1.0 from the same item dicts as rss() (guid -> id, pub_date -> updated)."""
    default = datetime(2024, 1, 1, tzinfo=UTC)
    dates = [_utc(e["pub_date"]) for e in entries if e.get("pub_date") is not None]
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(title)}</title><id>{escape(link)}</id>",
        f'<link rel="alternate" href="{escape(link)}"/>',
        *_hub_links("", hub, self_url),
        f"<updated>{_rfc3339(max(dates, default=default))}</updated>",
        "<author><name>Fake</name></author>",
    ]
    for n, entry in enumerate(entries):
        _check(entry)
        ident = entry.get("guid") or entry.get("link") or f"urn:fake:{n}"
        when = _rfc3339(_utc(entry["pub_date"]) if entry.get("pub_date") else default)
        parts += ["<entry>", f"<id>{escape(ident)}</id>"]
        parts.append(f"<title>{escape(entry.get('title') or '')}</title>")
        if entry.get("link") is not None:
            parts.append(f'<link rel="alternate" href="{escape(entry["link"])}"/>')
        if entry.get("description") is not None:
            parts.append(f"<summary>{escape(entry['description'])}</summary>")
        parts += [f"<updated>{when}</updated><published>{when}</published>", "</entry>"]
    parts.append("</feed>")
    return "\n".join(parts)


def _rfc3339(value: datetime) -> str:
    """Atom's date format, always in UTC."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def html_page(
    title: str, feed_href: str | None = None, feed_type: str = "application/rss+xml"
) -> str:
    """Minimal HTML page, optionally advertising a feed for autodiscovery tests."""
    link = ""
    if feed_href is not None:
        link = f'<link rel="alternate" type="{escape(feed_type)}" href="{escape(feed_href)}">'
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"{link}</head><body><h1>{escape(title)}</h1></body></html>"
    )
