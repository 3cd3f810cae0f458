"""The bot's line to Telegram on a bad day: start-up retries, quiet outages, token-free logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

from telegram import LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, Defaults
from telegram.request import BaseRequest, RequestData

from telegram_http import AiohttpRequest

log = logging.getLogger("tidings")

# How every message goes out, said once for the application instead of at each send: the
# catalogue's text and the briefs are HTML with external text escaped; a link preview would
# put one publisher's card over a brief that names several; a reply is not a quote (a handler
# that means to quote says so).
DEFAULTS = Defaults(parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True), do_quote=False)


class TokenRejected(Exception):
    """Telegram refused the token; not a TelegramError, so PTB's retry loops let it through."""


class NotTelegram(Exception):
    """The Bot API server's getMe lacks a field Telegram always sends (`is_bot`): PTB cannot
    build the bot from it, and no retry will change that."""

    def __init__(self, fields: str) -> None:
        super().__init__(f"the Bot API server's getMe answer lacks {fields}, which Telegram "
                         "always sends: is TELEGRAM_API_URL a Telegram Bot API server?")


_MISSING = re.compile(r"__init__\(\) missing \d+ required (?:positional|keyword-only) "
                      r"arguments?: (.+)$")


def reason(error: BaseException) -> str:
    """A failure in a few words for a one-line log (PTB's messages carry no URL or token)."""
    return str(error) or type(error).__name__


RETRY_FIRST, RETRY_MOST = 1.0, 600.0  # seconds between tries of an optional call: 1, 2, 4 … 600


def method_name(action: Callable[[], Awaitable[object]]) -> str:
    """The Bot API method a `partial(bot.set_my_commands, …)` calls: `setMyCommands`."""
    if not isinstance(action, partial):
        return ""
    first, *rest = getattr(action.func, "__name__", "").split("_")
    return first + "".join(word.title() for word in rest)


def retry_seconds(error: RetryAfter) -> float:
    """How long Telegram asked to wait: PTB gives a timedelta or, in older releases, seconds."""
    after = error.retry_after
    return after.total_seconds() if isinstance(after, timedelta) else float(after)


async def keep_trying(action: Callable[[], Awaitable[object]], what: str,
                      stopping: asyncio.Event) -> bool:
    """Run an optional call until it succeeds, backing off between tries, one log line a failure
    that names the call (`command menu (fr) (setMyCommands)`).

    Gives up only when Telegram says the call itself is wrong (400, 403) or the bot is stopping.
    """
    method = method_name(action)
    what = f"{what} ({method})" if method else what
    delay = RETRY_FIRST
    while not stopping.is_set():
        try:
            await action()
            return True
        except RetryAfter as error:
            wait, why = retry_seconds(error), reason(error)
        except (BadRequest, Forbidden) as error:
            log.error("%s refused by Telegram: %s; not trying again", what, reason(error))
            return False
        except Exception as error:
            wait, delay, why = delay, min(delay * 2, RETRY_MOST), reason(error)
        log.warning("%s failed: %s; next try in %.0f s", what, why, wait)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), wait)
    return False


class PatientApplication(Application[Any, Any, Any, Any, Any, Any]):
    """Logs each failed start-up attempt in one line; receiver.initialize retries it.

    A rejected token is raised as TokenRejected, without the token PTB puts in its message.
    """

    attempts = 0

    async def initialize(self) -> None:
        self.attempts += 1
        try:
            await super().initialize()
        except InvalidToken:
            await self.bot.shutdown()  # its HTTP clients; nothing else was started
            raise TokenRejected from None
        except TypeError as error:  # PTB's User(**getMe) without a required field
            missing = _MISSING.search(str(error))
            if missing is None:
                raise
            await self.bot.shutdown()
            raise NotTelegram(missing[1]) from None
        except TelegramError as error:
            log.warning("Telegram is not answering at start-up (attempt %d): %s; trying again",
                        self.attempts, reason(error))
            raise
        if self.attempts > 1:
            log.info("Telegram answered after %d attempts", self.attempts)


class Outage:
    """One line when getUpdates starts failing and one when it answers again, not one per try."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.since: float | None = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, why: str) -> None:
        self.failures += 1
        if self.since is None:
            self.since = self.clock()
            log.warning("Telegram unreachable while fetching updates (%s); "
                        "retrying quietly until it answers", why)

    def answered(self) -> None:
        if self.since is not None:
            log.warning("Telegram reachable again after %.0f s (%d failed tries)",
                        self.clock() - self.since, self.failures)
            self.since, self.failures = None, 0


class WatchedRequest(AiohttpRequest):
    """getUpdates' own connection, as ApplicationBuilder builds it, reporting to an Outage."""

    def __init__(self, outage: Outage) -> None:
        super().__init__(pool=1)
        self.outage = outage

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        try:
            code, payload = await super().do_request(
                url, method, request_data, read_timeout, write_timeout, connect_timeout,
                pool_timeout,
            )
        except Exception as error:  # not CancelledError: stopping is not an outage
            self.outage.failed(reason(error))
            raise
        if code >= 500 or code == 429:
            self.outage.failed(f"HTTP {code}")
        elif code < 300:
            self.outage.answered()
        return code, payload


def polling_outage(update: object, error: BaseException | None, job: object) -> bool:
    """Whether an error reached the error handler from fetching updates (no update, no job)
    because the network failed: WatchedRequest has logged it already."""
    return update is None and job is None and isinstance(error, NetworkError)


class RedactingFormatter(logging.Formatter):
    """Scrubs the token from the whole formatted record, tracebacks included (exc_text)."""

    def __init__(self, token: str, fmt: str | None = None, others: tuple[str, ...] = ()) -> None:
        super().__init__(fmt)
        secret = token.partition(":")[2] if ":" in token else token
        # The secret alone: URL-encoded forms. Others: WEBHOOK_SECRET, in PTB's debug lines.
        self.secrets = [s for s in (token, secret, *others) if s]

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<token>")
        return text

    def format(self, record: logging.LogRecord) -> str:
        formatted = self.scrub(super().format(record))
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)  # cached on the record for others
        return formatted
