"""Old deliveries deleted, so the outbox stops growing: a row per alert is a quarter of a GiB
a day at a million alerts.

Only rows nothing will read again go: sent, digested or parked as failed, created before the
retention period (DELIVERY_RETENTION_DAYS; at least the weekly brief's reach). A row someone
voted on, or was offered a 👎 choice under, stays: /topics counts those votes, and an undo
needs its choice. A press on a deleted alert's button is answered as for any stale button.

Each finished state is scanned in id order on the (state, id) index, a batch a transaction,
from a floor below which that state's rows are gone or kept for good: a run reads what it may
delete, the few rows kept, and the first row still too young; rows still waiting (a chat that
blocked the bot keeps them for ever) are never read. The table's newest row always stays:
SQLite gives a new row the highest id plus one, and an id used again would let an old
alert's buttons act on a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from storage.db import database_now
from storage.models import Delivery, FeedbackChoice, Vote

FINISHED = ("sent", "digested", "failed")  # no claim takes these again
BATCH = 2000  # rows a transaction reads; it deletes at most as many


@dataclass(frozen=True)
class Batch:
    """One batch's work: rows deleted; the floor it reached (every row of the state at or
    below it is gone or kept for good); whether more of the state may be old enough."""

    deleted: int
    floor: int
    more: bool


def prune_batch(*, session: Session, keep: timedelta, state: str, floor: int,
                limit: int = BATCH) -> Batch:
    """Delete the rows in `state` older than `keep` among its next `limit` past `floor`."""
    cutoff = database_now(session) - keep
    newest = session.exec(select(func.max(Delivery.id))).one() or 0
    rows = session.exec(
        select(Delivery.id, Delivery.created_at)
        .where(Delivery.state == state, col(Delivery.id) > floor, col(Delivery.id) < newest)
        .order_by(col(Delivery.id)).limit(limit)
    ).all()
    old: list[int] = []
    for delivery_id, created_at in rows:
        if created_at >= cutoff:  # ids follow creation: the rest are younger still
            break
        old.append(delivery_id or 0)
    deleted = _delete_unless_feedback(session, old)
    return Batch(deleted, old[-1] if old else floor, len(old) == limit)


def _delete_unless_feedback(session: Session, ids: list[int]) -> int:
    """Delete the rows no vote or 👎 choice refers to, checked in the statement itself: a vote
    read as absent first and committed before the delete would go with its row (cascade)."""
    if not ids:
        return 0
    voted = select(Vote.id).where(Vote.delivery_id == Delivery.id).exists()
    offered = select(FeedbackChoice.id).where(FeedbackChoice.delivery_id == Delivery.id).exists()
    result = session.execute(delete(Delivery).where(col(Delivery.id).in_(ids), ~voted, ~offered))
    return int(getattr(result, "rowcount", 0) or 0)
