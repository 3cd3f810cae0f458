"""WebSub subscriptions: one per feed that advertises a hub, its lease, and the polling it holds.

While a lease holds, the source is polled only every `poll_interval_seconds` (a safety net,
storage.sources.claim_due); whatever ends the lease (a failure, a denial, a lapse) gives the
source its own interval back at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from storage.db import database_now
from storage.models import Source, WebSub

NEW, REQUESTED, ACTIVE, FAILED, DENIED, LAPSED = (
    "new", "requested", "active", "failed", "denied", "lapsed")
MAX_BACKOFF = timedelta(hours=6)


@dataclass(frozen=True)
class Advertised:
    """What a feed's latest fetch said about push: its hub ("" when none) and topic URL."""

    source_id: int
    hub: str
    topic: str


@dataclass(frozen=True)
class Attempt:
    """A subscribe request to send, detached from the session that claimed it."""

    id: int
    source_id: int
    hub: str
    topic: str
    callback: str
    secret: str


@dataclass(frozen=True)
class Target:
    """What a push to one callback needs: the key its signature is checked with, and the
    source its entries belong to."""

    id: int
    source_id: int
    topic: str
    secret: str
    name: str
    url: str
    paused: bool


@dataclass(frozen=True)
class Status:
    """A source's push state as /sources shows it."""

    hub: str
    state: str
    lease_expires_at: datetime | None
    error_code: str | None
    error_detail: str | None
    poll_interval_seconds: int


def note(*, session: Session, found: Sequence[Advertised], poll_interval: int) -> int:
    """Record what feeds advertise: a new hub (or topic) is subscribed to afresh, a hub no
    longer advertised is forgotten and its source polled as before; how many rows changed."""
    if not found:
        return 0
    by_source = {row.source_id: row for row in session.exec(
        select(WebSub).where(col(WebSub.source_id).in_([one.source_id for one in found])))}
    now, changed = database_now(session), 0
    for one in found:
        row = by_source.get(one.source_id)
        if not one.hub:
            if row is not None:
                _release(session, row.source_id, now)
                session.delete(row)
                changed += 1
            continue
        if row is None:
            session.add(WebSub(source_id=one.source_id, hub_url=one.hub, topic_url=one.topic,
                               callback=secrets.token_urlsafe(24), secret=secrets.token_hex(32),
                               next_attempt_at=now, poll_interval_seconds=poll_interval))
            changed += 1
        elif (row.hub_url, row.topic_url) != (one.hub, one.topic):
            row.hub_url, row.topic_url, row.state = one.hub, one.topic, NEW
            row.lease_expires_at = row.requested_at = None
            row.next_attempt_at, row.failures = now, 0
            _release(session, row.source_id, now)
            changed += 1
        else:
            row.poll_interval_seconds = poll_interval
    session.flush()
    return changed


def lapse(*, session: Session) -> int:
    """Leases that ran out unrenewed: their sources are polled as before, and subscribed again
    at once; how many."""
    now = database_now(session)
    rows = session.exec(select(WebSub).where(
        WebSub.state == ACTIVE, col(WebSub.lease_expires_at) <= now)).all()
    for row in rows:
        row.state, row.next_attempt_at = LAPSED, now
        row.error_code, row.error_detail = None, None
        _release(session, row.source_id, now)
    return len(rows)


def claim(*, session: Session, limit: int, wait: timedelta) -> list[Attempt]:
    """Subscriptions due a (re)subscribe request, claimed by moving their next attempt `wait`
    on (when the hub's verification should have come); SKIP LOCKED lets replicas share."""
    now = database_now(session)
    statement = (select(WebSub).where(col(WebSub.next_attempt_at) <= now)
                 .order_by(col(WebSub.next_attempt_at)).limit(limit)
                 .with_for_update(skip_locked=True))
    attempts = []
    for row in session.exec(statement).all():
        row.next_attempt_at, row.requested_at = now + wait, now
        attempts.append(Attempt(row.id or 0, row.source_id, row.hub_url, row.topic_url,
                                row.callback, row.secret))
    return attempts


def requested(*, session: Session, websub_id: int) -> None:
    """The hub accepted the request (202); its verification is awaited. An active lease
    stays active meanwhile (it holds until it expires), and a lapsed one shows as lapsed."""
    row = session.get(WebSub, websub_id)
    if row is not None and row.state not in (ACTIVE, LAPSED):
        row.state = REQUESTED


