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
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine
from sqlmodel import Session

from news.embeddings import Embedder, EmbeddingError
from news.semantic import SemanticMatcher, Vector, readable, similarity
from storage import deliveries, embeddings, subscriptions, usage
from storage.db import db

log = logging.getLogger(__name__)
PER_ROUND = 512  # stories embedded per round at most; the rest wait for the next


class SemanticCache:
    """The semantic matcher for the current subscriptions and stored meanings, rebuilt when
    either changes (the subscriptions' revision, the number of meanings)."""

    def __init__(self) -> None:
        self.key: object = None
        self.matcher = SemanticMatcher([], {})
        self.lock = threading.Lock()

    def get(self, session: Session, model: str, dims: int) -> SemanticMatcher:
        key = (subscriptions.revision(session=session), model, dims,
               embeddings.meaning_count(session=session, model=model, dims=dims))
        with self.lock:
            if key != self.key:  # read again only when something changed
                vectors = embeddings.meaning_vectors(session=session, model=model, dims=dims)
                topics = [(topic.id, topic.query)
                          for topic in subscriptions.all_topics(session=session)]
                self.matcher = SemanticMatcher(topics, vectors)
                self.key = key
            return self.matcher


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
    matcher = cache.get(session, embedder.model, embedder.dimensions)
    found = matcher.match(np.asarray(vectors[alert]), [waiting[n][1] for n in alert])
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
