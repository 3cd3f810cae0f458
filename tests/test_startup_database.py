"""Start-up against a database that is late or gone: waited for, logged, given up on clearly."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from jobs.heartbeat import beat
from storage.db import DatabaseUnreachable, describe, make_engine, url_secrets, wait_for_database
from tests.conftest import BotProcess
from tests.fakes.telegram import BotApiEmulator
from tests.harness import TOKEN, env_for, wait_until


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never says a word, like a database host behind a dead proxy."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_unreachable_database_is_retried_with_backoff_then_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine(f"postgresql://tidings:secret@127.0.0.1:{closed_port()}/tidings")
    waits: list[float] = []
    with caplog.at_level(logging.WARNING, "storage.db"), \
            pytest.raises(DatabaseUnreachable) as failure:
        wait_for_database(engine, attempts=4, sleep=waits.append)
    assert waits == [1.0, 2.0, 4.0], "doubling waits between tries, none after the last"
    tries = [r.getMessage() for r in caplog.records]
    assert len(tries) == 3 and all("not reachable" in line for line in tries)
    assert "after 4 tries" in str(failure.value)
    assert "secret" not in str(failure.value) + "".join(tries), "the password is never shown"


def test_a_database_that_answers_is_not_waited_for(tmp_path: Path) -> None:
    waits: list[float] = []
    wait_for_database(make_engine(f"sqlite:///{tmp_path / 't.db'}"), sleep=waits.append)
    assert waits == []


def test_sigterm_during_a_hung_start_up_stops_the_bot(
    tmp_path: Path, bot_process: type[BotProcess], silent_server: int
) -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_API_URL": "http://127.0.0.1:9",
           "DATABASE_URL": f"postgresql://tidings@127.0.0.1:{silent_server}/tidings"}
    bot = bot_process(tmp_path, env).start()
    assert bot.process is not None
    bot.wait_for_log("connecting to database")  # and hanging there: the server never answers
    bot.terminate(timeout=5)
    # 143 is an orderly exit from our handler; -15 would be the default action, which a
    # container's PID 1 does not have (there SIGTERM would be ignored until the kill).
    assert bot.process.returncode == 143, bot.log
    assert "Traceback" not in bot.log, bot.log


def test_heartbeat_needs_the_database(tmp_path: Path) -> None:
    path = tmp_path / "data" / "heartbeat"
    dead = make_engine(f"postgresql://tidings@127.0.0.1:{closed_port()}/tidings")
    with pytest.raises(OperationalError):
        beat(dead, path)
    assert not path.exists(), "no proof of life without a database"
    beat(make_engine(f"sqlite:///{tmp_path / 't.db'}"), path)
    assert path.exists()


def test_running_bot_keeps_its_heartbeat(world: Any) -> None:
    path = world.bot.workdir / "data" / "heartbeat"
    wait_until(path.exists)


def test_a_second_process_on_one_sqlite_file_is_refused(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram:
        env = env_for(telegram, f"sqlite:///{tmp_path / 't.db'}")
        first = bot_process(tmp_path, env).start()
        first.wait_for_log("Tidings starting")
        second_dir = tmp_path / "second"
        second_dir.mkdir()
        second = bot_process(second_dir, env).start()
        assert second.process is not None
        assert second.process.wait(timeout=60) == 2
        assert "another Tidings process already uses" in second.log
        assert "Traceback" not in second.log
        assert first.process is not None and first.process.poll() is None, "the first runs on"


SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://u@db.example/tidings?user=reader&password={SECRET}",
    f"postgresql://u:{SECRET}@db.example/tidings?password={SECRET}&sslmode=require",
    f"postgres://u@db.example/tidings?sslpassword={SECRET}&PASSWORD={SECRET}",
    f"postgresql+psycopg:///tidings?host=/run/pg&password={SECRET}&password=2{SECRET}",
])
def test_every_password_in_the_url_is_masked(url: str) -> None:
    shown = describe(url)
    assert SECRET not in shown
    assert shown.startswith("postgresql+psycopg://") and "/tidings" in shown, "the rest shows"


def test_a_url_that_does_not_parse_is_not_shown() -> None:
    assert SECRET not in describe(f"postgresql://u:{SECRET}@h:notaport/tidings")


def test_passwords_of_the_url_are_listed_for_the_log_filter() -> None:
    url = f"postgresql://u:{SECRET}@h/tidings?password=q{SECRET}&sslpassword=t{SECRET}"
    assert set(url_secrets(url)) >= {SECRET, f"q{SECRET}", f"t{SECRET}"}
    assert url_secrets("sqlite:///data/tidings.db") == ()


def test_query_password_never_reaches_the_log_on_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine(
        f"postgresql://tidings@127.0.0.1:{closed_port()}/tidings?user=reader&password={SECRET}")
    with caplog.at_level(logging.INFO, "storage.db"), pytest.raises(DatabaseUnreachable) as failure:
        wait_for_database(engine, attempts=3, sleep=lambda _: None)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "not reachable" in logged and "connecting to database" in logged
    assert SECRET not in logged + str(failure.value)


def test_the_bot_logs_no_query_password_while_retrying(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:not-a-real-token", "TELEGRAM_API_URL": "http://127.0.0.1:9",
           "DATABASE_URL": f"postgresql://tidings@127.0.0.1:{closed_port()}/tidings"
                           f"?user=reader&password={SECRET}"}
    bot = bot_process(tmp_path, env).start()
    bot.wait_for_log("(try 2 of")
    bot.kill()
    assert "connecting to database postgresql+psycopg://tidings@127.0.0.1" in bot.log
    assert SECRET not in bot.log, bot.log


def test_the_bot_logs_no_query_password_when_it_starts(
    database_url: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a query string with a password is a PostgreSQL form")
    # Trust authentication ignores the password: the bot connects and logs its start-up line.
    env = {"TELEGRAM_BOT_TOKEN": "1:not-a-real-token", "TELEGRAM_API_URL": "http://127.0.0.1:9",
           "DATABASE_URL": f"{database_url}?password={SECRET}"}
    bot = bot_process(tmp_path, env).start()
    bot.wait_for_log("Tidings starting: database postgresql+psycopg://")
    bot.kill()
    assert SECRET not in bot.log, bot.log
