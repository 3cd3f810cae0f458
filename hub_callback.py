"""The WebSub callbacks (news.websub), served by the webhook's own server (receiver.Webhook).

A hub GETs a callback to verify a subscription we asked for, and POSTs it each new version of
the feed, signed with the subscription's secret. As with Telegram's updates, a post is judged
on its headers before a byte of its body is kept: an unknown callback is a 404, a post without
a signature WebSub names a 403, and the server reads at most MAX_PUSH_BYTES of any body.

A callback whose subscription we dropped (storage.websub.retire_source) answers the hub's
verification of our unsubscribe request, and acknowledges what the hub still pushes (2xx, so it
is not sent again) without keeping it, until the hub has cancelled the subscription.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import tornado.web

from news.feeds import NotAFeed
from news.hubs import signature_method, signed
from news.websub import PushSettings, take_push
from services import Services
from storage import sources, websub
from storage.db import db

log = logging.getLogger("tidings")
SIGNATURE_HEADER = "X-Hub-Signature"
MAX_LEASE_SECONDS = 366 * 24 * 3600  # a hub's longer lease is renewed within the year anyway
CHALLENGE_CHARS = 1024  # a challenge is a hub's nonce: anything longer is not one
TOKEN = r"([A-Za-z0-9_-]{1,64})"


@tornado.web.stream_request_body
class HubCallback(tornado.web.RequestHandler):
    """One subscription's callback URL: its last segment names the subscription."""

    SUPPORTED_METHODS = ("GET", "POST")

    def initialize(self, svc: Services, push: PushSettings) -> None:
        self.svc, self.push = svc, push
        self.chunks: list[bytes] = []
        self.target: websub.Target | None = None
        self.retired: websub.Retired | None = None

    async def prepare(self) -> None:
        found = await db(self.svc.engine, websub.addressee, callback=self.path_args[0])
        if found is None:
            raise tornado.web.HTTPError(HTTPStatus.NOT_FOUND)
        if isinstance(found, websub.Retired):
            self.retired = found  # a push is acknowledged and ignored, a signature or not
            return
        self.target = found
        if self.request.method == "POST" and signature_method(
                self.request.headers.get(SIGNATURE_HEADER, "")) is None:
            log.info("websub: a push for source %s without a usable signature was refused",
                     self.target.source_id)
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)

    def data_received(self, chunk: bytes) -> None:
        if self.retired is None:  # a dropped subscription's push is read off the wire, unkept
            self.chunks.append(chunk)  # at most the server's body cap: larger bodies dropped

    async def get(self, token: str) -> None:
        """Intent verification (§5.3): the challenge echoed for a subscription we asked for,
        or for the cancellation of one we dropped; a 404 for anything else, so nobody
        subscribes us to what we did not ask for, or cancels what we keep."""
        mode = self.get_query_argument("hub.mode", "")
        topic = self.get_query_argument("hub.topic", "")
        challenge = self.get_query_argument("hub.challenge", "")
        if mode == "denied" and self.target is not None:
            if await self._denied(token, topic):
                return
        elif 0 < len(challenge) <= CHALLENGE_CHARS and await self._agreed(token, mode, topic):
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.write(challenge)
            return
        raise tornado.web.HTTPError(HTTPStatus.NOT_FOUND)

    async def _agreed(self, token: str, mode: str, topic: str) -> bool:
        """Whether we asked for what the hub verifies: a subscription (then its lease runs
        from now) or, for a callback we retired, its cancellation (then no more requests)."""
        if self.retired is not None:
            if mode != "unsubscribe" or not await db(
                    self.svc.engine, websub.unsubscribe_verified, callback=token, topic=topic):
                return False
            log.info("websub: the hub confirmed it stops pushing %s", topic)
            return True
        if mode != "subscribe":
            return False
        lease = self.get_query_argument("hub.lease_seconds", "").strip()
        seconds = min(int(lease), MAX_LEASE_SECONDS) if lease.isdigit() and len(lease) < 12 \
            else self.push.lease_seconds
        if not await db(self.svc.engine, websub.verified, callback=token, topic=topic,
                        lease_seconds=seconds):
            return False
        log.info("websub: source %s subscribed at its hub for %d s",
                 self.target.source_id if self.target else 0, seconds)
        return True

    async def _denied(self, token: str, topic: str) -> bool:
        """§5.2: the hub refused a subscription it had accepted."""
        reason = self.get_query_argument("hub.reason", "")[:200]
        if not await db(self.svc.engine, websub.denied, callback=token, topic=topic,
                        reason=reason, retry=timedelta(seconds=self.push.retry_seconds)):
            return False
        log.info("websub: the hub denied source %s: %s",
                 self.target.source_id if self.target else 0, reason)
        return True

    async def post(self, token: str) -> None:
        """Content distribution (§7): a signed feed document, ingested as a poll's would be.
        A body that is no feed is taken as a ping: the source is polled now. One for a
        subscription we dropped is acknowledged and ignored."""
        if self.retired is not None:  # acknowledged, so the hub does not send it again
            log.info("websub: a push for a dropped subscription (%s) was acknowledged and "
                     "ignored", self.retired.topic)
            self.set_status(HTTPStatus.NO_CONTENT)
            return
        target, body = self.target, b"".join(self.chunks)
        assert target is not None, "prepare() refused unknown callbacks"
        if not signed(self.request.headers.get(SIGNATURE_HEADER, ""), body, target.secret):
            log.warning("websub: a push for source %s failed its signature check; ignored",
                        target.source_id)
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        if target.paused:
            return  # acknowledged, and ignored as a paused source's polls would be
        svc = self.svc
        try:
            await take_push(svc.newsroom, svc.http, svc.fetch_policy, svc.reader, target, body,
                            full_text=svc.full_text)
        except NotAFeed as error:
            log.info("websub: source %s was pushed no feed (%s); polling it now",
                     target.source_id, error)
            await db(svc.engine, sources.poll_now, source_id=target.source_id)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """A refused request is routine (the URL is public): no traceback for those."""
        if not isinstance(value, tornado.web.HTTPError):
            log.error("websub: a callback failed", exc_info=(typ, value, tb))


def routes(svc: Services, push: PushSettings) -> list[tuple[str, type, dict[str, Any]]]:
    """The callbacks' route for the webhook server: the path of WEBSUB_CALLBACK_URL."""
    path = (urlsplit(push.callback_url).path or "/").rstrip("/")
    return [(rf"{path}/{TOKEN}", HubCallback, {"svc": svc, "push": push})]
