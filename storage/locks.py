"""PostgreSQL advisory locks: how replicas take turns, or pick one of them for a role.

SQLite serves one process (storage.db.claim_sqlite), whose own locks are enough, so there
every lock here is granted at once. A key is a hash of the deployment's name, the database's
name and the purpose (Keys), not a fixed number: two deployments on one server, or in one
database, never wait on each other's locks.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlmodel import Session

DEPLOYMENT = "tidings"  # DEPLOYMENT_NAME's default
log = logging.getLogger(__name__)
# Whether this connection holds the lock (a bigint key shows as classid, objid in pg_locks).
_MINE = text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
             "AND pid = pg_backend_pid() AND objsubid = 1 "
             "AND (classid::bigint << 32) | objid::bigint = :key)")


def lock_key(purpose: str, *, deployment: str, database: str) -> int:
    """A bigint advisory-lock key (signed 64 bits, as PostgreSQL takes it) for one purpose of
    one deployment on one database."""
    named = "\0".join(("tidings lock", deployment, database, purpose)).encode()
    return int.from_bytes(hashlib.blake2b(named, digest_size=8).digest(), "big", signed=True)


@dataclass(frozen=True)
class Keys:
    """The advisory-lock keys of one deployment: every replica of it computes the same ones."""

    deployment: str = DEPLOYMENT
    database: str = ""

    @classmethod
    def of(cls, engine: Engine, deployment: str = DEPLOYMENT) -> Keys:
        """The keys for the database `engine` connects to (libpq's default: the user's name)."""
        url = engine.url
        return cls(deployment, url.database or url.username or "")

    def key(self, purpose: str) -> int:
        return lock_key(purpose, deployment=self.deployment, database=self.database)

    @property
    def stories(self) -> int:
        """Placing stories: one ingest at a time, across every replica."""
        return self.key("stories")

    @property
    def sending(self) -> int:
        """The sending role: the one replica that sends alerts and digests."""
        return self.key("sending")

    @property
    def migrations(self) -> int:
        """Schema migrations: one replica at a time brings the schema to head."""
        return self.key("migrations")

    def receiving(self, bot_id: int) -> int:
        """Long polling for one bot: two bots may share a deployment's database."""
        return self.key(f"receiver {bot_id}")


def xact_lock(session: Session, key: int) -> None:
    """Wait for `key` and hold it until this transaction ends (commit or rollback)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


class Role:
    """A role one replica holds at a time: a session-level advisory lock on a connection kept
    for it. When the holder dies its connection closes, PostgreSQL frees the lock, and the
    next replica to ask takes the role. On SQLite the one process always holds it.

    `held()` blocks on the database (call it from a thread): the holder checks that its
    connection still answers, the others try to take the lock, without waiting for it.
    A new holder answers False for its first `settle` seconds: what the previous one did
    just before it died (sends to a chat, which Telegram's limits count) is past by then.
    """

    def __init__(self, engine: Engine, key: int, name: str, *, settle: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.key = key
        self.name = name
        self.settle = settle
        self.clock = clock
        self.taken_at = -float("inf")
        self.connection: Connection | None = None
        self.guard = threading.Lock()

    @property
    def local(self) -> bool:
        """SQLite: the one process always holds the role, and held() need not be asked."""
        return self.engine.dialect.name != "postgresql"

    def held(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True
        with self.guard:
            if self.connection is not None:
                try:
                    if self.connection.execute(_MINE, {"key": self.key}).scalar():
                        return self._settled()
                    log.warning("lost the %s role: its connection was replaced", self.name)
                except Exception as exc:  # the lock went with the connection
                    log.warning("lost the %s role: %s", self.name, exc)
                self._drop()
            return self._take() and self._settled()

    def _settled(self) -> bool:
        return self.clock() - self.taken_at >= self.settle

    def _take(self) -> bool:
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                       {"key": self.key}).scalar()
        except Exception:
            connection.invalidate()
            connection.close()
            raise
        if not taken:
            connection.close()  # back to the pool, holding nothing
            return False
        log.info("this replica now holds the %s role", self.name)
        self.connection, self.taken_at = connection, self.clock()
        return True

    def _drop(self) -> None:
        """Close the role's connection for good: a pooled one would keep the lock."""
        if self.connection is not None:
            self.connection.invalidate()
            self.connection.close()
            self.connection = None

    def release(self) -> None:
        """Give the role up (at shutdown), so another replica takes it at its next try."""
        with self.guard:
            self._drop()
