"""Old deliveries deleted, so the outbox stops growing: a row per alert is a quarter of a GiB
a day at a million alerts.

Only rows nothing will read again go: sent, digested or parked as failed, created before the
retention period (DELIVERY_RETENTION_DAYS; at least the weekly brief's week). A row someone
voted on, or was offered a 👎 choice under, stays: /topics counts those votes, and an undo
needs its choice. A press on a deleted alert's button is answered as for any stale button.

The rows are scanned in id order (the primary key; no index on their age is needed), a batch
a transaction, from a floor below which everything left is kept for good: a pass reads only
what it may delete, the few rows kept, and the first rows still too young.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from storage.db import database_now
from storage.models import Delivery, FeedbackChoice, Vote

FINISHED = ("sent", "digested", "failed")  # no claim takes these again
BATCH = 2000  # rows a transaction reads; it deletes at most as many


@dataclass(frozen=True)
class Batch:
    """One batch's work: rows deleted; the last id it read; the floor it raised (every row at
    or below it is gone or kept for good), None once an old row still waits (quiet hours, a
    digest) below it; whether rows past this batch may still be old enough."""

    deleted: int
    last: int
    floor: int | None
    more: bool


def prune_batch(*, session: Session, keep: timedelta, after: int, floor: int | None,
                limit: int = BATCH) -> Batch:
    """Delete the finished rows older than `keep` among the next `limit` rows after id
    `after`, raising `floor` (None: held) past each row that is gone or kept for good."""
    cutoff = database_now(session) - keep
    rows = session.exec(
        select(Delivery.id, Delivery.state, Delivery.created_at)
        .where(col(Delivery.id) > after).order_by(col(Delivery.id)).limit(limit)
    ).all()
    old: list[int] = []
    more = len(rows) == limit
    for delivery_id, state, created_at in rows:
        if created_at >= cutoff:  # ids follow creation: the rest are younger still
            more = False
            break
        after = delivery_id or 0
        if state in FINISHED:
            old.append(after)
        else:
            floor = None
        if floor is not None:
            floor = after
    kept = _with_feedback(session, old)
    doomed = [delivery_id for delivery_id in old if delivery_id not in kept]
    if doomed:
        session.execute(delete(Delivery).where(col(Delivery.id).in_(doomed)))
    return Batch(len(doomed), after, floor, more)


def _with_feedback(session: Session, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    voted = session.exec(select(Vote.delivery_id).where(col(Vote.delivery_id).in_(ids))).all()
    offered = session.exec(select(FeedbackChoice.delivery_id)
                           .where(col(FeedbackChoice.delivery_id).in_(ids))).all()
    return set(voted) | set(offered)
