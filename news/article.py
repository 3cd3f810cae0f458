"""Snippet -> full text: fetch the article page under the fetch guard and extract its main text."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cache, lru_cache

import httpx
import trafilatura

from news.fetch import FetchError, FetchPolicy, fetch
from news.guard import Address, Network, embedded_ipv4
from news.items import ItemDraft
from news.text import clean_spaces

log = logging.getLogger(__name__)

MIN_ARTICLE_CHARS = 200  # less than this extracted means a paywall, a cookie wall or a wrong guess
MAX_ARTICLE_CHARS = 20000  # the same cap items.normalize puts on a summary
# trafilatura's cost grows with the page (3 MB of links took 8 s and 367 MB); an article is
# far smaller, so a page past this is not fetched further nor read, and the snippet stays.
MAX_PAGE_BYTES = 2 * 1024 * 1024
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", ""})

Extract = Callable[[bytes, str], Awaitable[str | None]]  # news.parsing.FeedReader.extract


@cache
def _threads() -> ThreadPoolExecutor:
    """Threads for extract(), never ones that rendering or a preview waits for."""
    return ThreadPoolExecutor(2, thread_name_prefix="tidings-extract")


async def in_a_thread(html: bytes, url: str) -> str | None:
    """extract() on threads of its own, built on first use: the default of tests and benches.
    The bot passes FeedReader.extract instead (its reader, built by app.py): a process it can
    kill when the page overruns."""
    return await asyncio.get_running_loop().run_in_executor(_threads(), extract, html, url)


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


def pages_policy(policy: FetchPolicy, feed_url: str, feed_address: str | None) -> FetchPolicy:
    """The policy for a feed's article pages. Their links are chosen by the feed's publisher,
    not by the admin who allowed networks for their own feeds, so they may reach public
    addresses only, and an allowed network only if the feed itself came from inside it
    (`feed_address`, or the feed URL's own address when the connection did not tell)."""
    if not policy.allowed_networks:
        return policy
    address = _address(feed_address) or _address(httpx.URL(feed_url).host)
    candidates = () if address is None else (address, embedded_ipv4(address) or address)
    inside = tuple(net for net in policy.allowed_networks
                   if any(candidate in net for candidate in candidates))
    if inside == tuple(policy.allowed_networks):
        return policy
    try:
        return _narrowed(policy, inside)
    except TypeError:  # a policy with an unhashable field: a copy for this poll
        return replace(policy, allowed_networks=inside)


@lru_cache(maxsize=32)
def _narrowed(policy: FetchPolicy, networks: tuple[Network, ...]) -> FetchPolicy:
    """One copy per policy and network, so article fetches share its per-host slots."""
    return replace(policy, allowed_networks=networks)


def _address(text: str | None) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]")) if text else None
    except ValueError:  # a host name
        return None


def _page_policy(policy: FetchPolicy) -> FetchPolicy:
    """The policy with the page cap; one copy per policy where it can be kept, so its per-host
    slots are shared by every article fetch (a copy has slots of its own)."""
    try:
        return _capped(policy)
    except TypeError:  # a policy with an unhashable field: a copy for this fetch
        return replace(policy, max_bytes=min(policy.max_bytes, MAX_PAGE_BYTES))


@lru_cache(maxsize=8)
def _capped(policy: FetchPolicy) -> FetchPolicy:
    return replace(policy, max_bytes=min(policy.max_bytes, MAX_PAGE_BYTES))


async def _full_text(
    client: httpx.AsyncClient, url: str, policy: FetchPolicy, extractor: Extract
) -> str | None:
    """One page through the same guard as feeds, at most MAX_PAGE_BYTES, read off the loop."""
    fetched = await fetch(client, url, _page_policy(policy))
    if not fetched.body or not _is_html(fetched.content_type) \
            or len(fetched.body) > MAX_PAGE_BYTES:
        log.debug("no article text at %s: %r, %d bytes", url, fetched.content_type,
                  len(fetched.body))
        return None
    return await extractor(fetched.body, fetched.url)


async def complete(
    client: httpx.AsyncClient,
    drafts: list[ItemDraft],
    policy: FetchPolicy,
    *,
    limit: int = 4,
    timeout: float = 15.0,
    extractor: Extract = in_a_thread,
) -> list[ItemDraft]:
    """Swap snippets for full texts within one time budget; whatever fails keeps its snippet.
    A page over MAX_PAGE_BYTES is not read; `extractor` bounds each extraction's time."""
    gate = asyncio.Semaphore(max(1, limit))
    found: dict[int, ItemDraft] = {}

    async def one(index: int, draft: ItemDraft) -> None:
        """Fill `found[index]` or leave it empty; never raise, so no sibling is cancelled."""
        try:
            async with gate:
                text = await _full_text(client, draft.link, policy, extractor)
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
