"""How updates reach the bot: long polling, by one replica at a time on PostgreSQL, or a webhook.

Telegram answers getUpdates for one caller per token (409 to the others), so with several
replicas on long polling exactly one holds the receiver role, a PostgreSQL session-level advisory
lock; a webhook has no such limit: any number of replicas answer it behind a proxy (SPEC §9).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from http import HTTPStatus
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import tornado.web
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from telegram import Update
from telegram.error import Conflict, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application
from tornado.httpserver import HTTPServer

from storage.db import CONNECT_TIMEOUT_SECONDS, in_thread
from storage.locks import Keys
from telegram_link import keep_trying, reason, retry_seconds

log = logging.getLogger("tidings")
App = Application[Any, Any, Any, Any, Any, Any]
T = TypeVar("T")
Route = tuple[str, type, dict[str, Any]]  # a tornado rule: path pattern, handler, its arguments

POLL_TIMEOUT = timedelta(seconds=10)  # getUpdates' long-poll wait, as run_polling's default
ROLE_CHECK_SECONDS = 5.0  # a standby tries the lock this often: it takes over well within 30 s
CONFLICT_REPEAT_SECONDS = 600.0  # a 409 streak is logged once, then once per this while it lasts
# python-telegram-bot sleeps out its retry backoff (up to 30 s) before it sees a stop: during an
# outage the poller is woken after this, and its confirming call given as long again.
STOP_PATIENCE_SECONDS = 2.0
BODY_TIMEOUT_SECONDS = 10.0  # a post whose body trickles in is dropped, not waited for
IDLE_SECONDS = 75.0  # a kept-alive connection nobody uses is closed
SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")  # the secret_token Telegram accepts
# The role's connection notices a dead peer in ~25 s on both sides, not after TCP's two hours:
# a replica whose host vanishes frees the role for the others within the 30 s promised.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 3, "tcp_user_timeout": 20000,
              "options": "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 "
                         "-c tcp_keepalives_count=3"}


class Receiver(Protocol):
    """Brings updates into the application's queue from `start` until `stop`."""

    async def start(self, application: App, stopping: asyncio.Event) -> None: ...

    async def stop(self, application: App) -> None: ...


class WebhookRefused(Exception):
    """Telegram refused setWebhook (a bad URL or port): retrying would not help."""


@dataclass(frozen=True)
class WebhookConfig:
    """WEBHOOK_URL and friends; `path` None serves the URL's own path (what a proxy forwards)."""

    url: str
    secret: str
    listen: str = "0.0.0.0"  # every interface: the proxy reaches the container over the network
    port: int = 8443
    path: str | None = None

    def problem(self) -> str | None:
        """Why the bot must not start with this webhook, in one line; None when it may.

        The secret is required, not generated: replicas would each set their own and refuse
        the updates Telegram signs with another's, and a restart would change it.
        """
        if not self.secret:
            return ("WEBHOOK_URL is set but WEBHOOK_SECRET is not: set it to the same random "
                    "string on every replica (1-256 letters, digits, _ or -, e.g. the output of "
                    "`openssl rand -hex 32`), so that only Telegram can post updates")
        if not SECRET_SHAPE.fullmatch(self.secret):
            return "WEBHOOK_SECRET may hold only letters, digits, _ and -, 1 to 256 of them"
        if urlsplit(self.url).scheme not in ("https", "http") or not urlsplit(self.url).netloc:
            return f"WEBHOOK_URL must be a full https:// URL, not {self.url!r}"
        return None

    @property
    def url_path(self) -> str:
        return self.path if self.path is not None else (urlsplit(self.url).path or "/")


