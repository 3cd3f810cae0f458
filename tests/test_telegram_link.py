"""The pieces of telegram_link that the end-to-end start-up tests cannot pin down exactly."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from functools import partial

import pytest
from telegram.error import BadRequest, NetworkError, RetryAfter

import telegram_link
from telegram_link import Outage, RedactingFormatter, keep_trying

TOKEN = "123456:AAH-very-secret_token"


@pytest.fixture
def stream() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through the redacting formatter into a string."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(RedactingFormatter(TOKEN, "%(levelname)s %(message)s"))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)


def test_the_token_is_scrubbed_from_messages_args_and_tracebacks(
    stream: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = stream
    logger.warning("GET https://api.telegram.org/bot%s/getMe", TOKEN)
    logger.warning("file https://api.telegram.org/file/bot123456%%3AAAH-very-secret_token/x")
    try:
        raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.")
    except RuntimeError:
        logger.exception("start-up failed")
    text = out.getvalue()
    assert "very-secret" not in text, text
    assert "Traceback" in text and "The token `<token>` was rejected" in text
    assert text.count("<token>") == 3


def test_the_cached_traceback_on_the_record_is_scrubbed_too() -> None:
    formatter = RedactingFormatter(TOKEN)
    try:
        raise RuntimeError(TOKEN)
    except RuntimeError as error:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None,
                                   (type(error), error, error.__traceback__))
    formatter.format(record)
    assert record.exc_text and "very-secret" not in record.exc_text


@pytest.mark.asyncio
async def test_keep_trying_backs_off_and_logs_one_line_per_failure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(telegram_link, "RETRY_FIRST", 0.01)
    failures = [NetworkError("Bad Gateway"), RetryAfter(0), NetworkError("Internal Server Error")]
    calls = 0

    async def action() -> None:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)

    with caplog.at_level(logging.INFO, logger="tidings"):
        assert await keep_trying(action, "menu (en)", asyncio.Event())
    assert calls == 4
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "menu (en) failed: Bad Gateway; next try in 0 s"
    assert lines[1].startswith("menu (en) failed: Flood control exceeded.")
    assert lines[2] == "menu (en) failed: Internal Server Error; next try in 0 s"
    assert len(lines) == 3
    assert all(r.exc_info is None for r in caplog.records), "no tracebacks"


@pytest.mark.asyncio
async def test_keep_trying_gives_up_on_a_refusal_and_when_stopping(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def refused() -> None:
        raise BadRequest("BOT_COMMAND_DESCRIPTION_INVALID")

    async def down() -> None:
        raise NetworkError("Bad Gateway")

    with caplog.at_level(logging.INFO, logger="tidings"):
        assert not await keep_trying(refused, "menu (fr)", asyncio.Event())
        stopping = asyncio.Event()
        trying = asyncio.create_task(keep_trying(down, "menu (de)", stopping))
        await asyncio.sleep(0.1)  # the first try has failed; it now waits a second
        stopping.set()
        assert not await asyncio.wait_for(trying, 0.5), "stopping ends the wait at once"
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]
    assert "not trying again" in caplog.records[0].getMessage()


def test_an_outage_is_two_lines_however_many_tries_fail(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    outage = Outage(clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="tidings"):
        outage.answered()
        for _ in range(5):
            outage.failed("HTTP 502")
            now[0] += 7
        assert outage.down
        outage.answered()
        outage.answered()
    assert [r.getMessage() for r in caplog.records] == [
        "Telegram unreachable while fetching updates (HTTP 502); retrying quietly until it answers",
        "Telegram reachable again after 35 s (5 failed tries)",
    ]
    assert not outage.down


@pytest.mark.asyncio
async def test_keep_trying_names_the_bot_api_method(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(telegram_link, "RETRY_FIRST", 0.01)
    failures = [NetworkError("Bad Gateway")]

    async def set_my_commands(commands: list[str]) -> None:
        if failures:
            raise failures.pop(0)

    with caplog.at_level(logging.INFO, logger="tidings"):
        assert await keep_trying(partial(set_my_commands, ["start"]), "menu (en)",
                                 asyncio.Event())
    assert [r.getMessage() for r in caplog.records] == [
        "menu (en) (setMyCommands) failed: Bad Gateway; next try in 0 s"
    ]
