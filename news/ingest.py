"""The database half of a poll (unseen -> place -> store -> match -> enqueue), for polls
stored together."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from news.fetch import Fetched
from news.items import ItemDraft
from news.matcher import match
from news.newsroom import Newsroom
from news.stories import Clusters
from news.types import Placement
from storage import deliveries, embeddings, items, locks, sources
from storage.db import database_now, session_scope
from storage.sources import DueSource

log = logging.getLogger(__name__)


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
               source_id: int) -> Placement[ItemDraft]:
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


def unseen(*, session: Session, source: DueSource, drafts: Sequence[ItemDraft]
           ) -> list[ItemDraft]:
    """The entries this source never published, so only those cost an article fetch."""
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
    outcomes = _settle_seen(room.engine, outcomes)  # unseen
    if not any(outcome.drafts for outcome in outcomes):  # nothing new: no story index needed
        return [0] * len(outcomes)
    with clustered(room) as (session, clusters):
        _record_successes(session, [outcome for outcome in outcomes if outcome.drafts])
        # place -> store
        stored = [store_drafts(session, clusters, outcome.source.id, outcome.source.name,
                               outcome.drafts, unseen_checked=outcome.unseen_checked)
                  if outcome.drafts else items.Stored() for outcome in outcomes]
        joined = set().union(*(one.joined for one in stored))
        if joined:
            deliveries.flag_edits(session=session, story_ids=joined)
        # match -> enqueue
        new = [story for one in stored for story in one.new]
        if new:
            matcher = room.matchers.get(session)
            matches = {story.id: wanted for story in new if (wanted := match(story, matcher))}
            deliveries.enqueue_matches(session=session, matches=matches)
            if room.embedding:  # matched by meaning once embedded (news.semantic_round)
                embeddings.queue(session=session, story_ids=[story.id for story in new])
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