class ConflictNotice:
    """A 409 from getUpdates (another process polls with this token) in one line, not a
    traceback per try: PTB retries it on its own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last: float | None = None
        self.count = 0

    def seen(self, error: TelegramError) -> None:
        now, self.count = self.clock(), self.count + 1
        if self.last is None or now - self.last >= CONFLICT_REPEAT_SECONDS:
            self.last = now
            log.warning("another process fetches updates with this bot token (%s; %d so far): "
                        "run one bot per token, or several on one PostgreSQL database",
                        reason(error), self.count)


class Polling:
    """getUpdates from this process: the only one (SQLite), or the receiver-role holder."""

    def __init__(self) -> None:
        self.conflicts = ConflictNotice()

    async def start(self, application: App, stopping: asyncio.Event) -> None:
        assert application.updater is not None, "the application is built with an Updater"

        def on_error(error: TelegramError) -> None:
            if isinstance(error, Conflict):
                self.conflicts.seen(error)
            else:  # as run_polling does: the error handler sees it (and logs outages once)
                application.create_task(application.process_error(update=None, error=error))

        await application.updater.start_polling(
            timeout=POLL_TIMEOUT, bootstrap_retries=-1, allowed_updates=Update.ALL_TYPES,
            error_callback=on_error)

    async def stop(self, application: App, patience: float = STOP_PATIENCE_SECONDS) -> None:
        """Stop fetching, within `docker stop`'s grace even while Telegram is unreachable.

        Updater.stop confirms what was fetched (nothing comes twice), but first waits for the
        poller, which in an outage sleeps out a backoff of up to 30 s and only then sees the
        stop: the container was killed first. A first cancel wakes that sleep (Updater.stop
        carries on to the confirming call), a second drops a confirmation that cannot arrive.
        """
        if application.updater is None or not application.updater.running:
            return
        stopping = asyncio.ensure_future(application.updater.stop())
        for _ in range(2):
            done, _pending = await asyncio.wait({stopping}, timeout=patience)
            if done:
                break
            stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping


class PollingRole:
    """Long polling by whichever replica holds a PostgreSQL advisory lock; the others stand by.

    The lock lives on a connection of its own, kept open: when its process dies the server
    ends the session and frees the lock, and a standby, trying every few seconds, takes over.
    """

    def __init__(self, engine: Engine, key: int, check_seconds: float = ROLE_CHECK_SECONDS) -> None:
        self.engine = create_engine(
            engine.url, poolclass=NullPool,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS, **KEEPALIVES})
        self.key = key
        self.check_seconds = check_seconds
        self.polling = Polling()
        self.connection: Connection | None = None
        self.guard = threading.Lock()  # one database call at a time, closing included
        self.task: asyncio.Task[None] | None = None
        self.holding = False

    async def start(self, application: App, stopping: asyncio.Event) -> None:
        self.task = asyncio.create_task(self.hold(application, stopping), name="receiver role")

    async def hold(self, application: App, stopping: asyncio.Event) -> None:
        """Take the role when it is free, poll while it is held, give it up if the lock's
        connection fails (another replica may hold it by then)."""
        told, failing = False, False
        while not stopping.is_set():
            try:
                if not self.holding:
                    if await self.call(self._try_lock):
                        self.holding = True
                        log.info("receiver role taken: this replica fetches the updates")
                        await self.polling.start(application, stopping)
                    elif not told:
                        log.info("receiver role held by another replica; standing by "
                                 "(trying every %g s)", self.check_seconds)
                        told = True
                else:
                    await asyncio.wait_for(self.call(self._ping),
                                           self.check_seconds + CONNECT_TIMEOUT_SECONDS)
                failing = False
            except Exception as error:  # the database, mostly; anything else must not end it
                why = (reason(error).splitlines() or [""])[0]
                if not isinstance(error, SQLAlchemyError | TimeoutError):
                    log.error("receiver role: unexpected failure", exc_info=error)
                if self.holding:
                    log.warning("receiver role lost: its database connection failed (%s); "
                                "fetching updates stops", why)
                    await self.polling.stop(application)
                    self.holding, told = False, False
                elif not failing:
                    log.warning("receiver role: database unreachable (%s); trying again", why)
                failing = True
                await self.call(self._close)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.check_seconds)

    async def stop(self, application: App) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.polling.stop(application)  # before the lock goes: never two pollers
        await self.call(self._close)
        self.holding = False

    async def call(self, action: Callable[[], T]) -> T:
        """A blocking database call in a thread, never two at once on the role's connection."""
        def guarded() -> T:
            with self.guard:
                return action()
        return await in_thread(guarded)

    def _try_lock(self) -> bool:
        if self.connection is None:
            self.connection = self.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT")  # never idle in a transaction for days
        taken = self.connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                        {"key": self.key}).scalar()
        return bool(taken)

    def _ping(self) -> None:
        assert self.connection is not None
        self.connection.execute(text("SELECT 1"))

    def _close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self.connection.close()  # the session ends: the server frees the lock
            self.connection = None


MAX_UPDATE_BYTES = 1024 * 1024  # Telegram's updates are a few kB (Caddyfile and README agree)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@tornado.web.stream_request_body
class UpdatePost(tornado.web.RequestHandler):
    """One update per POST. python-telegram-bot's own handler read up to 100 MB of body before
    it looked at the secret; this one refuses on the headers, before keeping a byte of body,
    and the server reads at most MAX_UPDATE_BYTES of any body."""

    SUPPORTED_METHODS = ("POST",)

    def initialize(self, secret: str, bot_app: App) -> None:
        self.secret = secret.encode()
        self.bot_app = bot_app  # self.application is tornado's
        self.chunks: list[bytes] = []

    def prepare(self) -> None:
        # Headers arrive as latin-1 text: every header value encodes back to its bytes.
        given = self.request.headers.get(SECRET_HEADER, "").encode("latin-1")
        if not hmac.compare_digest(given, self.secret):
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        if self.request.headers.get("Content-Type", "").split(";")[0].strip() \
                != "application/json":
            raise tornado.web.HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE)

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)  # at most MAX_UPDATE_BYTES: the server drops larger bodies

    async def post(self) -> None:
        try:
            data = json.loads(b"".join(self.chunks))
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            update = Update.de_json(data, self.bot_app.bot)
        except (ValueError, TypeError, KeyError) as error:  # not JSON, or not an update
            log.warning("webhook: a post with the secret is not an update (%s)", error)
            raise tornado.web.HTTPError(HTTPStatus.BAD_REQUEST) from None
        await self.bot_app.update_queue.put(update)

    def log_exception(self, *args: Any) -> None:
        """A refused post is routine (anyone can post to a public URL): no traceback."""


