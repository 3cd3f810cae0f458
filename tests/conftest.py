"""Shared fixtures: databases (SQLite always, PostgreSQL where reachable) and the bot process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text

from news.newsroom import Newsroom
from storage.db import make_engine, migrate
from tests.fakes.feeds import FeedServer
from tests.fakes.telegram import BotApiEmulator

os.environ["PTB_TIMEDELTA"] = "1"  # as bot.py does; PTB warns otherwise
REPO = Path(__file__).resolve().parent.parent
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = os.environ.get(
    "TIDINGS_TEST_PG", f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/postgres"
)


def _postgres_reachable() -> str | None:
    """None when a server answers; otherwise the reason the PostgreSQL tests are skipped."""
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
    except OSError as exc:
        return f"no PostgreSQL server on {PG_HOST}:{PG_PORT} ({exc})"
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL on {PG_HOST}:{PG_PORT} refused {PG_ADMIN_URL}: {exc}"
    return None


PG_SKIP_REASON = _postgres_reachable()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind; PostgreSQL ones are dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tidings.db'}"
        return
    if PG_SKIP_REASON:
        pytest.skip(PG_SKIP_REASON)
    name = f"tidings_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        # The plain form hosting providers hand out; the app must accept it as is.
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine on each database kind."""
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def room(engine: Engine) -> Iterator[Newsroom]:
    """The story index and matcher cache a bot process keeps, for this test's database."""
    newsroom = Newsroom(engine)
    yield newsroom
    newsroom.close()


class BotProcess:
    """`python bot.py` as a user runs it, in its own working directory, logs to a file."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.log_path = workdir / "bot.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> BotProcess:
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("OPENAI_", "TELEGRAM_", "GDELT_", "GOOGLE_NEWS_"))}
        # No bot a test starts reaches out: search is off unless the test names a provider (at
        # an emulator's URL), and the fetch guard refuses every public address, so a provider
        # or feed left at a real URL fails loudly ("outside the networks") instead.
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bot.py")], cwd=self.workdir,
            env={**clean, "SEARCH_PROVIDERS": "", "ALLOW_PUBLIC_NETWORKS": "false", **self.env},
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log:
                return
            assert self.process is not None and self.process.poll() is None, self.log
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{self.log}")

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit status. Not gone within `timeout` seconds (a
        deadline, not a measurement) raises subprocess.TimeoutExpired."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def bot_process(tmp_path: Path) -> Iterator[type[BotProcess]]:
    """Factory for bot processes; any left running at the end of the test is killed."""
    started: list[BotProcess] = []

    class Tracked(BotProcess):
        def start(self) -> BotProcess:
            started.append(self)
            return super().start()

    yield Tracked
    for process in started:
        process.kill()


@pytest.fixture
def world(tmp_path: Path, bot_process: type[BotProcess]) -> Iterator[Any]:
    """A running bot with one source and the emulators (tests.test_e2e_topics.World), for the
    end-to-end modules that act as users; every Bot API call it made must have been valid."""
    from tests.harness import (
        TOKEN,
        start_world,  # imported here: they import this module
    )

    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        world = start_world(tmp_path, bot_process, telegram, feeds)
        yield world
        assert telegram.rejected == []
        assert "Traceback" not in world.bot.log


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on `engine` while the test runs, flattened and lower-cased."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(" ".join(str(args[2]).split()).lower())

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)
