"""PostgreSQL advisory locks: how replicas take turns, or pick one of them for a role.

SQLite serves one process (storage.db.claim_sqlite), whose own locks are enough, so there
every lock here is granted at once. Keys are fixed numbers, one per purpose.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

STORIES = 0x7469_6469_0001  # placing stories: one ingest at a time, across every replica


def xact_lock(session: Session, key: int) -> None:
    """Wait for `key` and hold it until this transaction ends (commit or rollback)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
