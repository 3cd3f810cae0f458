"""Google News' RSS search (news.google.com/rss/search?q=…): an RSS feed per query.

Its syntax is Google's: words AND-ed, "phrases", OR, -exclusions, (groups). Its links are
redirects through news.google.com; the older ones carry the article's URL inside their
base64 id, which is read out, while the newer ones can only be followed in a browser (a
consent page answers anyone else), so their page is never fetched for text. Its titles end
with " - Publisher", and its <source url="…">Publisher</source> names who published."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from news.feeds import NotAFeed, ParsedFeed
from news.fetch import Fetched
from news.items import ItemDraft, clean_link, normalize
from news.parsing import FeedReader
from news.search import SearchRefused, Translation, translate
from news.topics import Term

MAX_QUERY_CHARS = 400
MAX_WORDS = 32  # Google reads no more words than this
REDIRECT_HOST = "news.google.com"
_URL = re.compile(rb"https?://[\x21-\x7e]+")
_PLAIN = re.compile(r"^\w+$")


@dataclass(frozen=True)
class GoogleNews:
    """The Google News RSS search provider; `endpoint` is GOOGLE_NEWS_URL, whose own query
    parameters (hl, gl, ceid: the edition) are kept."""

    endpoint: str = "https://news.google.com/rss/search?hl=en-US&gl=US&ceid=US:en"
    kind: str = "googlenews"
    name: str = "Google News"
    spacing_seconds: int = 5  # no published limit: as polite as GDELT asks

    def translate(self, query: str) -> Translation | None:
        return translate(query, _token, _group)

    def combine(self, options: Sequence[str]) -> str | None:
        text = options[0] if len(options) == 1 else _group(options)
        if len(text) > MAX_QUERY_CHARS or len(text.split()) > MAX_WORDS:
            return None
        return text

    def url(self, query: str, since: timedelta | None) -> str:
        """The query, limited to the last day or hour (when:), in the endpoint's edition."""
        span = "1h" if since is not None and since <= timedelta(hours=1) else "1d"
        parts = urlsplit(self.endpoint)
        parameters = [(k, v) for k, v in parse_qsl(parts.query) if k != "q"]
        parameters.insert(0, ("q", f"{query} when:{span}"))
        return urlunsplit((*parts[:3], urlencode(parameters), ""))

    async def drafts(self, fetched: Fetched, reader: FeedReader) -> list[ItemDraft]:
        """Parsed in the reader's processes, under their time limit, like any feed."""
        try:
            feed = await reader.parse(fetched.body)
        except NotAFeed as exc:
            raise SearchRefused(exc.detail or exc.code) from None
        return drafts(feed, fetched.url)

    def article_link(self, draft: ItemDraft) -> bool:
        """Only an unwrapped link leads to the article; Google's own shows a consent page."""
        return urlsplit(draft.link).hostname != REDIRECT_HOST


def _token(term: Term) -> str | None:
    text = " ".join(term.text.replace('"', " ").split())
    if not text:
        return None
    return text if _PLAIN.match(text) else f'"{text}"'


def _group(options: Sequence[str]) -> str:
    return "(" + " OR ".join(options) + ")"


def drafts(feed: ParsedFeed, url: str) -> list[ItemDraft]:
    """The search feed's items, each with its publisher, its real link where it can be read,
    and its title without the publisher's name."""
    found = []
    for entry in feed.entries:
        draft = normalize(entry, url)
        if draft is not None:
            found.append(_published_by(draft, entry.get("source") or {}))
    return found


def _published_by(draft: ItemDraft, source: dict[str, Any]) -> ItemDraft:
    name = " ".join(str(source.get("title") or "").split())
    host = urlsplit(str(source.get("href") or "")).hostname or ""
    host = host.removeprefix("www.")
    title = draft.title
    if name and title.endswith(f" - {name}"):
        title = title[: -len(name) - 3].rstrip()
    publisher = f"{name} ({host})" if name and host else name or host
    # The description only repeats the title and the publisher as a link.
    return replace(draft, link=unwrapped(draft.link), title=title, summary="",
                   publisher=publisher)


def unwrapped(link: str) -> str:
    """The article's own URL where a Google News link carries it in its id (the older,
    protobuf-in-base64 ids); the link as it is otherwise."""
    parts = urlsplit(link)
    if parts.hostname != REDIRECT_HOST or "/articles/" not in parts.path:
        return link
    token = parts.path.rsplit("/", 1)[-1]
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return link
    found = _URL.search(raw)
    return clean_link(found.group().decode("ascii")) if found else link
