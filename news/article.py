"""Snippet -> full text: fetch the article page under the fetch guard and extract its main text."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import httpx
import trafilatura

from news.fetch import FetchError, FetchPolicy, fetch
from news.items import ItemDraft
from news.text import clean_spaces

log = logging.getLogger(__name__)

MIN_ARTICLE_CHARS = 200  # less than this extracted means a paywall, a cookie wall or a wrong guess
MAX_ARTICLE_CHARS = 20000  # the same cap items.normalize puts on a summary
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", ""})


def extract(html: bytes, url: str, *, max_chars: int = MAX_ARTICLE_CHARS) -> str | None:
    """The page's main text as plain paragraphs, or None: pages are hostile input, never raise."""
    try:
        text = trafilatura.extract(
            html,
            url=url,
            output_format="txt",
            include_comments=False,
            include_tables=False,
            favor_precision=True,
        )
    except Exception as exc:  # a parser bug on a strange page must not lose the item
        log.debug("extraction failed for %s: %r", url, exc)
        return None
    text = clean_spaces(text or "")
    if len(text) < MIN_ARTICLE_CHARS:
        return None
    return text[:max_chars].rstrip()


def _is_html(content_type: str) -> bool:
    """Only HTML pages have a main text to find; a PDF or an image would be parsed as garbage."""
    return content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES


async def _full_text(client: httpx.AsyncClient, url: str, policy: FetchPolicy) -> str | None:
    """One page through the same guard as feeds, parsed off the event loop."""
    fetched = await fetch(client, url, policy)
    if not fetched.body or not _is_html(fetched.content_type):
        log.debug("no article text at %s: %r, %d bytes", url, fetched.content_type,
                  len(fetched.body))
        return None
    return await asyncio.to_thread(extract, fetched.body, fetched.url)


async def complete(
    client: httpx.AsyncClient,
    drafts: list[ItemDraft],
    policy: FetchPolicy,
    *,
    limit: int = 4,
    timeout: float = 15.0,
) -> list[ItemDraft]:
    """Swap snippets for full texts within one time budget; whatever fails keeps its snippet."""
    gate = asyncio.Semaphore(max(1, limit))
    found: dict[int, ItemDraft] = {}

    async def one(index: int, draft: ItemDraft) -> None:
        """Fill `found[index]` or leave it empty; never raise, so no sibling is cancelled."""
        try:
            async with gate:
                text = await _full_text(client, draft.link, policy)
        except FetchError as exc:
            log.debug("article fetch failed for %s: %s", draft.link, exc)
            return
        except Exception:  # best effort: a bug here must not cost the batch its items
            log.warning("article text failed for %s", draft.link, exc_info=True)
            return
        if text and len(text) > len(draft.summary):
            found[index] = replace(draft, summary=text)

    wanted = [(index, draft) for index, draft in enumerate(drafts) if draft.snippet]
    if wanted:
        try:
            async with asyncio.timeout(timeout), asyncio.TaskGroup() as group:
                for index, draft in wanted:
                    group.create_task(one(index, draft))
        except TimeoutError:
            log.debug("article batch ran past %.1fs; %d of %d completed",
                      timeout, len(found), len(wanted))
    return [found.get(index, draft) for index, draft in enumerate(drafts)]