def failed(*, session: Session, websub_id: int, code: str, detail: str = "",
           retry: timedelta = timedelta(minutes=1), state: str = FAILED) -> None:
    """The hub refused or could not be reached: the source is polled as before, and the
    request tried again after a backoff that doubles with each failure in a row."""
    row = session.get(WebSub, websub_id)
    if row is None:
        return
    now = database_now(session)
    row.failures += 1
    row.state, row.requested_at = state, None
    row.error_code, row.error_detail = code[:32], detail[:500]
    row.lease_expires_at = None
    row.next_attempt_at = now + min(retry * 2 ** min(row.failures - 1, 16), MAX_BACKOFF)
    _release(session, row.source_id, now)


def verified(*, session: Session, callback: str, topic: str, lease_seconds: int) -> bool:
    """The hub's intent verification for a subscription: True when it is one we asked for (or
    hold), then the lease runs from now and polling steps back to the safety net."""
    row = _by_callback(session, callback)
    if row is None or row.topic_url != topic or lease_seconds <= 0:
        return False
    if row.requested_at is None and row.state != ACTIVE:
        return False
    now = database_now(session)
    row.state, row.requested_at, row.failures = ACTIVE, None, 0
    row.error_code = row.error_detail = None
    row.lease_expires_at = now + timedelta(seconds=lease_seconds)
    # Renewed before it lapses: halfway through a short lease, an hour before a long one.
    row.next_attempt_at = row.lease_expires_at - timedelta(seconds=min(lease_seconds / 2, 3600))
    source = session.get(Source, row.source_id)
    if source is not None:
        source.next_poll_at = max(source.next_poll_at,
                                  now + timedelta(seconds=row.poll_interval_seconds))
    return True


def denied(*, session: Session, callback: str, topic: str, reason: str,
           retry: timedelta) -> bool:
    """The hub refused the subscription (hub.mode=denied): recorded as a failure."""
    row = _by_callback(session, callback)
    if row is None or row.topic_url != topic:
        return False
    failed(session=session, websub_id=row.id or 0, code="hub_denied", detail=reason,
           retry=retry, state=DENIED)
    return True


def target(*, session: Session, callback: str) -> Target | None:
    """The subscription a callback URL names, with its source; None for an unknown one."""
    row = _by_callback(session, callback)
    source = session.get(Source, row.source_id) if row is not None else None
    if row is None or source is None:
        return None
    return Target(row.id or 0, source.id or 0, row.topic_url, row.secret, source.name,
                  source.url, source.paused)


def pushed(*, session: Session, websub_id: int) -> None:
    row = session.get(WebSub, websub_id)
    if row is not None:
        row.last_push_at = database_now(session)


def statuses(*, session: Session) -> dict[int, Status]:
    """Every source's push state, by source id, for /sources."""
    return {row.source_id: Status(row.hub_url, row.state, row.lease_expires_at, row.error_code,
                                  row.error_detail, row.poll_interval_seconds)
            for row in session.exec(select(WebSub)).all()}


def forget_all(*, session: Session) -> int:
    """Without a public callback (long polling) nothing is pushed: every source is polled at
    its own interval again; how many subscriptions there were."""
    rows = session.exec(select(WebSub)).all()
    now = database_now(session)
    for row in rows:
        _release(session, row.source_id, now)
        session.delete(row)
    return len(rows)


def _by_callback(session: Session, callback: str) -> WebSub | None:
    return session.exec(select(WebSub).where(WebSub.callback == callback)).first()


def _release(session: Session, source_id: int, now: datetime) -> None:
    """The source's own interval again, from now: no push will bring its news."""
    source = session.get(Source, source_id)
    if source is not None:
        source.next_poll_at = min(source.next_poll_at,
                                  now + timedelta(seconds=source.interval_seconds))


def pushed_intervals(*, session: Session, source_ids: Sequence[int],
                     now: datetime) -> dict[int, int]:
    """The safety net's interval of each of these sources whose lease holds at `now`."""
    if not source_ids:
        return {}
    rows = session.exec(select(WebSub.source_id, WebSub.poll_interval_seconds).where(
        col(WebSub.source_id).in_(source_ids), WebSub.state == ACTIVE,
        col(WebSub.lease_expires_at) > now)).all()
    return {source_id: seconds for source_id, seconds in rows}
