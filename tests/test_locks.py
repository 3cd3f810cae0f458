"""Advisory-lock keys (issue 20.7): derived from the deployment and the database, so two
deployments on one PostgreSQL server, even in one database, never wait on each other."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from jobs.runtime import holds
from news.ingest import clustered
from news.newsroom import Newsroom
from storage.db import make_engine, migrate, session_scope
from storage.locks import Keys, Role, lock_key, xact_lock


def test_keys_differ_by_database_deployment_and_purpose() -> None:
    keys = {lock_key(purpose, deployment=deployment, database=database)
            for purpose in ("stories", "sending", "migrations")
            for deployment in ("tidings", "staging")
            for database in ("news", "news_staging")}
    assert len(keys) == 12
    assert all(-2**63 <= key < 2**63 for key in keys), "a PostgreSQL bigint"
    assert lock_key("stories", deployment="a", database="b") == \
        lock_key("stories", deployment="a", database="b"), "every replica computes the same"
    assert Keys("tidings", "news").sending != Keys("tidings", "news_2").sending
    assert Keys("tidings", "news").receiving(1) != Keys("staging", "news").receiving(1)


def test_keys_name_the_database_the_url_names() -> None:
    engine = make_engine("postgresql://bot@db.example/news")
    assert Keys.of(engine, "staging") == Keys("staging", "news")
    assert Keys.of(make_engine("postgresql://bot@db.example")).database == "bot", "libpq's default"


@pytest.fixture
def postgres(database_url: str) -> Iterator[str]:
    if not database_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's; SQLite grants every lock at once")
    engine = make_engine(database_url)
    migrate(engine)
    engine.dispose()
    yield database_url


def test_two_deployments_in_one_database_each_hold_their_sending_role(postgres: str) -> None:
    engines = [make_engine(postgres) for _ in range(3)]
    live = Role(engines[0], Keys.of(engines[0], "live").sending, "sending")
    staging = Role(engines[1], Keys.of(engines[1], "staging").sending, "sending")
    live_again = Role(engines[2], Keys.of(engines[2], "live").sending, "sending")
    try:
        assert live.held() and staging.held(), "each deployment has its own sender"
        assert not live_again.held(), "one sender per deployment all the same"
    finally:
        for role in (live, staging, live_again):
            role.release()
        for engine in engines:
            engine.dispose()


def place_stories_while_another_deployment_does(ours: Engine, theirs: Engine) -> bool:
    """Whether our ingest gets the story lock while the other deployment's ingest holds its."""
    entered = threading.Event()

    def ingest() -> None:
        room = Newsroom(ours, Keys.of(ours, "live"))
        with clustered(room):
            entered.set()
        room.close()

    with session_scope(theirs) as session:
        xact_lock(session, Keys.of(theirs, "staging").stories)
        placing = threading.Thread(target=ingest, daemon=True)
        placing.start()
        got_it = entered.wait(timeout=5)  # a deadline: it enters at once or waits for us
    placing.join(timeout=30)
    return got_it


def test_two_deployments_place_stories_at_the_same_time(postgres: str) -> None:
    ours, theirs = make_engine(postgres), make_engine(postgres)
    try:
        assert place_stories_while_another_deployment_does(ours, theirs)
    finally:
        ours.dispose()
        theirs.dispose()


def test_two_deployments_on_two_databases_of_one_server_hold_their_roles(postgres: str) -> None:
    """The keys differ by database too (PostgreSQL scopes advisory locks to one already)."""
    engine = make_engine(postgres)
    other = make_engine(postgres.rsplit("/", 1)[0] + "/postgres")
    first = Role(engine, Keys.of(engine).sending, "sending")
    second = Role(other, Keys.of(other).sending, "sending")
    try:
        assert Keys.of(engine).sending != Keys.of(other).sending
        assert first.held() and second.held()
    finally:
        first.release()
        second.release()
        engine.dispose()
        other.dispose()


class NoThreads(ThreadPoolExecutor):
    """An executor that refuses work: what ran on a thread shows as an error."""

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a thread was asked for")


def test_on_sqlite_the_role_is_held_without_a_thread(tmp_path: Path) -> None:
    """The jobs ask every tick; the one SQLite process always holds the role, and the
    answer costs no thread hop (a third of an idle delivery tick's CPU)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'tidings.db'}")
    role = Role(engine, Keys.of(engine).sending, "sending")

    async def ask() -> bool:
        asyncio.get_running_loop().set_default_executor(NoThreads())
        return await holds(role)

    try:
        assert asyncio.run(ask())
    finally:
        engine.dispose()


def test_holds_answers_as_held_does_from_the_event_loop(postgres: str) -> None:
    engines = [make_engine(postgres) for _ in range(2)]
    first, second = (Role(engine, Keys.of(engine).sending, "sending") for engine in engines)

    async def both() -> tuple[bool, bool]:
        return await holds(first), await holds(second)

    try:
        assert asyncio.run(both()) == (True, False), "one holder, asked off the loop"
    finally:
        first.release()
        second.release()
        for engine in engines:
            engine.dispose()
