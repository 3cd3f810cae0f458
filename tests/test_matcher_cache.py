"""Subscription changes reach the matcher as deltas read by revision (issue 24 item 1)."""

from __future__ import annotations

import random
import threading
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from news import matching
from news.matcher import MatcherCache
from storage import subscriptions
from storage.db import make_engine, session_scope
from storage.models import Revision, Subscription, SubscriptionRemoval
from tests.harness import add_random, age_removals, follow, migrate_random, prune, unfollow

TERMS = ["SoftBank", "Nvidia", "union", "ion", "AI", "data center", "软银", "Сбербанк",
         "données", "Lille", "chips", "OpenAI", "crypto", "Tesla", "ダイキン"]


class CountingMatcher(matching.Matcher):
    """The real matcher, counting its full builds."""

    builds: ClassVar[list[int]] = []

    def __init__(self, topics: Any = ()) -> None:
        listed = list(topics)
        if listed:  # the empty one a cache starts with reads nothing
            CountingMatcher.builds.append(len(listed))
        super().__init__(listed)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    CountingMatcher.builds = []
    monkeypatch.setattr("news.matcher.Matcher", CountingMatcher)
    return CountingMatcher.builds




def matched(cache: MatcherCache, engine: Engine, text: str) -> set[int]:
    with session_scope(engine) as session:
        return {topic.id for topic in cache.get(session).match(text)}


def rebuilt(engine: Engine, text: str) -> list[matching.Topic]:
    """What a matcher built from every row right now answers."""
    with session_scope(engine) as session:
        return matching.Matcher(list(subscriptions.all_topics(session=session))).match(text)



def test_changes_are_applied_in_place_and_read_by_revision(
    engine: Engine, counting: list[int], statements: list[str]
) -> None:
    ids = [follow(engine, 1000 + n, f"company{n}") for n in range(50)]
    cache = MatcherCache()
    assert matched(cache, engine, "company7 news") == {ids[7]}
    assert counting == [50], "one full build to start"

    statements.clear()
    assert matched(cache, engine, "company7 news") == {ids[7]}
    reads = [s for s in statements if s.startswith("select")]
    assert len(reads) == 1 and "from revisions" in reads[0], "nothing changed: one keyed read"

    new = follow(engine, 2000, "SoftBank")
    statements.clear()
    assert matched(cache, engine, "SoftBank and company7") == {ids[7], new}
    scans = [s for s in statements if "from subscription" in s and ".revision >" not in s]
    assert scans == [], "a change is read by revision, never the whole table"
    with session_scope(engine) as session:
        unfollow(session, ids[7])
    assert matched(cache, engine, "SoftBank and company7") == {new}, "removed topics drop out"
    with session_scope(engine) as session:
        row = subscriptions.get(session=session, subscription_id=ids[8] or 0)
        assert row is not None
        assert subscriptions.change_query(session=session, subscription=row,
                                          query="company8 OR Nvidia")
    assert matched(cache, engine, "Nvidia") == {ids[8]}, "an edited query is matched as edited"
    assert counting == [50], "no change rebuilt the matcher"


def test_new_terms_are_compacted_into_the_big_automaton_off_the_ingest_path(
    engine: Engine, counting: list[int]
) -> None:
    cache = MatcherCache(compact_after=3)
    follow(engine, 1, "alpha")
    assert matched(cache, engine, "alpha") != set()
    ids = [follow(engine, 10 + n, f"beta{n}") for n in range(5)]
    assert matched(cache, engine, "beta4") == {ids[4]}, "matched at once, from the fresh terms"
    building = cache.building
    assert building is not None, "five fresh terms: a compaction started"
    building.join(timeout=30)
    assert not building.is_alive(), "the compaction never finished"
    assert matched(cache, engine, "beta4 alpha") == {ids[4], 1}
    assert cache.matcher.fresh == {}, "the fresh terms are in the big automaton now"
    assert counting == [1], "only the start-up build read every subscription"


def test_random_changes_leave_the_matcher_as_a_full_rebuild_would(engine: Engine) -> None:
    rng = random.Random(24)
    cache = MatcherCache(compact_after=4)
    texts = [" ".join(rng.choice([*TERMS, "the", "news"]) for _ in range(8)) for _ in range(40)]

    def query() -> str:
        a, b = (f'"{t}"' if " " in t else t for t in rng.sample(TERMS, 2))
        return rng.choice([a, f"{a} OR {b}", f"{a} -{b}", f"{a} {b}", f"{a} OR -{b}"])

    next_chat = 100
    for step in range(60):
        with session_scope(engine) as session:
            rows = list(session.exec(select(Subscription)).all())
            roll = rng.random()
            if roll < 0.4 or not rows:
                add_random(session, rng, next_chat, query())
            elif roll < 0.6:
                subscriptions.delete(session=session, subscription=rng.choice(rows))
            elif roll < 0.8:
                subscriptions.change_query(session=session, subscription=rng.choice(rows),
                                           query=query())
            elif roll < 0.9:
                subscriptions.set_pinned(session=session, subscription=rng.choice(rows),
                                         pinned=rng.random() < 0.5)
            else:
                next_chat = migrate_random(session, rng, rows, next_chat)
        if step % 3 == 0:
            for text in rng.sample(texts, 4):
                with session_scope(engine) as session:
                    got = cache.get(session).match(text)
                assert got == rebuilt(engine, text), (step, text)
    with session_scope(engine) as session:
        left = len(list(subscriptions.all_topics(session=session)))
        assert len(cache.get(session).topics) == left


