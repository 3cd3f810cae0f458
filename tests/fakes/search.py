"""News-search provider emulators over loopback HTTP, answering in each provider's real shape.

GDELT's DOC 2.0 API at /api/v2/doc/doc (mode=artlist, format=json) and Google News' RSS search
at /rss/search. Both match loosely, as the real ones do: an article is returned when its title
holds any word or phrase of the query, exclusions and AND ignored, so only the bot's own
matching keeps the wrong ones from readers. GDELT's limit is enforced as GDELT enforces it: a
request less than five seconds after the previous one gets a plain-text refusal. Failures can
be queued (status, body, content type) and answers delayed. Article pages are served too."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

GDELT_PATH = "/api/v2/doc/doc"
GOOGLE_PATH = "/rss/search"
GDELT_REFUSAL = ("Please limit requests to one every 5 seconds or contact "
                 "kalev.leetaru5@gmail.com for larger queries.")
_WORDS = re.compile(r'"([^"]+)"|(\S+)')


@dataclass
class Article:
    """One published article, as both providers know it."""

    url: str
    title: str
    domain: str
    publisher: str
    seen: datetime
    language: str = "English"
    country: str = "United States"


@dataclass
class Failure:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"
    delay: float = 0.0


@dataclass
class Recorded:
    """A request as received: its path, its query parameters and when it arrived."""

    path: str
    params: dict[str, str]
    at: float
    refused: bool = False


@dataclass
class _State:
    articles: list[Article] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    spacing: float = 5.0  # GDELT's: one request every five seconds
    last_gdelt: float | None = None


def terms(query: str) -> list[str]:
    """The words and phrases a loose search looks for: any of them, exclusions left out."""
    found = []
    for phrase, word in _WORDS.findall(query.replace("(", " ").replace(")", " ")):
        text = phrase or word
        if text == "OR" or text.startswith("-") or ":" in text:
            continue
        found.append(text.lower())
    return found


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        status, body, content_type, delay = fake._answer(parts.path, params)
        if delay:
            fake._stopping.wait(delay)
        data = body.encode()
        self.close_connection = True
        try:
            self.send_response(status)
            if status == 302:
                self.send_header("Location", body)
                data = b""
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: SearchServer


class SearchServer:
    """Both providers on one loopback port; `publish` adds an article they can find."""

    def __init__(self, *, gdelt_spacing: float = 5.0, everything: bool = False) -> None:
        self._state = _State(spacing=gdelt_spacing)
        # Every search finds every article: a provider matching text we never see.
        self.everything = everything
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def gdelt_url(self) -> str:
        return self.url(GDELT_PATH)

    @property
    def google_url(self) -> str:
        return self.url(GOOGLE_PATH) + "?hl=en-US&gl=US&ceid=US:en"

    def publish(self, title: str, path: str, *, publisher: str = "Example News",
                domain: str = "example.test", seen: datetime | None = None,
                page: str | None = None) -> Article:
        """An article at this server's `path`, found by searches from now on; `page` is
        its HTML, served for article fetches."""
        article = Article(self.url(path), title, domain, publisher,
                          seen or datetime.now(UTC).replace(microsecond=0))
        with self._lock:
            self._state.articles.append(article)
            if page is not None:
                self._state.pages[path] = page
        return article

    def page(self, path: str, html: str) -> None:
        """An HTML page at `path` (an article, or what a redirect leads to)."""
        with self._lock:
            self._state.pages[path] = html

    def redirect(self, path: str, location: str) -> None:
        """`path` answers 302 to `location` (a consent wall in front of an article)."""
        with self._lock:
            self._state.redirects[path] = location

    def fail(self, path: str, *failures: Failure) -> None:
        """The next requests to `path` get these answers, in order."""
        with self._lock:
            self._state.failures.setdefault(path, []).extend(failures)

    def requests(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self._state.requests if r.path == path]

    def wait_for_requests(self, path: str, count: int, timeout: float = 30.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.requests(path)) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} requests to {path} not seen: {self.requests(path)}")

    def _answer(self, path: str, params: dict[str, str]) -> tuple[int, str, str, float]:
        with self._lock:
            now = time.monotonic()
            record = Recorded(path, params, now)
            self._state.requests.append(record)
            if path == GDELT_PATH:
                last, self._state.last_gdelt = self._state.last_gdelt, now
                if last is not None and now - last < self._state.spacing:
                    record.refused = True
                    return 429, GDELT_REFUSAL, "text/plain; charset=utf-8", 0.0
            queued = self._state.failures.get(path)
            if queued:
                failure = queued.pop(0)
                return failure.status, failure.body, failure.content_type, failure.delay
            words = terms(params.get("q") or params.get("query") or "")
            found = [a for a in self._state.articles
                     if self.everything or any(word in a.title.lower() for word in words)]
            if path == GDELT_PATH:
                return 200, gdelt_json(found), "application/json; charset=utf-8", 0.0
            if path == GOOGLE_PATH:
                return 200, google_rss(params.get("q", ""), found), \
                    "application/xml; charset=utf-8", 0.0
            if path in self._state.redirects:
                return 302, self._state.redirects[path], "text/plain", 0.0
            page = self._state.pages.get(path)
            if page is not None:
                return 200, page, "text/html; charset=utf-8", 0.0
            return 404, "Not Found", "text/plain", 0.0

    def start(self) -> SearchServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._stopping.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> SearchServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def gdelt_json(articles: list[Article]) -> str:
    """artlist's shape; GDELT answers `{}` when nothing matched."""
    if not articles:
        return "{}"
    return json.dumps({"articles": [{
        "url": a.url, "url_mobile": "", "title": a.title,
        "seendate": a.seen.strftime("%Y%m%dT%H%M%SZ"),
        "socialimage": f"{a.url}/image.jpg", "domain": a.domain, "language": a.language,
        "sourcecountry": a.country,
    } for a in articles]}, ensure_ascii=False)


