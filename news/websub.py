"""WebSub: sources whose feeds name a hub are subscribed there, and what the hub pushes goes
through the same parser and ingest as a poll (news.poll, news.ingest).

Only a bot with a public URL (webhook mode) can be pushed to. A subscription is asked for
(`hub.mode=subscribe` with a callback URL of its own and a secret), verified by the hub's GET
to the callback (hub_callback.py), renewed before its lease runs out, and tried again with a
backoff when the hub refuses or is gone; meanwhile the source is polled as before.

A subscription dropped (its source removed, its feed naming another hub or none) is cancelled
at its hub the same way (`hub.mode=unsubscribe`, verified by the hub's GET), tried again with
a backoff at most UNSUBSCRIBE_ATTEMPTS times; after that its lease is left to run out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from news.fetch import FetchError, FetchPolicy, post_form
from news.ingest import Outcome
from news.newsroom import Newsroom
from news.parsing import FeedReader
from news.poll import Polled, read_entries, store_now
from storage import websub
from storage.db import db
from storage.sources import DueSource

log = logging.getLogger(__name__)
VERIFY_WAIT = timedelta(minutes=5)  # a hub that accepted but never verified is asked again
ATTEMPTS_PER_ROUND = 32
UNSUBSCRIBE_ATTEMPTS = 5  # with the default 60 s retry: the last about 15 minutes on


@dataclass(frozen=True)
class PushSettings:
    """WebSub's settings; bot.py builds them only in webhook mode (WEBSUB on)."""

    callback_url: str  # the public URL the callbacks live under, e.g. https://bot.org/websub
    lease_seconds: int = 10 * 24 * 3600  # what we ask for; the hub decides
    poll_interval_seconds: int = 3600  # the safety net's interval while a lease holds
    retry_seconds: int = 60  # the first wait after a hub failed; doubled each time in a row

    def callback(self, token: str) -> str:
        return f"{self.callback_url.rstrip('/')}/{token}"


async def note(engine: Engine, push: PushSettings, polled: Sequence[Polled]) -> int:
    """What the polls found feeds advertise, recorded (new hubs are subscribed next round)."""
    found = [websub.Advertised(one.source_id, *one.hub)
             for one in polled if one.hub is not None and one.source_id]
    if not found:
        return 0
    return await db(engine, websub.note, found=found, poll_interval=push.poll_interval_seconds,
                    keep=timedelta(seconds=push.lease_seconds))


async def renew(engine: Engine, client: httpx.AsyncClient, policy: FetchPolicy,
                push: PushSettings) -> int:
    """One round: lapsed leases release their sources; every subscription that is due (new,
    to renew, to retry) is requested at its hub, and every retired one due its unsubscribe
    request, side by side. How many requests were sent."""
    lapsed = await db(engine, websub.lapse)
    if lapsed:
        log.info("websub: %d leases lapsed unrenewed; their sources are polled again", lapsed)
    await db(engine, websub.purge_retired)
    attempts = await db(engine, websub.claim, limit=ATTEMPTS_PER_ROUND, wait=VERIFY_WAIT)
    cancels = await db(engine, websub.claim_unsubscribes, limit=ATTEMPTS_PER_ROUND,
                       wait=VERIFY_WAIT, attempts=UNSUBSCRIBE_ATTEMPTS)
    await asyncio.gather(*(subscribe(engine, client, policy, push, one) for one in attempts),
                         *(unsubscribe(engine, client, policy, push, one) for one in cancels))
    return len(attempts) + len(cancels)


async def subscribe(engine: Engine, client: httpx.AsyncClient, policy: FetchPolicy,
                    push: PushSettings, attempt: websub.Attempt) -> bool:
    """Ask the hub for a subscription (or its renewal); the hub verifies it on its own, by a
    GET to the callback. False when the hub refused or could not be reached."""
    form = {"hub.mode": "subscribe", "hub.topic": attempt.topic,
            "hub.callback": push.callback(attempt.callback), "hub.secret": attempt.secret,
            "hub.lease_seconds": str(push.lease_seconds)}
    retry = timedelta(seconds=push.retry_seconds)
    try:
        status = await post_form(client, attempt.hub, form, policy)
    except FetchError as error:
        status, code, detail = 0, error.code, error.detail
    else:
        code, detail = "http_status", str(status)
    if 200 <= status < 300:  # 202 Accepted, as the spec says; some hubs say 204
        await db(engine, websub.requested, websub_id=attempt.id)
        return True
    log.info("websub: hub %s refused source %s (%s %s); polling it as before",
             attempt.hub, attempt.source_id, code, detail)
    await db(engine, websub.failed, websub_id=attempt.id, code=code, detail=detail, retry=retry)
    return False


async def unsubscribe(engine: Engine, client: httpx.AsyncClient, policy: FetchPolicy,
                      push: PushSettings, cancel: websub.Unsubscribe) -> bool:
    """Ask the hub to cancel a subscription we dropped (§5.1: the same request as subscribe's,
    without lease or secret); it verifies on its own, by a GET to the callback. False when the
    hub refused or could not be reached (tried again later, a bounded number of times)."""
    form = {"hub.mode": "unsubscribe", "hub.topic": cancel.topic,
            "hub.callback": push.callback(cancel.callback)}
    try:
        status = await post_form(client, cancel.hub, form, policy)
    except FetchError as error:
        status, code, detail = 0, error.code, error.detail
    else:
        code, detail = "http_status", str(status)
    if 200 <= status < 300:
        await db(engine, websub.unsubscribe_requested, retired_id=cancel.id)
        return True
    last = await db(engine, websub.unsubscribe_failed, retired_id=cancel.id, code=code,
                    retry=timedelta(seconds=push.retry_seconds), attempts=UNSUBSCRIBE_ATTEMPTS)
    if last:
        log.warning("websub: hub %s refused to unsubscribe %s %d times (%s %s); its pushes "
                    "are ignored until its lease runs out", cancel.hub, cancel.topic,
                    cancel.attempt, code, detail)
    else:
        log.info("websub: hub %s refused to unsubscribe %s (%s %s); trying again later",
                 cancel.hub, cancel.topic, code, detail)
    return False


async def take_push(room: Newsroom, client: httpx.AsyncClient, policy: FetchPolicy,
                    reader: FeedReader, target: websub.Target, body: bytes, *,
                    full_text: bool) -> int:
    """A pushed feed document, read and stored as a poll's would be; the new stories."""
    source = DueSource(target.source_id, target.url, target.name, None, None)
    _feed, fresh, checked = await read_entries(room, client, policy, source, body, target.url,
                                               None, full_text=full_text, reader=reader)
    outcome = Outcome(source, fresh, None, 0, unseen_checked=checked)
    try:
        new = await store_now(room, outcome)
    except IntegrityError:  # a poll of this feed by another replica stored some first
        new = await store_now(room, replace(outcome, unseen_checked=False))
    await db(room.engine, websub.pushed, websub_id=target.id)
    if new:
        log.info("source %s: %d new items pushed by its hub", target.source_id, new)
    return new
