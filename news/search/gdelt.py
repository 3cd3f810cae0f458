"""GDELT's DOC 2.0 API (mode=artlist): no key, 65 languages, direct article links.

Its syntax: words AND-ed by spaces, "quoted phrases", OR only inside parentheses (which do
not nest), -exclusions. It refuses words under three characters, and answers more than one
request every five seconds with a plain-text refusal."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from news.fetch import Fetched
from news.items import ItemDraft, clean_link
from news.parsing import FeedReader
from news.search import QueryRefused, SearchRefused, Translation, translate
from news.text import TITLE_CHARS, clean_spaces, clip
from news.topics import Term, unspaced

MAX_QUERY_CHARS = 250  # GDELT refuses long queries; kept well under what it takes
MIN_WORD_CHARS = 3  # GDELT: "The specified phrase is too short"
MIN_PHRASE_CHARS = 5  # a quoted phrase must be longer still
# What GDELT answers (in plain text, with a 200) about a query it will not run.
QUERY_ERRORS = ("phrase is too short", "too short or too long", "must be surrounded by",
                "illegal character", "invalid query")
MAX_RECORDS = 250  # the most artlist returns
FIRST_SPAN = timedelta(days=1)  # a first search records the last day's articles
MIN_SPAN = timedelta(minutes=15)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Gdelt:
    """The GDELT provider; `endpoint` is GDELT_API_URL."""

    endpoint: str = "https://api.gdeltproject.org/api/v2/doc/doc"
    kind: str = "gdelt"
    name: str = "GDELT"
    # GDELT asks for 5 s between requests; one more covers the time from a turn's claim to
    # its request's arrival, which its limit counts by.
    spacing_seconds: int = 6

    def translate(self, query: str) -> Translation | None:
        return translate(query, _token, _group)

    def combine(self, options: Sequence[str]) -> str | None:
        text = options[0] if len(options) == 1 else _group(options)
        return text if len(text) <= MAX_QUERY_CHARS else None

    def url(self, query: str, since: timedelta | None) -> str:
        span = max(since or FIRST_SPAN, MIN_SPAN)
        minutes = int(span.total_seconds() // 60) + 1
        parameters = {"query": query, "mode": "artlist", "format": "json",
                      "maxrecords": str(MAX_RECORDS), "sort": "datedesc",
                      "timespan": f"{minutes}min"}
        return f"{self.endpoint}?{urlencode(parameters)}"

    async def drafts(self, fetched: Fetched, reader: FeedReader) -> list[ItemDraft]:
        """JSON, read on a thread: no XML parser is involved."""
        return await asyncio.to_thread(drafts, fetched.body)

    def article_link(self, draft: ItemDraft) -> bool:
        return True  # GDELT links are the publishers' own


def _token(term: Term) -> str | None:
    """One word as it is, several as a quoted phrase (GDELT reads punctuation as a space in
    text, and refuses it in a word: "Hauts-de-France" is the phrase "Hauts de France"); too
    short for GDELT, None."""
    words = _WORD.findall(term.text)
    if len(words) == 1:
        word = words[0]
        return word if len(word) >= MIN_WORD_CHARS or unspaced(word) else None
    phrase = " ".join(words)
    return f'"{phrase}"' if len(phrase) >= MIN_PHRASE_CHARS or unspaced(phrase) else None


def _group(options: Sequence[str]) -> str:
    return "(" + " OR ".join(options) + ")"


def drafts(body: bytes) -> list[ItemDraft]:
    """artlist JSON as drafts; anything else (GDELT's plain-text refusals and error pages) is
    a refusal. GDELT answers a search that found nothing with `{}`."""
    try:
        answer = json.loads(body.decode("utf-8", errors="replace"), strict=False)
    except ValueError:
        said = _first_line(body)
        if any(error in said.lower() for error in QUERY_ERRORS):
            raise QueryRefused(said) from None
        raise SearchRefused(said) from None
    if not isinstance(answer, dict):
        raise SearchRefused(_first_line(body))
    articles = answer.get("articles") or []
    if not isinstance(articles, list):
        raise SearchRefused("articles is not a list")
    return [draft for article in articles if (draft := _draft(article)) is not None]


def _draft(article: Any) -> ItemDraft | None:
    if not isinstance(article, dict):
        return None
    url, title = str(article.get("url") or ""), str(article.get("title") or "")
    if not url.startswith(("http://", "https://")) or not title.strip():
        return None
    link = clean_link(url)
    domain = str(article.get("domain") or "").strip()
    return ItemDraft(guid=link[:2000], link=link,
                     title=clip(clean_spaces(title).replace("\n", " "), TITLE_CHARS),
                     summary="", published_at=_seen(str(article.get("seendate") or "")),
                     publisher=domain)


def _seen(value: str) -> datetime | None:
    """GDELT's seendate, 20261207T101500Z."""
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    text = re.sub(r"<[^>]+>", " ", text)  # an HTML page: its words, not its tags
    return clip(" ".join(text.split()), 200)
