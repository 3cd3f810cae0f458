"""Each provider's turn: the next followed queries, one request, and its results stored as
items of the provider's source, through the same steps as a feed's poll (news.poll)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlmodel import Session

from news.article import complete
from news.fetch import Fetched, FetchError, FetchPolicy, fetch
from news.ingest import Outcome, clustered, ingest_all, store_drafts, unseen
from news.items import ItemDraft
from news.newsroom import Newsroom
from news.parsing import FeedReader
from news.poll import INLINE, failed
from news.search import Provider, QueryRefused, Request, pack
from storage import deliveries, searches, sources
from storage.db import database_now, db, in_thread, session_scope
from storage.sources import DueSource

log = logging.getLogger(__name__)

# Pages no article text is read from: where a redirect or a consent wall leads instead.
NOT_ARTICLES = frozenset({"news.google.com", "consent.google.com", "consent.youtube.com",
                          "consent.yahoo.com", "guce.yahoo.com", "www.bing.com"})


LEASE = timedelta(minutes=2)  # a turn: a fetch (20 s at most), its article pages (15 s), storing


@dataclass(frozen=True)
class Searched:
    """One provider's turn: the request it made, new stories, and a failure if it failed."""

    source: DueSource
    request: Request | None = None
    first: bool = False
    new: int = 0
    paused: bool = False
    error: FetchError | None = None


@dataclass(frozen=True)
class Turn:
    """What a provider's turn asks about: its source row and the queries due."""

    source: DueSource
    due: list[searches.Due]
    now: datetime


class Searching:
    """The providers this bot asks, and how often each followed query is asked again. Their
    rows in the sources table are made (or dropped) on the first sweep."""

    def __init__(self, providers: Sequence[Provider], interval_seconds: int) -> None:
        self.providers = list(providers)
        self.interval = timedelta(seconds=interval_seconds)
        self.synced = False
        # Per provider, queries to ask alone: a request they shared was refused for a query.
        self.alone: dict[str, set[str]] = {provider.kind: set() for provider in providers}

    async def sweep(self, room: Newsroom, client: httpx.AsyncClient, policy: FetchPolicy, *,
                    reader: FeedReader = INLINE, full_text: bool = True) -> list[Searched]:
        """Every provider whose spacing has passed makes one request, side by side."""
        if not self.synced:
            await db(room.engine, _sync, providers=self.providers, thread=room.database)
            self.synced = True
            log.info("search providers: %s", ", ".join(
                f"{p.kind} at {p.endpoint}" for p in self.providers) or "none")
        turns = [search(room, client, policy, provider, self.interval, reader=reader,
                        full_text=full_text, alone=self.alone[provider.kind])
                 for provider in self.providers]
        results: list[Searched] = []
        for provider, done in zip(self.providers, await asyncio.gather(
                *turns, return_exceptions=True), strict=True):
            if isinstance(done, BaseException):  # one provider's bug costs only its turn
                if not isinstance(done, Exception):
                    raise done
                log.error("search provider %s: turn failed", provider.kind, exc_info=done)
            elif done is not None:
                results.append(done)
        return results


def _sync(*, session: Session, providers: Sequence[Provider]) -> None:
    configured = [searches.Configured(p.kind, p.name, p.endpoint, p.spacing_seconds)
                  for p in providers]
    searches.sync(session=session, providers=configured)
    if configured:
        searches.forget_unfollowed(session=session)


def _turn(*, session: Session, kind: str, interval: timedelta) -> Turn | None:
    """Claimed with the time of the claim itself, not of the call: the database thread may
    have been busy, and the spacing counts from here to the next request. The claim holds
    until the turn is over (released, or a failure's backoff), or LEASE has passed: no
    replica asks about the same queries while another still stores their results."""
    now = database_now(session)
    source = searches.claim(session=session, kind=kind, now=now, lease=LEASE)
    if source is None:
        return None
    return Turn(source, searches.due(session=session, source_id=source.id, now=now,
                                     interval=interval), now)


def _searched(*, session: Session, source: DueSource, queries: Sequence[str], now: datetime
              ) -> None:
    searches.searched(session=session, source_id=source.id, queries=queries, now=now)


def plan(provider: Provider, due: Sequence[searches.Due], now: datetime,
         alone: Collection[str] = ()
         ) -> tuple[Request | None, bool, timedelta | None, list[str]]:
    """The request to make: queries never searched go first and alone among themselves (their
    results are a baseline, never alerted); others are asked about since they last were. Also
    whether it is a first search, the time since, and the queries the provider cannot ask."""
    first = [one.query for one in due if one.searched_at is None]
    request, skipped = pack(provider, first or [one.query for one in due], alone)
    if request is None or first:
        return request, bool(first), None, skipped
    last = {one.query: one.searched_at for one in due}
    oldest = min(at for query in request.queries if (at := last[query]) is not None)
    return request, False, now - oldest, skipped


