"""The engine, its sessions and schema migrations; the only place that knows the database kind."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote_plus

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session, create_engine

from storage.locks import Keys
from storage.models import utcnow

MIGRATIONS = Path(__file__).with_name("migrations")
CONNECT_TIMEOUT_SECONDS = 10  # an unreachable server fails a try instead of hanging start-up
WAIT_ATTEMPTS = 8  # with doubling waits from 1 s (capped at 30 s): about two and a half minutes
CLOCK_TOLERANCE = timedelta(seconds=5)  # replicas' clocks further off the database's are warned of
HIDDEN = "***"  # what a password shows as in logs, as SQLAlchemy shows one
log = logging.getLogger(__name__)
T = TypeVar("T")


class DatabaseUnreachable(RuntimeError):
    """The database did not answer at start-up, after every retry."""


class DatabaseInUse(RuntimeError):
    """Another bot process already runs on this SQLite file."""


def claim_sqlite(url: str) -> IO[bytes] | None:
    """SQLite serves one bot process (SPEC §9): a second one on the same file would send every
    alert twice and fight over getUpdates, so it is refused. The lock lives as long as the
    returned handle (the process, in practice); PostgreSQL needs none (None)."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database \
            or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.with_name(path.name + ".lock").open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DatabaseInUse(
            f"another Tidings process already uses {path}; SQLite serves one process. Stop "
            "the other one, or use PostgreSQL (DATABASE_URL) to run several") from None
    return handle


def normalize_url(url: str) -> str:
    """Accept the `postgres://` and `postgresql://` forms hosts hand out, and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _is_password(name: str) -> bool:
    """libpq takes `password` and `sslpassword` in the query string as well as in userinfo."""
    return "password" in name.lower()


def describe(url: str) -> str:
    """The database for logs, with every password hidden: the userinfo one by SQLAlchemy's own
    rendering, and any in the query string (`?password=`, `?sslpassword=`) by us."""
    try:
        parsed = make_url(normalize_url(url))
    except (ArgumentError, ValueError):
        return "(a DATABASE_URL that does not parse)"
    masked = {name: HIDDEN for name in parsed.query if _is_password(name)}
    shown = parsed.update_query_dict(masked).render_as_string(hide_password=True)
    return shown.replace(quote_plus(HIDDEN), HIDDEN)


def url_secrets(url: str) -> tuple[str, ...]:
    """Every password the URL carries, for the log filter: whatever else prints them (a
    driver's message, a traceback), they never reach a log."""
    try:
        parsed = make_url(normalize_url(url))
    except (ArgumentError, ValueError):
        return ()
    found = [parsed.password or ""]
    for name, value in parsed.query.items():
        if _is_password(name):
            found.extend([value] if isinstance(value, str) else value)
    plain = [str(secret) for secret in found if secret]
    return tuple(dict.fromkeys(plain + [quote_plus(secret) for secret in plain]))  # and encoded


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # In WAL mode NORMAL loses no committed transaction when the process dies (only, at worst,
    # the last ones on a power cut) and spares every commit an fsync.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """SQLite gets WAL and foreign keys (off by default there); its folder is created if missing."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True,
                         connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})


def wait_for_database(
    engine: Engine, *, attempts: int = WAIT_ATTEMPTS, first_wait: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """A database that starts after the bot (compose, a reboot) is waited for, one log line a
    try, and one that never answers ends start-up with a message instead of a hang."""
    url = engine.url.render_as_string(hide_password=False)
    log.info("connecting to database %s", describe(url))
    wait = first_wait
    for attempt in range(1, attempts + 1):
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0] if str(exc) else repr(exc)
            for secret in url_secrets(url):
                reason = reason.replace(secret, HIDDEN)
            if attempt == attempts:
                raise DatabaseUnreachable(
                    f"database {describe(url)} did not answer after {attempts} "
                    f"tries: {reason}") from None
            log.warning("database %s not reachable (try %d of %d, next in %.0f s): %s",
                        describe(url), attempt, attempts, wait, reason)
            sleep(wait)
            wait = min(wait * 2, 30.0)


def migrate(engine: Engine, keys: Keys | None = None) -> None:
    """Bring the schema to the newest Alembic revision; safe to run at every start."""
    keys = keys or Keys.of(engine)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas started together would each create the tables; one at a time, the
            # others find the schema at head. Freed when the transaction ends.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": keys.migrations})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _in_session(engine: Engine, work: Callable[..., T], values: dict[str, Any]) -> T:
    with session_scope(engine) as session:
        return work(session=session, **values)


async def db(engine: Engine, work: Callable[..., T], /, *, thread: Executor | None = None,
             **values: Any) -> T:
    """`work(session=..., **values)` in one transaction on a worker thread: the one way async
    code touches the database, so a slow query or a lock never stalls the event loop.
    `thread`: an executor of the caller's own (a poll's database thread, news.newsroom)
    instead of the shared pool."""
    return await in_thread(_in_session, engine, work, values, thread=thread)


async def in_thread(work: Callable[..., T], /, *args: Any,
                    thread: Executor | None = None) -> T:
    """db() for work that keeps its own transactions: an ingest under the story lock
    (news.ingest), a lock's own connection (storage.locks). On `thread`, or the shared pool
    as asyncio.to_thread runs it (with the caller's context)."""
    if thread is None:
        return await asyncio.to_thread(work, *args)
    return await asyncio.get_running_loop().run_in_executor(thread, partial(work, *args))


def database_now(session: Session) -> datetime:
    """The time other replicas compare with (due times, leases, claims, next polls): on
    PostgreSQL the server's clock, one for every replica whatever theirs say; SQLite's one
    process has only its own (storage.models.utcnow)."""
    if session.get_bind().dialect.name != "postgresql":
        return utcnow()
    stamp = session.execute(text("SELECT statement_timestamp()")).scalar_one()
    return stamp.astimezone(UTC)


def check_clock(engine: Engine) -> timedelta:
    """How far this process's clock is ahead of the database's (negative: behind), logged as a
    warning past CLOCK_TOLERANCE: shared times come from the database, but what this host
    stamps alone (its log lines, its job schedule) is off, and its time service (NTP) needs
    looking at."""
    if engine.dialect.name != "postgresql":
        return timedelta(0)
    with session_scope(engine) as session:
        before = utcnow()
        server = database_now(session)
        after = utcnow()
    skew = before + (after - before) / 2 - server
    if abs(skew) > CLOCK_TOLERANCE:
        log.warning("this process's clock is %.0f s %s of the database's: times replicas "
                    "share come from the database, but check this host's time service (NTP)",
                    abs(skew.total_seconds()), "ahead" if skew > timedelta(0) else "behind")
    return skew
