"""SPEC §2 in one place: source -> fetch -> items -> stories -> match -> deliveries -> brief."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import httpx
from sqlalchemy import Engine
from sqlmodel import Session

from news import heap
from news.article import complete, pages_policy
from news.briefs import BriefWriter, StoryText, Written, adjusted_level, offline_brief
from news.digest import Entry
from news.feeds import NotAFeed, ParsedFeed
from news.fetch import Fetched, FetchError, FetchPolicy, fetch
from news.items import ItemDraft
from news.language import is_rtl
from news.matcher_cache import MatcherCache
from news.matching import Matcher, Topic
from news.parsing import FeedReader, drafts_of
from news.render import SourceRef, Translate, render_brief
from news.stories import Clusters, Placement
from news.text import without_headline
from news.workers import Batched, drain
from storage import briefs, deliveries, items, locks, sources, subscriptions, usage
from storage.db import database_now, database_time, db, session_scope
from storage.items import NewStory
from storage.sources import DueSource

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class CheckedFeed:
    """A URL that turned out to be (or to point at) a readable feed."""

    url: str
    feed: ParsedFeed
    discovered: bool
    etag: str | None = None
    last_modified: str | None = None


async def check_feed(
    client: httpx.AsyncClient, url: str, policy: FetchPolicy, reader: FeedReader | None = None
) -> CheckedFeed:
    """Fetch and parse now, in the reader's worker processes (never on the event loop); an
    HTML page is searched for its advertised feed. A feed refused for what it is (entities,
    a parse that overran) is not searched: only a page that is no feed at all may link one."""
    reader = reader or INLINE
    fetched = await fetch(client, url, policy)
    try:
        feed = await reader.parse(fetched.body)
        return CheckedFeed(fetched.url, feed, False, fetched.etag, fetched.last_modified)
    except NotAFeed as exc:
        if exc.code != NotAFeed.code:
            raise
        links = await reader.discover(fetched.body, fetched.url)
        if not links:
            raise
    fetched = await fetch(client, links[0], policy)
    feed = await reader.parse(fetched.body)
    return CheckedFeed(fetched.url, feed, True, fetched.etag, fetched.last_modified)


class Newsroom:
    """What one running bot keeps between polls: the story index, the matcher cache and the
    thread its polls' database work runs on. bot.py builds one and services.Services holds
    it; a second process is just another owner, and the database keeps owners agreeing."""

    def __init__(self, engine: Engine, keys: locks.Keys | None = None) -> None:
        self.engine = engine
        self.keys = keys or locks.Keys.of(engine)  # its story lock's key among them
        self.clusters = Clusters()
        self.lock = threading.Lock()  # ingests run in worker threads and share the index
        self.matchers = MatcherCache()
        # Polling's database work runs on one thread of its own: SQLite takes one writer at a
        # time, and writers racing from several threads (or from the event loop) sleep in its
        # busy handler while the loop stalls; queued on one thread they follow each other.
        self.database = ThreadPoolExecutor(1, thread_name_prefix="tidings-poll-db")

    async def in_database(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.database, partial(function, *args))

    def close(self) -> None:
        self.database.shutdown(wait=False, cancel_futures=True)


# How far back each top-up of the story index looks again on PostgreSQL. Stories are stamped
# with the database's clock while their ingest holds the story lock, so stamps follow commit
# order and none is missed; the overlap only absorbs that clock stepping back a little.
OVERLAP = timedelta(seconds=2)


@contextmanager
def clustered(room: Newsroom) -> Iterator[tuple[Session, Clusters]]:
    """One transaction with the story index, topped up with the stories every process stored.

    On PostgreSQL the transaction first takes the story lock (storage.locks.Keys.stories), which it
    holds until it commits: ingests of all replicas place stories one at a time, each after
    loading what the one before committed, so two replicas that ingest one event at the same
    moment make one story. When the transaction fails, its commit included, the index may
    hold stories that were rolled back, so it is emptied and reloaded from the database."""
    clusters = room.clusters
    with room.lock:
        try:
            with session_scope(room.engine) as session:
                locks.xact_lock(session, room.keys.stories)
                now = database_now(session)  # stories are stamped by the database's clock
                overlap = OVERLAP if room.engine.dialect.name == "postgresql" else timedelta(0)
                clusters.load(items.signatures_since(
                    session=session, since=now - clusters.window,
                    after=clusters.after(overlap)), now)
                yield session, clusters
        except BaseException:
            clusters.reset()
            raise


def store_drafts(
    session: Session, clusters: Clusters, source_id: int, source_name: str,
    drafts: Sequence[ItemDraft], *, unseen_checked: bool = False,
) -> items.Stored:
    """Unseen drafts join recent stories or start new ones, which the index then learns. Only
    near-identical text joins a story: entries that share a link (a podcast's home page, a
    day's page) are different items, and may be different news."""
    fresh = (list(drafts) if unseen_checked
             else items.unseen(session=session, source_id=source_id, drafts=drafts))
    old = items.seen_before_upgrade(session=session, source_id=source_id, drafts=fresh)
    if old:  # stored, never alerted: Tidings before migration 0008 had taken them as seen
        _place(session, clusters, source_id, source_name, old)
        skipped = {id(draft) for draft in old}
        fresh = [draft for draft in fresh if id(draft) not in skipped]
    return _place(session, clusters, source_id, source_name, fresh)


def _place(session: Session, clusters: Clusters, source_id: int, source_name: str,
           drafts: Sequence[ItemDraft]) -> items.Stored:
    # Clusters.place also puts batch-mates that share a link into one story: it is handed
    # twins of the drafts without their links, so that only their text counts.
    twins = [_without_link(draft) for draft in drafts]
    original = {id(twin): draft for twin, draft in zip(twins, drafts, strict=True)}
    placement = _confirmed(session, clusters, twins, source_id)
    placement.joins = [(original[id(twin)], story_id) for twin, story_id in placement.joins]
    placement.groups = [[original[id(twin)] for twin in group] for group in placement.groups]
    stored = items.store(session=session, source_id=source_id, source_name=source_name,
                         placement=placement)
    clusters.settle(placement.keys, [story.id for story in stored.new], stored.created)
    return stored


def _confirmed(session: Session, clusters: Clusters, drafts: Sequence[ItemDraft],
               source_id: int) -> Placement:
    """Clusters.place, with every story it joins confirmed in the database: the index never
    decides alone. A story the database no longer has leaves the index, and the drafts are
    placed again without it."""
    while True:
        placement = clusters.place(drafts, {}, source_id)
        joined = {story_id for _, story_id in placement.joins}
        gone = joined - items.existing(session=session, story_ids=joined)
        if not gone:
            return placement
        log.info("stories %s left the database; placing again without them", sorted(gone))
        clusters.unplace(placement)
        clusters.forget(gone)


def _without_link(draft: ItemDraft) -> ItemDraft:
    """The draft with no link, its signature (derived in a parser process) carried over."""
    if not draft.link:
        return draft
    twin = replace(draft, link="")
    twin.__dict__["signature"] = draft.signature  # where cached_property keeps it
    return twin


def add_source(
    room: Newsroom, checked: CheckedFeed, name: str, interval_seconds: int
) -> tuple[int, int]:
    """Store the source and its current entries as a baseline that is never alerted; its id
    and how many entries it tracks."""
    with clustered(room) as (session, clusters):
        source = sources.add(session=session, url=checked.url, name=name,
                             interval_seconds=interval_seconds)
        assert source.id is not None
        sources.record_success(session=session, source_id=source.id, etag=checked.etag,
                               last_modified=checked.last_modified)
        stored = store_drafts(session, clusters, source.id, source.name,
                              drafts_of(checked.feed, checked.url))
        return source.id, stored.items


def match(story: NewStory, matcher: Matcher) -> set[int]:
    """The subscriptions that want this story. Their chats are looked up when the deliveries
    are written (deliveries.enqueue_matches): the cached matcher may predate a migration."""
    return {topic.id for topic in matcher.match(story.text)}


def unseen(engine: Engine, source: DueSource, drafts: Sequence[ItemDraft]) -> list[ItemDraft]:
    """The entries this source never published, so only those cost an article fetch."""
    with session_scope(engine) as session:
        return items.unseen(session=session, source_id=source.id, drafts=drafts)


@dataclass(frozen=True)
class Outcome:
    """A poll that reached its feed: the entries to store and the response's validators."""

    source: DueSource
    drafts: Sequence[ItemDraft] = ()
    fetched: Fetched | None = None
    ttl_seconds: int = 0
    unseen_checked: bool = False


def ingest(room: Newsroom, source: DueSource, drafts: Sequence[ItemDraft],
           fetched: Fetched | None = None, ttl_seconds: int = 0,
           unseen_checked: bool = False) -> int:
    """One poll's outcome (ingest_all); the number of new stories."""
    return ingest_all(room, [Outcome(source, drafts, fetched, ttl_seconds, unseen_checked)])[0]


def ingest_all(room: Newsroom, outcomes: Sequence[Outcome]) -> list[int]:
    """New items, their stories, every matching chat's delivery and each fetch's success; the
    number of new stories of each outcome. What is new is stored in one transaction for all
    the outcomes, with their sources' successes (a feed's validators never move on without its
    items). Polls with nothing new are settled first, outside the story lock (_settle_seen)."""
    outcomes = _settle_seen(room.engine, outcomes)
    if not any(outcome.drafts for outcome in outcomes):  # nothing new: no story index needed
        return [0] * len(outcomes)
    with clustered(room) as (session, clusters):
        _record_successes(session, [outcome for outcome in outcomes if outcome.drafts])
        stored = [store_drafts(session, clusters, outcome.source.id, outcome.source.name,
                               outcome.drafts, unseen_checked=outcome.unseen_checked)
                  if outcome.drafts else items.Stored() for outcome in outcomes]
        joined = set().union(*(one.joined for one in stored))
        if joined:
            deliveries.flag_edits(session=session, story_ids=joined)
        new = [story for one in stored for story in one.new]
        if new:
            matcher = room.matchers.get(session)
            matches = {story.id: wanted for story in new if (wanted := match(story, matcher))}
            deliveries.enqueue_matches(session=session, matches=matches)
        return [len(one.new) for one in stored]


def _settle_seen(engine: Engine, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Each poll's drafts less what its source published before, and the success of every poll
    left with nothing new, in one transaction before the story lock. Only a source's own
    (claimed) poll adds its items, so the look-up still holds under the lock: the replicas
    take turns only for what is new, and 304s and feeds that changed without a new entry take
    no turn at all."""
    with session_scope(engine) as session:
        fresh = [outcome if outcome.unseen_checked or not outcome.drafts
                 else replace(outcome, unseen_checked=True, drafts=items.unseen(
                     session=session, source_id=outcome.source.id, drafts=outcome.drafts))
                 for outcome in outcomes]
        _record_successes(session, [outcome for outcome in fresh if not outcome.drafts])
    return fresh


def _record_successes(session: Session, outcomes: Sequence[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.fetched is not None:
            sources.record_success(
                session=session, source_id=outcome.source.id, etag=outcome.fetched.etag,
                last_modified=outcome.fetched.last_modified, min_interval=outcome.ttl_seconds)


def ingest_each(room: Newsroom, outcomes: Sequence[Outcome]) -> Sequence[int | Exception]:
    """ingest_all, and if that fails, each outcome in a transaction of its own, so one that
    cannot be stored costs only its own source a turn."""
    if len(outcomes) > 1:
        try:
            return ingest_all(room, outcomes)
        except Exception:
            log.warning("storing %d polls together failed; storing them one by one",
                        len(outcomes), exc_info=True)
    results: list[int | Exception] = []
    for outcome in outcomes:
        try:
            results.append(ingest_all(room, [outcome])[0])
        except Exception as exc:
            results.append(exc)
    return results


def failed(engine: Engine, source: DueSource, error: FetchError | NotAFeed) -> bool:
    """Record the failure; True when it paused the source."""
    code, detail = error.code, error.detail
    retry_after = error.retry_after if isinstance(error, FetchError) else 0
    with session_scope(engine) as session:
        return sources.record_failure(session=session, source_id=source.id, code=code,
                                      detail=detail, retry_after=retry_after)


def claim_due(engine: Engine, limit: int, now: datetime) -> list[DueSource]:
    with session_scope(engine) as session:
        return sources.claim_due(session=session, now=now, limit=limit)


INLINE = FeedReader(0)  # parses in a thread: tests, and machines where processes cost too much
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


Store = Callable[[Outcome], Awaitable[int]]  # how a poll's outcome reaches the database


async def store_now(room: Newsroom, outcome: Outcome) -> int:
    """One poll's outcome in a transaction of its own."""
    return (await room.in_database(ingest_all, room, [outcome]))[0]


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
        fetched = await fetch(client, source.url, policy, etag=source.etag,
                              last_modified=source.last_modified)
        fresh: list[ItemDraft] = []
        ttl, checked = 0, False
        if not fetched.not_modified:
            feed = await reader.read(fetched.body, fetched.url)
            fresh, ttl = feed.drafts, feed.ttl_seconds
            if full_text and any(draft.snippet for draft in fresh):
                # only unseen entries may cost an article fetch; snippets get the article's text
                fresh, checked = await room.in_database(unseen, room.engine, source, fresh), True
                pages = pages_policy(policy, fetched.url, fetched.address)
                fresh = await complete(client, fresh, pages, extractor=reader.extract)
    except (FetchError, NotAFeed) as exc:
        log.info("source %s failed: %s", source.id, exc)
        paused = await room.in_database(failed, room.engine, source, exc)
        return Polled(paused=source if paused else None, error=exc)
    outcome = Outcome(source, fresh, fetched, ttl, unseen_checked=checked)
    new = await (store or partial(store_now, room))(outcome)
    if new:
        log.info("source %s: %d new items", source.id, new)
    return Polled(new=new)


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
    # Only what is due now, by the database's clock (every replica's): a pass ends, and no
    # source is polled twice at once.
    started = await room.in_database(database_time, room.engine)

    async def claim() -> list[DueSource]:
        return await room.in_database(claim_due, room.engine, concurrency, started)

    async def store_together(outcomes: list[Outcome]) -> Sequence[int | Exception]:
        return await room.in_database(ingest_each, room, outcomes)

    store = Batched(store_together, limit=concurrency)

    async def handle(source: DueSource) -> None:
        results.append(await poll(room, client, policy, source, full_text=full_text,
                                  reader=reader, store=store))

    try:
        await drain(claim, handle, workers=concurrency, queued=concurrency,
                    name=lambda source: f"polling source {source.id}")
    finally:  # stopped: outcomes not yet stored are dropped with their polls
        await store.close()
        if results:  # what the pass freed, given back (news.heap)
            heap.release()
    return results


def story_text(engine: Engine, story_id: int, language: str = "") -> StoryText:
    with session_scope(engine) as session:
        story_items = items.of_story(session=session, story_id=story_id)
        topics = deliveries.topics_of_story(session=session, story_id=story_id)
        pinned = bool(language) and subscriptions.story_pinned(
            session=session, story_id=story_id, language=language)
    first = story_items[0]
    # an article page's text opens with its <h1>, some feeds' with the title: said once is enough
    text = without_headline(first.summary, first.title)
    return StoryText(title=first.title, text=text, source_count=len(story_items),
                     published=first.published_at or first.fetched_at,  # as alerts show it
                     topics=tuple(topics), pinned=pinned)


@dataclass(frozen=True)
class BriefRound:
    """What one round of brief writing did, and whether admins must hear the budget ran out."""

    written: int
    budget_exhausted: bool


async def write_missing_briefs(
    engine: Engine, writer: BriefWriter, *, daily_token_budget: int = 0,
    lease: timedelta | None = None,
) -> BriefRound:
    """Write each brief a due delivery waits on, once per story and language across every
    replica (each is claimed first), side by side.

    Past the daily token budget the offline brief is used until midnight UTC.
    """
    missing, over, notify = await db(engine, _briefs_wanted, budget=daily_token_budget)
    # Claimed only as the writer can start them, so the lease covers one write, not a queue.
    claim_for = lease or writer.longest_write
    starting = asyncio.Semaphore(writer.concurrency)
    written: list[tuple[int, str]] = []

    async def one(story_id: int, language: str) -> None:
        async with starting:
            if not await db(engine, briefs.claim, story_id=story_id, language=language,
                            lease=claim_for):
                return  # another replica writes it, or wrote it
            try:
                brief = await write(story_id, language)
            except BaseException:
                await db(engine, briefs.release, story_id=story_id, language=language)
                raise
            await db(engine, _save_brief, story_id=story_id, language=language, brief=brief)
            written.append((story_id, language))

    async def write(story_id: int, language: str) -> Written:
        story = await asyncio.to_thread(story_text, engine, story_id, language)
        if over:
            return Written(offline_brief(story), "offline")
        return await writer.write(story, language, story_id=story_id)

    await asyncio.gather(*(one(story_id, language) for story_id, language in missing))
    return BriefRound(len(written), notify)


def _briefs_wanted(*, session: Session, budget: int
                   ) -> tuple[list[tuple[int, str]], bool, bool]:
    """The briefs due deliveries wait on; whether the day's token budget is spent; and whether
    this replica is the one to tell the admins so (once a day)."""
    missing = deliveries.briefs_missing(session=session)
    over = bool(budget) and usage.spent(session=session) >= budget
    return missing, over, over and bool(missing) and usage.claim_budget_notice(session=session)


def _save_brief(*, session: Session, story_id: int, language: str, brief: Written) -> None:
    """The brief and what it cost, in one transaction: usage never counts an unsaved brief."""
    briefs.save(session=session, story_id=story_id, language=language, written=brief)
    usage.record(session=session, written=brief)


@dataclass(frozen=True)
class Alert:
    """A rendered alert and the level that decides whether it goes now or in the digest."""

    level: int
    html: str
    sources: int = 0  # how many sources it lists: one that joins later calls for an edit


def render_delivery(engine: Engine, claimed: deliveries.Claimed, t: Translate) -> Alert:
    """The message a claimed delivery sends: its stored brief, with its chat's topics."""
    with session_scope(engine) as session:
        stored = briefs.get(session=session, story_id=claimed.story_id, language=claimed.language)
        story_items = items.of_story(session=session, story_id=claimed.story_id)
        pinned = subscriptions.pinned_among(session=session, chat_id=claimed.chat_id,
                                            thread_id=claimed.thread_id, topics=claimed.topics)
    assert stored is not None, "claim() only returns deliveries whose brief exists"
    brief, origin = stored
    refs = [SourceRef(item.source_name, item.link, item.published_at or item.fetched_at)
            for item in story_items]
    level = adjusted_level(brief, origin, claimed.topics, pinned=bool(pinned))
    return Alert(level, render_brief(brief, origin=origin, level=level, topics=claimed.topics,
                                     sources=refs, t=t, rtl=is_rtl(claimed.language)),
                 len(story_items))


def digest_entries(
    engine: Engine, language: str, rows: Sequence[deliveries.DigestRow]
) -> list[Entry]:
    """Digest lines: the brief's headline and level where written, else the story's title;
    a story of a topic the chat tracks closely is level 1, under that topic."""
    entries = []
    # A story that matched several topics goes under the narrowest of them (the one with the
    # fewest stories here), so a broad topic does not swallow a narrow topic's only story.
    sizes = Counter(topic for row in rows for topic in set(row.topics))
    with session_scope(engine) as session:
        pins = subscriptions.pinned_topics(session=session, delivery_ids=[row.id for row in rows])
        for row in rows:
            stored = briefs.get(session=session, story_id=row.story_id, language=language)
            first = items.of_story(session=session, story_id=row.story_id)[:1]
            pinned = pins.get(row.id, [])
            headline, level = row.title, 1 if pinned else 3
            if stored is not None:
                brief, origin = stored
                headline = brief.headline
                level = adjusted_level(brief, origin, row.topics, pinned=bool(pinned))
            candidates = pinned or row.topics
            topic = min(candidates, key=lambda t: (sizes[t], candidates.index(t))) \
                if candidates else ""
            entries.append(Entry(topic, level, headline, first[0].link if first else "",
                                 row.created_at, pinned=bool(pinned)))
    return entries


@dataclass(frozen=True)
class Preview:
    """How a query would have done over the last week: a count and the newest headlines."""

    count: int
    newest: list[items.Recent]


PREVIEW_DAYS = 7


def _recent(engine: Engine) -> list[items.Recent]:
    with session_scope(engine) as session:  # items are stamped by the database's clock
        since = database_now(session) - timedelta(days=PREVIEW_DAYS)
        return items.recent(session=session, since=since)


def preview(engine: Engine, query: str, *, show: int = 3) -> Preview:
    """Stories of the last 7 days the query matches, so a query that finds nothing shows it."""
    matcher = Matcher([Topic(0, 0, 0, query)])
    seen: set[int] = set()
    newest: list[items.Recent] = []
    for item in _recent(engine):
        if item.story_id not in seen and matcher.match(item.text):
            seen.add(item.story_id)
            if len(newest) < show:
                newest.append(item)
    return Preview(len(seen), newest)


def topic_counts(engine: Engine, topics: Sequence[Topic]) -> dict[int, int]:
    """Stories each topic matched in the last 7 days, in one pass over the stored items."""
    matcher = Matcher(topics)
    counted: dict[int, set[int]] = defaultdict(set)
    for item in _recent(engine):
        for topic in matcher.match(item.text):
            counted[topic.id].add(item.story_id)
    return {topic.id: len(counted[topic.id]) for topic in topics}
