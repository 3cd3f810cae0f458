"""feed entries -> items: normalized fields and a stable identity for deduplication."""

from __future__ import annotations

import hashlib
from calendar import timegm
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import urljoin, urlsplit

from news.stories import signature, signature_text
from news.text import TITLE_CHARS, clean_spaces, clip, has_sentences, html_to_text
from news.types import clean_link

SNIPPET_CHARS = 400  # a summary shorter than this is a teaser, not the story
SNIPPET_SENTENCES = 3  # nor is one of fewer sentences than a lead


@dataclass(frozen=True)
class ItemDraft:
    """An entry as Tidings stores it, before it has a row."""

    guid: str
    link: str
    title: str
    summary: str
    published_at: datetime | None
    # Sentences that recur across the feed's entries (news.stories.boilerplate), which the
    # signature skips; one frozenset shared by a feed's drafts, so it pickles once.
    boilerplate: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    # Who published it, where that is not the source itself (a search provider's result:
    # news.search); stored as the item's source name.
    publisher: str = ""

    # Derived once, where the draft is made (a parser process), and pickled along with it
    # (news.parsing.read_feed).
    @cached_property
    def content_hash(self) -> str:
        """sha1 of title and text: the same article re-published under a new guid is not new."""
        return hashlib.sha1(f"{self.title}\n{self.summary}".encode()).hexdigest()

    @cached_property
    def signature(self) -> str:
        """The story signature of headline and lead (news.stories), as stories store it: one
        string pickles and unpickles ten times faster than a set of thirty."""
        return signature_text(signature(self.title, self.summary, self.boilerplate))

    @cached_property
    def snippet(self) -> bool:
        """A teaser, not the story: a short summary, or one of fewer sentences than a lead,
        with a page behind it worth a second request (news.article)."""
        try:
            parts = urlsplit(self.link)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        summary = self.summary.strip()
        return len(summary) < SNIPPET_CHARS or not has_sentences(summary, SNIPPET_SENTENCES)


def _published(entry: dict[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(timegm(value), UTC)
            except (OverflowError, ValueError, TypeError):
                continue
    return None


def _summary(entry: dict[str, Any]) -> str:
    """The longest text the entry carries: content beats summary when both exist."""
    candidates = [str(entry.get("summary") or "")]
    candidates += [str(part.get("value") or "") for part in entry.get("content") or []]
    return max((html_to_text(candidate) for candidate in candidates), key=len)


def normalize(entry: dict[str, Any], feed_url: str) -> ItemDraft | None:
    """One feed entry as an item, or None when it has neither a title nor text to show."""
    summary = _summary(entry)
    title = clean_spaces(html_to_text(str(entry.get("title") or ""))).replace("\n", " ")
    if not title and not summary:
        return None
    raw_link = str(entry.get("link") or "")
    link = clean_link(urljoin(feed_url, raw_link)) if raw_link else ""
    guid = str(entry.get("id") or "").strip() or link
    if not guid:
        guid = "sha1:" + hashlib.sha1(f"{title}\n{summary}".encode()).hexdigest()
    return ItemDraft(
        guid=guid[:2000],
        link=link,
        title=clip(title, TITLE_CHARS) if title else clip(summary.split("\n")[0], 200),
        summary=summary[:20000],
        published_at=_published(entry),
    )
