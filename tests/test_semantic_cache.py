"""The semantic matcher changed in place answers as a fresh build would, and its cache reads
only the subscriptions changed since the revision it has seen (and their meanings' vectors)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from news import semantic
from news.semantic import SemanticHit, SemanticMatcher, Vector, meaning_key
from news.semantic_round import SemanticCache
from storage import embeddings, subscriptions
from storage.db import session_scope
from storage.models import Subscription
from tests.harness import add_random, age_removals, follow, migrate_random, prune, unfollow

DIMS = 16
MODEL = "fake-embed"
TEXTS = ["chips and crypto", "a fab for chips", "rain over Lille", "crypto rally", "chips"]


def meanings(count: int, seed: int) -> dict[str, Vector]:
    generator = np.random.default_rng(seed)
    return {meaning_key(f"meaning {n}"): generator.standard_normal(DIMS).astype(np.float32)
            for n in range(count)}


def a_query(rng: random.Random, keys: list[str]) -> str:
    """Mostly semantic topics (some with terms, one in ten with no threshold chosen yet: never
    matched), and some keyword topics, which the semantic matcher leaves out."""
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(["chips", "crypto OR fab"])
    if roll < 0.2:
        return f'~"{rng.choice(keys)}"'
    rest = rng.choice(["", "", " -crypto", " chips"])
    return f'~"{rng.choice(keys)}"@{rng.choice([0.3, 0.45, 0.6, 0.75]):.2f}{rest}'


def stories(rng: random.Random, known: Mapping[str, Vector]) -> tuple[Vector, list[str]]:
    """Stories near a meaning (some of them), or anywhere."""
    generator = np.random.default_rng(rng.randrange(2**32))
    rows = []
    for n in range(24):
        noise = generator.standard_normal(DIMS).astype(np.float32)
        if n % 2 and known:
            rows.append(known[rng.choice(sorted(known))] * rng.uniform(0.5, 4) + noise)
        else:
            rows.append(noise)
    return np.stack(rows), [rng.choice(TEXTS) for _ in rows]


def assert_same(got: list[list[SemanticHit]], want: list[list[SemanticHit]]) -> None:
    assert [[hit.topic_id for hit in hits] for hits in got] == \
        [[hit.topic_id for hit in hits] for hits in want]
    assert np.allclose([hit.similarity for hits in got for hit in hits],
                       [hit.similarity for hits in want for hit in hits], atol=1e-5)


def assert_like_fresh(matcher: SemanticMatcher, fresh: SemanticMatcher,
                      rng: random.Random, known: Mapping[str, Vector]) -> None:
    for _ in range(3):
        batch, texts = stories(rng, known)
        assert_same(matcher.match(batch, texts), fresh.match(batch, texts))
    assert (matcher.size, matcher.keys) == (fresh.size, fresh.keys)
    assert {key: set(group) for key, group in matcher.waiting.items()} == \
        {key: set(group) for key, group in fresh.waiting.items()}


@pytest.mark.parametrize("start", ["empty", "built"])
def test_random_changes_in_place_answer_as_a_fresh_build(start: str) -> None:
    rng = random.Random(11)
    every = meanings(40, seed=11)
    keys = sorted(every)
    stored = {key: every[key] for key in keys[:10]} if start == "built" else {}
    topics = {n: a_query(rng, keys) for n in range(1, 40)} if start == "built" else {}
    matcher = SemanticMatcher(topics.items(), stored)
    next_id, freed = 40, 0
    for step in range(600):
        roll = rng.random()
        if roll < 0.4 or not topics:
            topics[next_id] = a_query(rng, keys)
            matcher.add(next_id, topics[next_id], stored)
            next_id += 1
        elif roll < 0.65:
            gone = rng.choice(sorted(topics))
            del topics[gone]
            columns = len(matcher.keys)
            matcher.remove(gone)
            freed += len(matcher.keys) < columns
        elif roll < 0.9:
            edited = rng.choice(sorted(topics))
            topics[edited] = a_query(rng, keys)
            matcher.add(edited, topics[edited], stored)
        elif missing := [key for key in keys if key not in stored]:
            key = rng.choice(missing)
            stored[key] = every[key]
            matcher.learn({key: stored[key]})
        if step % 25 == 0:
            assert_like_fresh(matcher, SemanticMatcher(topics.items(), stored), rng, stored)
    assert_like_fresh(matcher, SemanticMatcher(topics.items(), stored), rng, stored)
    assert freed > 5 and len(matcher.keys) > 16, "columns were freed, taken again, and grown"


class CountingMatcher(SemanticMatcher):
    """The real matcher, counting its full builds."""

    builds: ClassVar[list[int]] = []

    def __init__(self, topics: Any, vectors: Any) -> None:
        listed = list(topics)
        if listed:  # the empty one a cache starts with reads nothing
            CountingMatcher.builds.append(len(listed))
        super().__init__(listed, vectors)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    CountingMatcher.builds = []
    monkeypatch.setattr("news.semantic_round.SemanticMatcher", CountingMatcher)
    return CountingMatcher.builds



def store(engine: Engine, vectors: Mapping[str, Vector]) -> None:
    with session_scope(engine) as session:
        for key, vector in vectors.items():
            embeddings.save_meaning(session=session, model=MODEL, dims=DIMS, meaning=key,
                                    vector=vector)


def fresh_build(session: Session) -> SemanticMatcher:
    """What a matcher built from every row and every stored meaning answers."""
    return semantic.SemanticMatcher(
        [(topic.id, topic.query) for topic in subscriptions.all_topics(session=session)],
        embeddings.meaning_vectors(session=session, model=MODEL, dims=DIMS))


def hits(cache: SemanticCache, engine: Engine, key: str, known: Mapping[str, Vector]
         ) -> set[int]:
    """The topics a story right on this meaning matches."""
    with session_scope(engine) as session:
        found = cache.match(session, MODEL, DIMS, known[key][None, :], ["news"])
    return {hit.topic_id for hit in found[0]}


def test_the_cache_reads_only_what_changed(
    engine: Engine, counting: list[int], statements: list[str]
) -> None:
    known = meanings(4, seed=3)
    a, b, c, d = sorted(known)
    store(engine, {a: known[a], b: known[b], c: known[c]})
    ids = [follow(engine, 100 + n, f'~"{a}"@0.50') for n in range(20)]
    follow(engine, 200, "chips")
    cache = SemanticCache()
    assert hits(cache, engine, a, known) == set(ids)
    assert counting == [20], "one build from every row, with the semantic topics only"

    statements.clear()
    assert hits(cache, engine, a, known) == set(ids)
    reads = [s for s in statements if s.startswith("select")]
    assert len(reads) == 1 and "from revisions" in reads[0], "nothing changed: one keyed read"

    def scans() -> list[str]:
        return [s for s in statements if ("from subscriptions" in s and ".revision >" not in s)
                or ("from meaning_embeddings" in s and " in (" not in s)]

    same = follow(engine, 300, f'~"{a}"@0.40')
    new = follow(engine, 301, f'~"{b}"@0.50')
    with session_scope(engine) as session:
        unfollow(session, ids[0])
        row = subscriptions.get(session=session, subscription_id=ids[1] or 0)
        assert row is not None
        subscriptions.change_query(session=session, subscription=row, query=f'~"{c}"@0.50')
    statements.clear()
    assert hits(cache, engine, a, known) == {*ids[2:], same}, "removed and moved away"
    assert hits(cache, engine, b, known) == {new}, "a new meaning's vector, read by key"
    assert hits(cache, engine, c, known) == {ids[1]}, "an edited topic, matched as edited"
    assert scans() == [], "changes are read by revision and meanings by key, never all"

    waits = follow(engine, 400, f'~"{d}"@0.50')
    statements.clear()
    assert hits(cache, engine, d, known) == set(), "no vector yet: it waits"
    assert cache.matcher.waiting.keys() == {d}
    store(engine, {d: known[d]})
    statements.clear()
    assert hits(cache, engine, d, known) == {waits}, "its vector, once stored, is picked up"
    assert cache.matcher.waiting == {}
    assert scans() == []
    assert counting == [20], "no change rebuilt the matcher"


def test_a_semantic_cache_behind_pruned_tombstones_reads_every_row_again(
    engine: Engine, counting: list[int]
) -> None:
    known = meanings(1, seed=4)
    (key,) = known
    store(engine, known)
    ids = [follow(engine, 10 + n, f'~"{key}"@0.50') for n in range(3)]
    cache = SemanticCache()
    assert hits(cache, engine, key, known) == set(ids)
    with session_scope(engine) as session:
        unfollow(session, ids[0])
    age_removals(engine)
    assert prune(engine) == 1
    assert hits(cache, engine, key, known) == set(ids[1:]), "the removed topic is gone"
    assert counting == [3, 2], "read again from every row"
    added = follow(engine, 50, f'~"{key}"@0.50')
    assert hits(cache, engine, key, known) == {*ids[1:], added}
    assert counting == [3, 2], "then deltas again"
    assert hits(cache, engine, key, known) == {*ids[1:], added}
    with session_scope(engine) as session:
        assert cache.get(session, MODEL, DIMS) is cache.matcher
        cache.get(session, MODEL, DIMS * 2)
    assert counting == [3, 2, 3], "another size: built afresh"


def test_random_subscription_changes_reach_the_cache_as_a_fresh_build_sees_them(
    engine: Engine, counting: list[int]
) -> None:
    rng = random.Random(21)
    every = meanings(12, seed=21)
    keys = sorted(every)
    store(engine, {key: every[key] for key in keys[:6]})
    cache = SemanticCache()
    next_chat, checks = 100, 0
    for step in range(80):
        with session_scope(engine) as session:
            rows = list(session.exec(select(Subscription)).all())
            roll = rng.random()
            if roll < 0.4 or not rows:
                add_random(session, rng, next_chat, a_query(rng, keys))
            elif roll < 0.6:
                subscriptions.delete(session=session, subscription=rng.choice(rows))
            elif roll < 0.8:
                subscriptions.change_query(session=session, subscription=rng.choice(rows),
                                           query=a_query(rng, keys))
            elif roll < 0.88:
                missing = [key for key in keys if key not in embeddings.meaning_keys(
                    session=session, model=MODEL, dims=DIMS)]
                if missing:
                    key = rng.choice(missing)
                    embeddings.save_meaning(session=session, model=MODEL, dims=DIMS,
                                            meaning=key, vector=every[key])
            elif roll < 0.95:
                next_chat = migrate_random(session, rng, rows, next_chat)
            else:
                session.commit()
                age_removals(engine)
                prune(engine)
        if step % 3 == 0:
            checks += 1
            with session_scope(engine) as session:
                for _ in range(2):
                    batch, texts = stories(rng, every)
                    assert_same(cache.match(session, MODEL, DIMS, batch, texts),
                                fresh_build(session).match(batch, texts))
                assert cache.matcher.size == fresh_build(session).size
    assert len(counting) < checks / 2, "deltas, not a build per check"


def test_a_pruning_between_the_check_and_the_read_is_caught(
    engine: Engine, counting: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    known = meanings(1, seed=5)
    (key,) = known
    store(engine, known)
    ids = [follow(engine, 10 + n, f'~"{key}"@0.50') for n in range(3)]
    cache = SemanticCache()
    assert hits(cache, engine, key, known) == set(ids)
    with session_scope(engine) as session:
        unfollow(session, ids[0])
    added = follow(engine, 50, f'~"{key}"@0.50')
    age_removals(engine)
    real = subscriptions.changes_since

    def pruned_first(**kwargs: Any) -> subscriptions.Changes:
        assert prune(engine) == 1  # another replica's transaction, committed
        return real(**kwargs)

    monkeypatch.setattr(subscriptions, "changes_since", pruned_first)
    assert hits(cache, engine, key, known) == {ids[1], ids[2], added}
    assert counting == [3, 3]
