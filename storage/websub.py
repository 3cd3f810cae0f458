"""WebSub subscriptions: one per feed that advertises a hub, its lease, and the polling it holds.

While a lease holds, the source is polled only every `poll_interval_seconds` (a safety net,
storage.sources.claim_due); whatever ends the lease (a failure, a denial, a lapse) gives the
source its own interval back at once.

A subscription we drop (its source removed, its feed naming another hub or none) is retired:
a WebSubRetired row keeps its callback so the hub can be told `hub.mode=unsubscribe`, a few
times at most, and so what it still pushes meanwhile is acknowledged and ignored.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.db import database_now
from storage.models import Source, WebSub, WebSubRetired

NEW, REQUESTED, ACTIVE, FAILED, DENIED, LAPSED = (
    "new", "requested", "active", "failed", "denied", "lapsed")
# A retired subscription's states (WebSubRetired.state).
PENDING, VERIFIED, GIVEN_UP = "pending", "verified", "given_up"
MAX_BACKOFF = timedelta(hours=6)
# Pushes already on their way when the hub confirmed an unsubscription are still acknowledged.
VERIFIED_GRACE = timedelta(hours=1)


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
class Retired:
    """A callback whose subscription we dropped: pushes to it are acknowledged and ignored."""

    id: int
    topic: str


@dataclass(frozen=True)
class Unsubscribe:
    """An unsubscribe request to send, detached from the session that claimed it."""

    id: int
    hub: str
    topic: str
    callback: str
    attempt: int  # 1 for the first


@dataclass(frozen=True)
class Status:
    """A source's push state as /sources shows it."""

    hub: str
    state: str
    lease_expires_at: datetime | None
    error_code: str | None
    error_detail: str | None
    poll_interval_seconds: int


def note(*, session: Session, found: Sequence[Advertised], poll_interval: int,
         keep: timedelta | None = None) -> int:
    """Record what feeds advertise: a new hub (or topic) is subscribed to afresh, a hub no
    longer advertised is forgotten and its source polled as before; how many rows changed.
    With `keep` (the lease we ask hubs for), a subscription left behind is retired: its hub is
    asked to cancel it, and a moved one gets a new callback so the two are never confused."""
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
                if keep is not None:
                    _retire(session, row, now, keep)
                session.delete(row)
                changed += 1
            continue
        if row is None:
            session.add(WebSub(source_id=one.source_id, hub_url=one.hub, topic_url=one.topic,
                               callback=secrets.token_urlsafe(24), secret=secrets.token_hex(32),
                               next_attempt_at=now, poll_interval_seconds=poll_interval))
            changed += 1
        elif (row.hub_url, row.topic_url) != (one.hub, one.topic):
            if keep is not None and _retire(session, row, now, keep):
                row.callback = secrets.token_urlsafe(24)
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
    # One conditional UPDATE, not a read then a write: a verification committed meanwhile (a
    # hub may verify before its 202 is handled here) is never turned back into a request.
    session.execute(update(WebSub).where(col(WebSub.id) == websub_id,
                                         col(WebSub.state).not_in([ACTIVE, LAPSED]))
                    .values(state=REQUESTED))


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


def addressee(*, session: Session, callback: str) -> Target | Retired | None:
    """What a callback URL names: a live subscription, one we retired, or nothing we know."""
    return target(session=session, callback=callback) or retired(session=session,
                                                                callback=callback)


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


# --- retired subscriptions: unsubscribe at the hub ----------------------------------------


def retire_source(*, session: Session, source_id: int, keep: timedelta) -> bool:
    """The source is going: its subscription, if the hub may hold one, is retired (before the
    source's row takes its subscription's with it). Whether there was one to cancel."""
    row = session.exec(select(WebSub).where(WebSub.source_id == source_id)).first()
    return row is not None and _retire(session, row, database_now(session), keep)


