"""A subscription change never rebuilds the whole matcher inside an ingest (issue 11 item 6)."""

from __future__ import annotations

import time
from typing import ClassVar

import pytest
from sqlalchemy import Engine

from news import following, matching
from news.matcher import MatcherCache
from storage import subscriptions
from storage.chats import ensure_chat
from storage.db import session_scope


class CountingMatcher(matching.Matcher):
    """The real matcher, counting how many topics each build took."""

    builds: ClassVar[list[int]] = []

    def __init__(self, topics: object) -> None:
        listed = list(topics)  # type: ignore[call-overload]
        CountingMatcher.builds.append(len(listed))
        super().__init__(listed)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    CountingMatcher.builds = []
    monkeypatch.setattr("news.matcher.Matcher", CountingMatcher)
    return CountingMatcher.builds


def follow(engine: Engine, chat_id: int, query: str) -> int:
    with session_scope(engine) as session:
        ensure_chat(session=session, chat_id=chat_id, chat_type="private", title=None,
                    language="en")
        row = subscriptions.add(session=session, chat_id=chat_id, query=query)
        assert row is not None and row.id is not None
        return row.id


def matched(cache: MatcherCache, engine: Engine, text: str) -> set[int]:
    with session_scope(engine) as session:
        return {topic.id for topic in cache.get(session).match(text)}


def test_changes_are_layered_over_the_full_build(engine: Engine, counting: list[int]) -> None:
    ids = [follow(engine, 1000 + n, f"company{n}") for n in range(50)]
    cache = MatcherCache(rebuild_after=500)
    assert matched(cache, engine, "company7 news") == {ids[7]}
    assert [n for n in counting if n] == [50], "one full build to start"
    started = len(counting)

    new = follow(engine, 2000, "SoftBank")
    assert matched(cache, engine, "SoftBank and company7") == {ids[7], new}
    with session_scope(engine) as session:
        assert following.remove(session=session, chat_id=1007, query="company7")
    assert matched(cache, engine, "SoftBank and company7") == {new}, "removed topics drop out"
    assert max(counting[started:]) <= 1, "each change rebuilt only the small layer"


def test_a_large_layer_is_rebuilt_in_the_background_and_swapped_in(
    engine: Engine, counting: list[int]
) -> None:
    cache = MatcherCache(rebuild_after=3)
    follow(engine, 1, "alpha")
    assert matched(cache, engine, "alpha") != set()
    ids = [follow(engine, 10 + n, f"beta{n}") for n in range(5)]
    assert matched(cache, engine, "beta4") == {ids[4]}, "matched at once, from the layer"
    deadline = time.monotonic() + 30
    while cache.building is not None and cache.building.is_alive():
        assert time.monotonic() < deadline, "the background build never finished"
        time.sleep(0.05)
    assert matched(cache, engine, "beta4 alpha") == {ids[4], 1}
    assert 6 in counting, "a full build of all six topics ran off the ingest path"
    assert cache.matcher.added == frozenset(), "and the layer is empty again"