def google_link(url: str) -> str:
    """A Google News article link of the older kind, whose id carries the URL."""
    raw = b"\x08\x13\x22" + bytes([len(url)]) + url.encode() + b"\xd2\x01\x00"
    return "https://news.google.com/rss/articles/" + \
        base64.urlsafe_b64encode(raw).decode().rstrip("=") + "?oc=5"


def google_rss(query: str, articles: list[Article]) -> str:
    """Google News' search feed: titles end with " - Publisher", links are Google's
    redirects, and <source url> names the publisher."""
    items = []
    for a in articles:
        link = google_link(a.url)
        guid = link.split("/articles/")[1].split("?")[0]
        items.append(
            f"<item><title>{escape(a.title)} - {escape(a.publisher)}</title>"
            f"<link>{escape(link)}</link><guid isPermaLink=\"false\">{guid}</guid>"
            f"<pubDate>{format_datetime(a.seen, usegmt=True)}</pubDate>"
            f"<description>{escape(f'<a href={link!r} target=_blank>{a.title}</a>')}"
            f"&amp;nbsp;&amp;nbsp;&lt;font color=\"#6f6f6f\"&gt;{escape(a.publisher)}"
            f"&lt;/font&gt;</description>"
            f"<source url=\"https://{escape(a.domain)}\">{escape(a.publisher)}</source></item>")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<rss xmlns:media="http://search.yahoo.com/mrss/" version="2.0"><channel>'
            '<generator>NFE/5.0</generator>'
            f'<title>"{escape(query)}" - Google News</title>'
            '<link>https://news.google.com/search?hl=en-US&amp;gl=US&amp;ceid=US:en</link>'
            '<language>en-US</language><webMaster>news-webmaster@google.com</webMaster>'
            '<copyright>Copyright © 2026 Google. All rights reserved.</copyright>'
            f'<description>Google News</description>{"".join(items)}</channel></rss>')