async def search(room: Newsroom, client: httpx.AsyncClient, policy: FetchPolicy,
                 provider: Provider, interval: timedelta, *, reader: FeedReader = INLINE,
                 full_text: bool = True, alone: set[str] | None = None) -> Searched | None:
    """One request of this provider, if it is its turn and a query is due; failures are
    recorded on its source (backoff, pause) like a feed's, never raised. A query the
    provider refuses is no failure of the provider's: shared, its queries are asked alone
    from then on (`alone`); alone, it has had its turn."""
    turn = await db(room.engine, _turn, kind=provider.kind, interval=interval,
                    thread=room.database)
    if turn is None:
        return None
    done = await _take(room, client, policy, provider, turn, reader=reader,
                       full_text=full_text, alone=set() if alone is None else alone)
    if done is None or not done.error or isinstance(done.error, QueryRefused):
        await db(room.engine, _release, turn=turn, thread=room.database)  # a failure: backoff
    return done


def _release(*, session: Session, turn: Turn) -> None:
    searches.release(session=session, source_id=turn.source.id, claimed_at=turn.now)


async def _take(room: Newsroom, client: httpx.AsyncClient, policy: FetchPolicy,
                provider: Provider, turn: Turn, *, reader: FeedReader, full_text: bool,
                alone: set[str]) -> Searched | None:
    if not turn.due:
        return None
    now = turn.now
    request, first, since, skipped = plan(provider, turn.due, now, alone)
    if skipped:
        await db(room.engine, _searched, source=turn.source, queries=skipped, now=now,
                 thread=room.database)
    if request is None:
        return None
    try:
        fetched = await fetch(client, provider.url(request.text, since), policy)
        drafts = await provider.drafts(fetched, reader)
    except QueryRefused as exc:
        log.info("search provider %s refused %s: %s", provider.kind, request.queries, exc)
        if len(request.queries) > 1:
            alone.update(request.queries)
        else:
            await db(room.engine, _searched, source=turn.source, queries=request.queries,
                     now=now, thread=room.database)
        return Searched(turn.source, request, first, error=exc)
    except FetchError as exc:
        log.info("search provider %s failed: %s", provider.kind, exc)
        paused = await db(room.engine, failed, source=turn.source, error=exc,
                          thread=room.database)
        return Searched(turn.source, request, first, paused=paused, error=exc)
    fresh = await db(room.engine, unseen, source=turn.source, drafts=drafts,
                     thread=room.database)
    if full_text:
        fresh = await _completed(client, provider, fresh, policy, reader)
    new = await in_thread(_store, room, turn.source, fresh, fetched, first, request.queries,
                          now, thread=room.database)
    log.info("search provider %s: %d queries, %d results, %d unseen, %d new stories%s",
             provider.kind, len(request.queries), len(drafts), len(fresh), new,
             " (first search: recorded, not alerted)" if first else "")
    return Searched(turn.source, request, first, new)


async def _completed(client: httpx.AsyncClient, provider: Provider, drafts: list[ItemDraft],
                     policy: FetchPolicy, reader: FeedReader) -> list[ItemDraft]:
    """Article text for the results whose links lead to articles; a page that turns out to be
    a redirect's or a consent wall's is never taken as one."""
    async def extract(html: bytes, url: str) -> str | None:
        if (urlsplit(url).hostname or "") in NOT_ARTICLES:
            return None
        return await reader.extract(html, url)

    readable = [index for index, draft in enumerate(drafts) if provider.article_link(draft)]
    completed = await complete(client, [drafts[index] for index in readable], policy,
                               extractor=extract)
    done = list(drafts)
    for index, draft in zip(readable, completed, strict=True):
        done[index] = draft
    return done


def _store(room: Newsroom, source: DueSource, drafts: Sequence[ItemDraft], fetched: Fetched,
           first: bool, queries: Sequence[str], now: datetime) -> int:
    """A first search's results as a baseline (stored, never alerted, as /addsource stores a
    feed's entries); later results as any poll's, matched against every topic."""
    if not first:
        new = ingest_all(room, [Outcome(source, drafts, fetched, unseen_checked=True)])[0]
        with session_scope(room.engine) as session:
            _searched(session=session, source=source, queries=queries, now=now)
        return new
    with clustered(room) as (session, clusters):
        sources.record_success(session=session, source_id=source.id, etag=None,
                               last_modified=None)
        stored = store_drafts(session, clusters, source.id, source.name, drafts,
                              unseen_checked=True)
        if stored.joined:
            deliveries.flag_edits(session=session, story_ids=stored.joined)
        searches.searched(session=session, source_id=source.id, queries=queries, now=now)
    return 0
