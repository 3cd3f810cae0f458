"""After each poll pass: embed the stories placed since, then match them against the semantic
topics and queue their deliveries, as the keyword matcher did for them during the ingest.

Embedding is an HTTP call, so it runs outside the ingest's story lock: an ingest only queues
its new stories (storage.embeddings.queue), and this round embeds them in batches, one
request per 64 stories, each call and its tokens counted in the day's usage and budget. Past
the budget, or when the endpoint fails, stories wait for the next round; a story that waited
past storage.embeddings.PENDING_FOR is embedded without an alert.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine
from sqlmodel import Session

from news.embeddings import Embedder, EmbeddingError
from news.semantic import MARK, SemanticHit, SemanticMatcher, Vector, readable, similarity
from storage import deliveries, embeddings, subscriptions, usage
from storage.db import db

log = logging.getLogger(__name__)
PER_ROUND = 512  # stories embedded per round at most; the rest wait for the next


class SemanticCache:
    """The semantic matcher for the current subscriptions and stored meanings, kept up to date
    as news.matcher.MatcherCache keeps the keyword one: by the subscriptions' revision, one
    keyed read when nothing changed, and only the topics changed since (and their meanings'
    vectors) read when something did. Every row is read at first use, when the model or size
    changes, and when tombstones it had not read were pruned. Topics whose meaning had no
    vector yet have theirs looked up by key each time, until it is stored."""

    def __init__(self) -> None:
        self.model: tuple[str, int] | None = None  # the model and size it was built for
        self.revision = -1  # none seen: the first get() builds from every row
        self.matcher = SemanticMatcher([], {})
        self.lock = threading.Lock()

    def get(self, session: Session, model: str, dims: int) -> SemanticMatcher:
        """The matcher as of the newest revision; match() with it while no other thread
        can change it (SemanticCache.match)."""
        with self.lock:
            self._refresh(session, model, dims)
            return self.matcher

    def match(self, session: Session, model: str, dims: int, stories: Vector,
              texts: Sequence[str]) -> list[list[SemanticHit]]:
        """The stories' hits with the up-to-date matcher, which is changed in place: under
        the lock, so no refresh changes it halfway through."""
        with self.lock:
            self._refresh(session, model, dims)
            return self.matcher.match(stories, texts)

    def _refresh(self, session: Session, model: str, dims: int) -> None:
        head = subscriptions.head(session=session)
        # first use, another model or size, the counter reset, or tombstones it never read
        # were pruned: every row
        if (self.model != (model, dims) or self.revision < 0 or head.revision < self.revision
                or head.pruned > self.revision):
            self._build(session, model, dims)
            return
        if head.revision != self.revision:
            changes = subscriptions.changes_since(session=session, revision=self.revision,
                                                  upto=head.revision)
            if changes.pruned > self.revision:  # pruned while it read: a removal may be missing
                self._build(session, model, dims)
                return
            changed = [(topic.id, topic.query) for topic in changes.changed]
            lacking = self.matcher.lacking(query for _, query in changed)
            vectors = (embeddings.meaning_vectors(session=session, model=model, dims=dims,
                                                  keys=lacking) if lacking else {})
            self.matcher.apply(changes.removed, changed, vectors)
            self.revision = changes.revision
        if self.matcher.waiting:  # meanings embedded since (embed_meanings), read by key
            self.matcher.learn(embeddings.meaning_vectors(
                session=session, model=model, dims=dims, keys=list(self.matcher.waiting)))

    def _build(self, session: Session, model: str, dims: int) -> None:
        # the revision is read first: what changes while the rows are read is read again later
        latest = subscriptions.head(session=session).revision
        topics = subscriptions.all_topics(session=session, starting=MARK)
        matcher = SemanticMatcher(((topic.id, topic.query) for topic in topics), {})
        matcher.learn(embeddings.meaning_vectors(session=session, model=model, dims=dims,
                                                 keys=matcher.waiting))
        self.matcher, self.model, self.revision = matcher, (model, dims), latest


@dataclass(frozen=True)
class Round:
    embedded: int = 0
    matched: int = 0
    failed: bool = False


async def embed_round(engine: Engine, embedder: Embedder, cache: SemanticCache,
                      daily_token_budget: int = 0) -> Round:
    """Embed what waits (meanings first, then stories) and alert the new stories' matches."""
    if not embedder.online:
        return Round()
    if await db(engine, usage.over_budget, budget=daily_token_budget):
        return Round()
    try:
        await embed_meanings(engine, embedder)
    except EmbeddingError:
        return Round(failed=True)
    waiting = await db(engine, embeddings.waiting, limit=PER_ROUND)
    if not waiting:
        return Round()
    texts = [text for _, text, _ in waiting]
    try:
        done = await embedder.embed(texts)
    except EmbeddingError as exc:
        await db(engine, usage.record_calls, calls=exc.calls, failures=1,
                 tokens_in=exc.tokens, tokens_out=0)
        return Round(failed=True)
    matched = await db(engine, _store_and_match, embedder=embedder, cache=cache,
                       waiting=waiting, vectors=done.vectors, calls=done.calls,
                       tokens=done.tokens)
    return Round(len(waiting), matched)