def test_replicas_see_each_others_changes(database_url: str, engine: Engine) -> None:
    other = make_engine(database_url)  # a second process: its own engine and cache
    try:
        here, there = MatcherCache(), MatcherCache()
        first = follow(engine, 1, "SoftBank")
        assert matched(here, engine, "SoftBank") == {first}
        assert matched(there, other, "SoftBank") == {first}
        second = follow(other, 2, "Nvidia OR SoftBank")
        assert matched(here, engine, "SoftBank") == {first, second}, "added there, seen here"
        with session_scope(engine) as session:
            unfollow(session, first)
        assert matched(there, other, "SoftBank") == {second}, "removed here, gone there"
        assert matched(here, engine, "Nvidia") == {second}
    finally:
        other.dispose()


def test_a_change_that_commits_late_is_not_skipped(database_url: str, engine: Engine) -> None:
    """Two writers at once: the one stamped first commits last. A reader in between must
    still get both, which a revision taken from a sequence would not guarantee."""
    follow(engine, 1, "alpha")
    follow(engine, 2, "beta")
    cache = MatcherCache()
    assert matched(cache, engine, "alpha beta") != set()
    other = make_engine(database_url)
    slow = Session(engine)
    try:
        subscriptions.add(session=slow, chat_id=1, query="gamma")  # stamped, not committed
        done = threading.Event()

        def quick() -> None:
            follow(other, 2, "gamma")
            done.set()

        writer = threading.Thread(target=quick)
        writer.start()
        done.wait(timeout=1.0)  # it waits for the first writer; give it the chance not to
        assert matched(cache, engine, "gamma") == set(), "nothing committed yet"
    finally:
        slow.commit()
        slow.close()
    writer.join(timeout=30)
    assert done.is_set()
    assert len(matched(cache, engine, "gamma")) == 2, "both writers' subscriptions"
    other.dispose()




def head(engine: Engine) -> subscriptions.Head:
    with session_scope(engine) as session:
        return subscriptions.head(session=session)


def test_tombstones_are_kept_a_day_then_pruned_under_a_watermark(engine: Engine) -> None:
    ids = [follow(engine, 10 + n, f"topic{n}") for n in range(3)]
    with session_scope(engine) as session:
        unfollow(session, ids[0])
    removed_at = head(engine).revision
    assert prune(engine) == 0, "a fresh tombstone is kept"
    assert head(engine).pruned == 0
    age_removals(engine)
    with session_scope(engine) as session:
        unfollow(session, ids[1])  # a tombstone of today, above the old one
    assert prune(engine) == 1
    assert head(engine) == subscriptions.Head(removed_at + 1, removed_at)
    with session_scope(engine) as session:
        left = session.exec(select(SubscriptionRemoval.subscription_id)).all()
        assert left == [ids[1]], "only the day-old tombstone went"
        # a replica pruning late, with an older view, never lowers the watermark
        session.execute(update(Revision).where(col(Revision.name) == subscriptions.PRUNED)
                        .values(value=removed_at + 5))
    age_removals(engine)
    assert prune(engine) == 1
    assert head(engine).pruned == removed_at + 5


def test_a_cache_behind_pruned_tombstones_reads_every_row_again(
    engine: Engine, counting: list[int], statements: list[str]
) -> None:
    ids = [follow(engine, 10 + n, f"topic{n} OR shared") for n in range(4)]
    behind, current = MatcherCache(), MatcherCache()
    assert matched(behind, engine, "shared") == set(ids)
    with session_scope(engine) as session:
        unfollow(session, ids[0])
    assert matched(current, engine, "shared") == set(ids[1:]), "it saw the removal"
    age_removals(engine)
    assert prune(engine) == 1
    assert counting == [4, 3]

    statements.clear()
    assert matched(current, engine, "shared") == set(ids[1:])
    reads = [s for s in statements if s.startswith("select")]
    assert len(reads) == 1 and "from revisions" in reads[0], "the watermark is in the one read"
    assert counting == [4, 3], "a cache past the watermark goes on by deltas"

    # Without the watermark this cache would read the changes since its revision, find no
    # tombstone, and go on matching the removed subscription.
    statements.clear()
    assert matched(behind, engine, "shared") == set(ids[1:]), "the removed topic is gone"
    assert counting == [4, 3, 3], "read again from every row"
    assert not [s for s in statements if ".revision >" in s], "the first read said so"
    added = follow(engine, 99, "shared")
    assert matched(behind, engine, "shared") == {*ids[1:], added}, "then deltas again"
    assert counting == [4, 3, 3]


def test_a_pruning_between_the_check_and_the_read_is_caught(
    engine: Engine, counting: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache finds itself above the watermark, then a replica prunes past it before the
    tombstones are read: the watermark read after them says so, and the cache reads every
    row instead of missing the removal."""
    ids = [follow(engine, 10 + n, "shared") for n in range(3)]
    cache = MatcherCache()
    assert matched(cache, engine, "shared") == set(ids)
    with session_scope(engine) as session:
        unfollow(session, ids[0])
    added = follow(engine, 50, "shared")
    age_removals(engine)
    real = subscriptions.changes_since

    def pruned_first(**kwargs: Any) -> subscriptions.Changes:
        assert prune(engine) == 1  # another replica's transaction, committed
        return real(**kwargs)

    monkeypatch.setattr(subscriptions, "changes_since", pruned_first)
    assert matched(cache, engine, "shared") == {ids[1], ids[2], added}
    assert counting == [3, 3]
