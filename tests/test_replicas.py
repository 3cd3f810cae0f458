"""Several bot processes on one PostgreSQL (issue 14.2): every job gives the answer one process
would. Each replica here is what bot.py builds for a process (its own engine, Newsroom and
Services), run in a thread of the test; their only shared state is the database."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, delete, func
from sqlmodel import select

from news.items import ItemDraft
from news.pipeline import Newsroom, ingest
from storage import chats, items, sources, subscriptions
from storage.db import make_engine, migrate, session_scope
from storage.models import Delivery, Item, Story
from storage.sources import DueSource

T = TypeVar("T")
EVENT = ("SoftBank pledges billions for an AI valley in Hauts-de-France",
         "SoftBank has pledged a major investment in Hauts-de-France.",
         "Hauts-de-France: SoftBank pledges billions to build AI valley",
         "The Japanese group SoftBank pledged a huge investment in the Hauts-de-France region.")


@pytest.fixture
def postgres(database_url: str) -> str:
    """Several processes share a database only on PostgreSQL (SQLite refuses a second one)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas run on PostgreSQL only")
    return database_url


@pytest.fixture
def engines(postgres: str) -> Iterator[Callable[[], Engine]]:
    """A migrated database, and an engine of its own for each replica the test starts."""
    made: list[Engine] = []

    def engine() -> Engine:
        made.append(make_engine(postgres))
        return made[-1]

    migrate(engine())
    yield engine
    for one in made:
        one.dispose()


def in_threads(*work: Callable[[], T]) -> list[T]:
    """Run each callable in a thread of its own at once; their results, or the first error."""
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def run(number: int, job: Callable[[], T]) -> None:
        try:
            results[number] = job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, job)) for n, job in enumerate(work)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a replica hung"
    if errors:
        raise errors[0]
    return results


def make_source(engine: Engine, name: str) -> DueSource:
    with session_scope(engine) as session:
        row = sources.add(session=session, url=f"http://{name}.test/feed", name=name,
                          interval_seconds=60)
        assert row.id is not None
        return DueSource(row.id, row.url, row.name, None, None)


def subscribe(engine: Engine, chat_id: int, query: str) -> None:
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=chat_id, chat_type="private", title=None,
                          language="en")
        subscriptions.add(session=session, chat_id=chat_id, query=query)


def count(engine: Engine, model: Any) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_one_event_ingested_by_two_replicas_at_the_same_moment_is_one_story(
    engines: Callable[[], Engine], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two sources report one event and two replicas poll them at once. Both replicas have
    placed their item (against indexes that lack the other's story) before either stores it,
    unless the story lock makes the second wait for the first to commit: the barrier waits
    for both, and gives up after a while when only one can get there."""
    first, second = engines(), engines()
    wire, paper = make_source(first, "wire"), make_source(first, "paper")
    subscribe(first, 1, "SoftBank")
    barrier = threading.Barrier(2)
    real_store = items.store

    def store(**kwargs: Any) -> items.Stored:
        try:
            barrier.wait(timeout=3)
        except threading.BrokenBarrierError:
            pass
        return real_store(**kwargs)

    monkeypatch.setattr(items, "store", store)
    reports = (ItemDraft("w1", "http://wire.test/1", EVENT[0], EVENT[1], None),
               ItemDraft("p1", "http://paper.test/1", EVENT[2], EVENT[3], None))
    rooms = Newsroom(first), Newsroom(second)
    new = in_threads(lambda: ingest(rooms[0], wire, [reports[0]]),
                     lambda: ingest(rooms[1], paper, [reports[1]]))
    assert sorted(new) == [0, 1], "one replica made the story, the other joined it"
    assert count(first, Story) == 1 and count(first, Item) == 2
    assert count(first, Delivery) == 1, "one alert for the event"


def test_a_story_made_by_another_replica_is_joined_and_one_gone_is_not(
    engines: Callable[[], Engine],
) -> None:
    """The index of a replica is never the last word: it learns the stories another replica
    stored, and a story that left the database (deleted by another process) is not joined."""
    first, second = engines(), engines()
    wire, paper, radio = (make_source(first, name) for name in ("wire", "paper", "radio"))
    rooms = Newsroom(first), Newsroom(second)
    assert ingest(rooms[0], wire, [ItemDraft("w1", "http://wire.test/1", *EVENT[:2], None)]) == 1
    assert ingest(rooms[1], paper, [ItemDraft("p1", "http://paper.test/1", *EVENT[2:], None)]) == 0
    with session_scope(first) as session:
        session.execute(delete(Item))
        session.execute(delete(Story))
    again = ItemDraft("r1", "http://radio.test/1", *EVENT[2:], None)
    assert ingest(rooms[0], radio, [again]) == 1, "the deleted story is not joined"
    assert count(first, Story) == 1 and count(first, Item) == 1