async def embed_meanings(engine: Engine, embedder: Embedder) -> None:
    """The meanings of semantic topics that have no vector for the current model yet (a
    model changed, a topic subscribed while the endpoint was down)."""
    missing = await db(engine, _missing_meanings, model=embedder.model,
                       dims=embedder.dimensions)
    if missing:
        await meanings(engine, embedder, missing)


async def meanings(engine: Engine, embedder: Embedder, wanted: list[str]) -> dict[str, Vector]:
    """These meanings' vectors, embedding (and storing) those not stored yet; the call is
    counted in usage. Raises EmbeddingError."""
    stored = await db(engine, embeddings.meaning_vectors, model=embedder.model,
                      dims=embedder.dimensions)
    missing = [key for key in dict.fromkeys(wanted) if key not in stored]
    if missing:
        try:
            done = await embedder.embed(missing)
        except EmbeddingError as exc:
            await db(engine, usage.record_calls, calls=exc.calls, failures=1,
                     tokens_in=exc.tokens, tokens_out=0)
            raise
        await db(engine, _save_meanings, model=embedder.model, keys=missing,
                 vectors=done.vectors, calls=done.calls, tokens=done.tokens)
        stored.update(zip(missing, done.vectors, strict=True))
    return {key: stored[key] for key in wanted}


def _missing_meanings(*, session: Session, model: str, dims: int) -> list[str]:
    stored = embeddings.meaning_keys(session=session, model=model, dims=dims)
    keys = {found.key for query in embeddings.semantic_queries(session=session)
            if (found := readable(query)) is not None}
    return sorted(keys - stored)


def _save_meanings(*, session: Session, model: str, keys: list[str], vectors: Vector,
                   calls: int, tokens: int) -> None:
    for key, vector in zip(keys, vectors, strict=True):
        embeddings.save_meaning(session=session, model=model, dims=len(vector), meaning=key,
                                vector=vector)
    usage.record_calls(session=session, calls=calls, failures=0, tokens_in=tokens,
                       tokens_out=0)


def _store_and_match(*, session: Session, embedder: Embedder, cache: SemanticCache,
                     waiting: list[tuple[int, str, bool]], vectors: Vector, calls: int,
                     tokens: int) -> int:
    """The vectors and their cost in one transaction, with the deliveries of the stories
    this call embedded first (another replica may have embedded one: it alerts that one)."""
    usage.record_calls(session=session, calls=calls, failures=0, tokens_in=tokens, tokens_out=0)
    written = set(embeddings.save(session=session, model=embedder.model, vectors={
        story_id: vector for (story_id, _, _), vector in zip(waiting, vectors, strict=True)}))
    alert = [n for n, (story_id, _, wanted) in enumerate(waiting)
             if wanted and story_id in written]
    if not alert:
        return 0
    found = cache.match(session, embedder.model, embedder.dimensions,
                        np.asarray(vectors[alert]), [waiting[n][1] for n in alert])
    matches = {waiting[n][0]: {hit.topic_id for hit in hits}
               for n, hits in zip(alert, found, strict=True) if hits}
    if matches:
        deliveries.enqueue_matches(session=session, matches=matches)
    return len(matches)


def similarities(*, session: Session, story_id: int, queries: Iterable[str], model: str
                 ) -> dict[str, float]:
    """Each semantic query's similarity to the story (/why), where both have a vector."""
    story = embeddings.vectors_of(session=session, story_ids=[story_id], model=model).get(story_id)
    if story is None:
        return {}
    meanings = embeddings.meaning_vectors(session=session, model=model, dims=len(story))
    found = {}
    for query in queries:
        semantic = readable(query)
        if semantic is not None and semantic.key in meanings:
            found[query] = similarity(story, meanings[semantic.key])
    return found