def _retire(session: Session, row: WebSub, now: datetime, keep: timedelta) -> bool:
    """A WebSubRetired row for a subscription the hub may hold (one never asked for, or one
    it denied, it does not); kept while a lease the hub granted may still run: to the lease's
    end, and at least `keep` (what we ask for, in case the hub granted a renewal we never
    saw verified). Whether the hub is to be asked to cancel it."""
    asked = row.requested_at is not None or row.state not in (NEW, DENIED)
    if not asked:
        return False
    keep_until = max(row.lease_expires_at or now, now + keep)
    session.add(WebSubRetired(hub_url=row.hub_url, topic_url=row.topic_url,
                              callback=row.callback, next_attempt_at=now,
                              keep_until=keep_until))
    session.flush()
    return True


def retired(*, session: Session, callback: str) -> Retired | None:
    """The retired subscription a callback URL names, if any."""
    row = _retired_by_callback(session, callback)
    return Retired(row.id or 0, row.topic_url) if row is not None else None


def claim_unsubscribes(*, session: Session, limit: int, wait: timedelta,
                       attempts: int) -> list[Unsubscribe]:
    """Retired subscriptions due an unsubscribe request, claimed by moving their next attempt
    `wait` on (an accepted request the hub never verifies is sent again then). One that has
    had its `attempts` is given up instead: the hub's lease runs out on its own."""
    now = database_now(session)
    statement = (select(WebSubRetired)
                 .where(col(WebSubRetired.state).in_([PENDING, REQUESTED]),
                        col(WebSubRetired.next_attempt_at) <= now)
                 .order_by(col(WebSubRetired.next_attempt_at)).limit(limit)
                 .with_for_update(skip_locked=True))
    claimed = []
    for row in session.exec(statement).all():
        if row.attempts >= attempts:
            row.state = GIVEN_UP
            continue
        row.attempts += 1
        row.next_attempt_at = now + wait
        claimed.append(Unsubscribe(row.id or 0, row.hub_url, row.topic_url, row.callback,
                                   row.attempts))
    return claimed


def unsubscribe_requested(*, session: Session, retired_id: int) -> None:
    """The hub accepted the unsubscribe request; its verification is awaited (unless it came
    first: some hubs verify before they answer)."""
    # One conditional UPDATE, not a read then a write: a verification committed meanwhile (the
    # hub's GET is served beside this) is never overwritten.
    session.execute(update(WebSubRetired)
                    .where(col(WebSubRetired.id) == retired_id, col(WebSubRetired.state) == PENDING)
                    .values(state=REQUESTED, error_code=None))


def unsubscribe_failed(*, session: Session, retired_id: int, code: str, retry: timedelta,
                       attempts: int) -> bool:
    """The hub refused or could not be reached: tried again after a backoff that doubles with
    each try, until it has had its `attempts`. True when that was the last."""
    row = session.get(WebSubRetired, retired_id)
    if row is None:
        return False
    last = row.attempts >= attempts
    wait = min(retry * 2 ** min(max(row.attempts - 1, 0), 16), MAX_BACKOFF)
    changed = session.execute(  # conditional, as unsubscribe_requested: a verification stands
        update(WebSubRetired)
        .where(col(WebSubRetired.id) == retired_id,
               col(WebSubRetired.state).in_([PENDING, REQUESTED]))
        .values(state=GIVEN_UP if last else PENDING, error_code=code[:32],
                next_attempt_at=row.next_attempt_at if last else database_now(session) + wait))
    return last and int(getattr(changed, "rowcount", 0) or 0) == 1


def unsubscribe_verified(*, session: Session, callback: str, topic: str) -> bool:
    """The hub's intent verification for an unsubscription: True for a subscription we
    retired, on that topic (whoever asked the hub, cancelling it is what we want); then no
    more requests, and pushes are still acknowledged a little while."""
    row = _retired_by_callback(session, callback)
    if row is None or row.topic_url != topic:
        return False
    now = database_now(session)
    row.state, row.error_code = VERIFIED, None
    row.keep_until = min(row.keep_until, now + VERIFIED_GRACE)
    return True


def purge_retired(*, session: Session) -> int:
    """Retired subscriptions no hub can still push for are forgotten; how many."""
    rows = session.exec(select(WebSubRetired).where(
        col(WebSubRetired.keep_until) <= database_now(session))).all()
    for row in rows:
        session.delete(row)
    return len(rows)


def _retired_by_callback(session: Session, callback: str) -> WebSubRetired | None:
    return session.exec(select(WebSubRetired).where(WebSubRetired.callback == callback)).first()