class Webhook:
    """Telegram posts each update to WEBHOOK_URL; our own server checks the secret on each."""

    def __init__(self, config: WebhookConfig, routes: Sequence[Route] = ()) -> None:
        self.config = config
        self.routes = list(routes)  # served beside the updates' path: WebSub's callbacks
        self.server: HTTPServer | None = None

    async def start(self, application: App, stopping: asyncio.Event) -> None:
        config = self.config
        accepted = await keep_trying(
            partial(application.bot.set_webhook, url=config.url, secret_token=config.secret,
                    allowed_updates=Update.ALL_TYPES), "setting the webhook", stopping)
        if stopping.is_set():
            return
        if not accepted:
            raise WebhookRefused(f"Telegram refused the webhook {config.url}")
        routes = [(rf"{re.escape(config.url_path.rstrip('/'))}/?", UpdatePost,
                   {"secret": config.secret, "bot_app": application}), *self.routes]
        self.server = HTTPServer(
            tornado.web.Application(routes, log_function=lambda _handler: None),
            max_body_size=MAX_UPDATE_BYTES, max_buffer_size=MAX_UPDATE_BYTES,
            body_timeout=BODY_TIMEOUT_SECONDS, idle_connection_timeout=IDLE_SECONDS)
        self.server.listen(config.port, address=config.listen)
        log.info("receiving updates by webhook at %s (serving %s:%d%s)", config.url,
                 config.listen, config.port, config.url_path)

    async def stop(self, application: App) -> None:
        # The webhook stays set: other replicas behind the proxy serve it, and during a
        # restart Telegram keeps the updates and retries. Long polling deletes it at start.
        if self.server is not None:
            self.server.stop()
            await self.server.close_all_connections()
            self.server = None


def choose(engine: Engine, webhook: WebhookConfig | None, bot_id: int,
           keys: Keys | None = None, routes: Sequence[Route] = ()) -> Receiver:
    """Webhook when configured (serving `routes` too); else the receiver role on PostgreSQL;
    else plain polling."""
    if webhook is not None:
        return Webhook(webhook, routes)
    if engine.dialect.name == "postgresql":
        return PollingRole(engine, (keys or Keys.of(engine)).receiving(bot_id))
    return Polling()


def answers_alone(receiver: Receiver, engine: Engine) -> Callable[[], bool]:
    """Whether this process answers every command the bot gets, so that its alerts may use
    whatever of Telegram's rate its replies leave (jobs.outbound): SQLite's one process, or
    the replica polling now; behind a webhook on PostgreSQL any replica may be answering."""
    if engine.dialect.name != "postgresql":
        return lambda: True
    if isinstance(receiver, PollingRole):
        return lambda: receiver.holding
    return lambda: False


async def initialize(application: App) -> None:
    """Application.initialize until Telegram answers, with run_polling's bootstrap backoff;
    a rejected token (TokenRejected, not a TelegramError) ends it."""
    wait = 0.0
    while True:
        try:
            await application.initialize()
            return
        except RetryAfter as error:
            wait = 0.5 + retry_seconds(error)
        except TimedOut:
            wait = 0.0
        except TelegramError:
            wait = 1.0 if wait == 0 else min(30.0, 1.5 * wait)
        await asyncio.sleep(wait)


async def until_stopped(work: Coroutine[Any, Any, None], stopping: asyncio.Event) -> bool:
    """Run `work` unless `stopping` comes first (then cancel it); whether it completed."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


def run(application: App, receiver: Receiver, stopping: asyncio.Event) -> None:
    """What run_polling does (initialize, post_init, start, run, stop, shutdown), with the
    receiver in the Updater's place, until `stopping` is set or SystemExit."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        if not loop.run_until_complete(until_stopped(initialize(application), stopping)):
            return
        if application.post_init:
            loop.run_until_complete(application.post_init(application))
        if loop.run_until_complete(until_stopped(receiver.start(application, stopping),
                                                 stopping)):
            loop.run_until_complete(application.start())
            loop.run_until_complete(stopping.wait())
    except (KeyboardInterrupt, SystemExit):
        log.debug("stop signal received; shutting down")
    finally:
        stopping.set()
        try:
            loop.run_until_complete(receiver.stop(application))
            if application.running:
                loop.run_until_complete(application.stop())
                if application.post_stop:
                    loop.run_until_complete(application.post_stop(application))
            loop.run_until_complete(application.shutdown())
            # Stopped before Telegram answered, Application.shutdown does nothing, but the
            # attempts opened the bot's HTTP sessions (a no-op when it closed them already).
            loop.run_until_complete(application.bot.shutdown())
            if application.post_shutdown:
                loop.run_until_complete(application.post_shutdown(application))
        finally:
            loop.close()
