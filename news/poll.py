"""One source's poll, the whole path top to bottom, and the pass over every source due.

`poll` reads as SPEC §2 for one source: fetch -> parse -> unseen -> article text, then
`store` takes the outcome to news.ingest, whose one transaction goes unseen -> place ->
store -> match -> enqueue. Wrapped around it rather than woven through it: `poll_due` runs
polls side by side (news.workers.drain) and stores outcomes that finish together in one
transaction (news.workers.Batched), one by one when that fails (news.ingest.ingest_each).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import httpx
from sqlmodel import Session

from news import heap
from news.article import complete, pages_policy
from news.feeds import NotAFeed
from news.fetch import FetchError, FetchPolicy, fetch
from news.hubs import advertised
from news.ingest import Outcome, ingest_all, ingest_each, unseen
from news.items import ItemDraft
from news.newsroom import Newsroom
from news.parsing import FeedReader, ReadFeed
from news.workers import Batched, drain
from storage import sources
from storage.db import database_now, db, in_thread
from storage.sources import DueSource

log = logging.getLogger(__name__)


def failed(*, session: Session, source: DueSource, error: FetchError | NotAFeed) -> bool:
    """Record the failure; True when it paused the source."""
    code, detail = error.code, error.detail
    retry_after = error.retry_after if isinstance(error, FetchError) else 0
    return sources.record_failure(session=session, source_id=source.id, code=code,
                                  detail=detail, retry_after=retry_after)


# Parses in threads: the default of tests and benches. The bot passes the reader app.py built
# (services.Services.reader), as it does every object that keeps state between calls.
INLINE = FeedReader(0)


# Feeds in flight; each waits on a distant server far more than on CPU. Polls of one host
# beyond its limit (FetchPolicy.per_host) wait for its slots, and sources added together (an
# OPML file) are often of one host, so this leaves room for many more than are fetched at once.
POLL_CONCURRENCY = 128


@dataclass(frozen=True)
class Polled:
    """One poll's outcome: new stories, and whether repeated failures just paused the source."""

    new: int = 0
    paused: DueSource | None = None
    error: FetchError | NotAFeed | None = None
    source_id: int = 0
    hub: tuple[str, str] | None = None  # the WebSub hub and topic it names; None: not read


Store = Callable[[Outcome], Awaitable[int]]  # how a poll's outcome reaches the database


async def store_now(room: Newsroom, outcome: Outcome) -> int:
    """One poll's outcome in a transaction of its own."""
    return (await in_thread(ingest_all, room, [outcome], thread=room.database))[0]


async def poll(
    room: Newsroom,
    client: httpx.AsyncClient,
    policy: FetchPolicy,
    source: DueSource,
    *,
    full_text: bool = True,
    reader: FeedReader = INLINE,
    store: Store | None = None,
) -> Polled:
    """Poll one source: unchanged costs a 304; failures are recorded, never raised. `store`
    takes the outcome to the database (poll_due's shares transactions between polls)."""
    try:
        # fetch
        fetched = await fetch(client, source.url, policy, etag=source.etag,
                              last_modified=source.last_modified)
        fresh: list[ItemDraft] = []
        ttl, checked, hub = 0, False, None
        if not fetched.not_modified:
            # parse -> unseen -> article text
            feed, fresh, checked = await read_entries(
                room, client, policy, source, fetched.body, fetched.url, fetched.address,
                full_text=full_text, reader=reader)
            ttl = feed.ttl_seconds
            # the WebSub hub it names, if any (news.websub subscribes there)
            hub = advertised(feed.hubs, feed.self_url, fetched.links, fetched.url)
    except (FetchError, NotAFeed) as exc:
        log.info("source %s failed: %s", source.id, exc)
        paused = await db(room.engine, failed, source=source, error=exc, thread=room.database)
        return Polled(paused=source if paused else None, error=exc, source_id=source.id)
    # unseen -> place -> store -> match -> enqueue (news.ingest.ingest_all), in one transaction
    outcome = Outcome(source, fresh, fetched, ttl, unseen_checked=checked)
    new = await (store or partial(store_now, room))(outcome)
    if new:
        log.info("source %s: %d new items", source.id, new)
    return Polled(new=new, source_id=source.id, hub=hub)


async def read_entries(
    room: Newsroom, client: httpx.AsyncClient, policy: FetchPolicy, source: DueSource,
    body: bytes, url: str, address: str | None, *, full_text: bool, reader: FeedReader,
) -> tuple[ReadFeed, list[ItemDraft], bool]:
    """A feed's bytes as the drafts to store, for a poll and a WebSub push (news.websub)
    alike; and whether they were already narrowed to the unseen ones."""
    # parse
    feed = await reader.read(body, url)
    fresh, checked = feed.drafts, False
    if full_text and any(draft.snippet for draft in fresh):
        # unseen, early: only unseen entries may cost an article fetch; snippets get the
        # article's text
        fresh = await db(room.engine, unseen, source=source, drafts=fresh, thread=room.database)
        checked = True
        pages = pages_policy(policy, url, address)
        fresh = await complete(client, fresh, pages, extractor=reader.extract)
    return feed, fresh, checked


def _claim_due(
    *, session: Session, now: datetime | None, limit: int,
) -> tuple[datetime, list[DueSource]]:
    """A pass's claim, and the time it claims by: the first reads the database's clock in
    its own transaction, which an idle tick would otherwise spend a thread hop on."""
    now = now or database_now(session)
    return now, sources.claim_due(session=session, now=now, limit=limit)


async def poll_due(
    room: Newsroom,
    client: httpx.AsyncClient,
    policy: FetchPolicy,
    *,
    concurrency: int = POLL_CONCURRENCY,
    full_text: bool = True,
    reader: FeedReader = INLINE,
) -> list[Polled]:
    """Poll the sources due now side by side (news.workers.drain); a poll that fails
    unexpectedly is logged, and its source tried at its next turn. Polls that finish while
    the database is busy with others are stored together (news.workers.Batched)."""
    results: list[Polled] = []
    # Only what is due by the pass's start, by the database's clock (every replica's), which
    # its first claim reads: a pass ends, and no source is polled twice at once.
    started: datetime | None = None

    async def claim() -> list[DueSource]:
        nonlocal started
        started, due = await db(room.engine, _claim_due, now=started, limit=concurrency,
                                thread=room.database)
        return due

    async def store_together(outcomes: list[Outcome]) -> Sequence[int | Exception]:
        return await in_thread(ingest_each, room, outcomes, thread=room.database)

    store = Batched(store_together, limit=concurrency)

    async def handle(source: DueSource) -> None:
        results.append(await poll(room, client, policy, source, full_text=full_text,
                                  reader=reader, store=store))

    try:
        await drain(claim, handle, workers=concurrency, queued=concurrency, limit=concurrency,
                    name=lambda source: f"polling source {source.id}")
    finally:  # stopped: outcomes not yet stored are dropped with their polls
        await store.close()
        if results:  # what the pass freed, given back (news.heap)
            heap.release()
    return results
