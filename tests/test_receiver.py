"""receiver.py below the bot: the webhook's settings check, 409s in one line, and the receiver
role's lock on PostgreSQL (taken by one, handed over, given up when its connection dies)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from telegram.error import Conflict, NetworkError
from telegram.ext import ApplicationBuilder
from telegram.ext._utils import networkloop
from telegram.request import BaseRequest, RequestData

from receiver import ConflictNotice, Polling, PollingRole, WebhookConfig
from storage.db import make_engine, normalize_url
from storage.locks import Keys


class FakeUpdater:
    """What PollingRole drives: start_polling, stop and running."""

    def __init__(self) -> None:
        self.running = False
        self.starts = 0

    async def start_polling(self, **_: Any) -> None:
        self.running, self.starts = True, self.starts + 1

    async def stop(self) -> None:
        self.running = False


class FakeApplication:
    def __init__(self) -> None:
        self.updater = FakeUpdater()


async def eventually(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("secret, why", [
    ("", "WEBHOOK_SECRET is not"), ("with space", "only letters"), ("x" * 257, "only letters"),
])  # fmt: skip
def test_a_webhook_needs_a_secret_telegram_accepts(secret: str, why: str) -> None:
    problem = WebhookConfig("https://bot.example.org/hook", secret).problem()
    assert problem is not None and why in problem and "\n" not in problem


def test_a_webhook_serves_its_urls_path_unless_told_otherwise() -> None:
    config = WebhookConfig("https://bot.example.org/tg/hook", "ok_SECRET-1")
    assert config.problem() is None and config.url_path == "/tg/hook"
    assert WebhookConfig("https://bot.example.org", "s").url_path == "/"
    assert WebhookConfig("https://bot.example.org/a", "s", path="/b").url_path == "/b"
    assert WebhookConfig("bot.example.org/hook", "s").problem() is not None


def test_conflicts_are_one_line_per_streak_window(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    notice = ConflictNotice(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="tidings"):
        for _ in range(50):
            notice.seen(Conflict("Conflict: terminated by other getUpdates request"))
            now[0] += 1.0
    assert len(caplog.records) == 1 and "another process" in caplog.records[0].getMessage()
    now[0] += 600
    with caplog.at_level(logging.WARNING, logger="tidings"):
        notice.seen(Conflict("again"))
    assert len(caplog.records) == 2 and "51 so far" in caplog.records[1].getMessage()


def test_each_bot_has_its_own_role() -> None:
    assert Keys().receiving(123) == Keys().receiving(123) != Keys().receiving(456)


@pytest.mark.asyncio
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_one_role_holder_hand_over_and_a_lost_connection_gives_the_role_up(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tidings")
    engine = make_engine(database_url)
    stopping = asyncio.Event()
    first, second = (PollingRole(engine, Keys().receiving(1), check_seconds=0.1) for _ in range(2))
    app1, app2 = FakeApplication(), FakeApplication()
    try:
        await first.start(app1, stopping)  # type: ignore[arg-type]
        await eventually(lambda: app1.updater.running)
        await second.start(app2, stopping)  # type: ignore[arg-type]
        await eventually(lambda: "held by another replica" in caplog.text)
        await asyncio.sleep(0.5)  # five of its tries
        assert not app2.updater.running, "one poller only"

        # The holder's session dies under it (a database restart, a cut connection): it stops
        # polling, and whoever takes the lock first polls; never both.
        admin = create_engine(normalize_url(database_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            ended = connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND granted AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())")).scalars().all()
        admin.dispose()
        assert ended == [True]
        await eventually(lambda: "receiver role lost" in caplog.text)
        await eventually(lambda: app1.updater.running != app2.updater.running)
        assert app1.updater.starts + app2.updater.starts == 2  # the first, then one more

        # A holder that stops frees the role for the other at once.
        holder, holder_app, other_app = (
            (first, app1, app2) if app1.updater.running else (second, app2, app1))
        await holder.stop(holder_app)  # type: ignore[arg-type]
        assert not holder_app.updater.running
        await eventually(lambda: other_app.updater.running)
    finally:
        stopping.set()
        await first.stop(app1)  # type: ignore[arg-type]
        await second.stop(app2)  # type: ignore[arg-type]
        engine.dispose()


class TelegramGone(BaseRequest):
    """Telegram answers the start-up calls, then every getUpdates fails: an outage."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    @property
    def read_timeout(self) -> float:
        return 1.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         *_: Any, **__: Any) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        self.calls.append(name)
        if name == "getUpdates":
            raise NetworkError("httpx.ConnectError: All connection attempts failed")
        result: Any = True
        if name == "getMe":
            result = {"id": 1, "is_bot": True, "first_name": "T", "username": "t_bot"}
        return 200, json.dumps({"ok": True, "result": result}).encode()


class EndlessBackoff:
    """networkloop's asyncio, but its retry sleep never ends: an outage past any stop grace
    (python-telegram-bot sleeps up to 30 s there and looks at the stop request only after)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def sleep(_: float) -> None:
        await asyncio.Event().wait()


@pytest.mark.asyncio
async def test_stopping_during_an_outage_does_not_wait_out_the_pollers_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(networkloop, "asyncio", EndlessBackoff())
    calls: list[str] = []
    application = (ApplicationBuilder().token("1:x").request(TelegramGone(calls))
                   .get_updates_request(TelegramGone(calls)).build())
    await application.initialize()
    await application.start()  # the poller hands its errors to the running application
    polling = Polling()
    try:
        await polling.start(application, asyncio.Event())
        await eventually(lambda: "getUpdates" in calls)  # failed; the poller now backs off
        stop = asyncio.ensure_future(polling.stop(application, patience=0.05))
        done, _ = await asyncio.wait({stop}, timeout=10)  # not wait_for: its cancel would help
        if not done:
            stop.cancel()
        assert done, "stop waited for the poller's backoff to end: `docker stop` kills first"
        assert application.updater is not None and not application.updater.running
        assert calls.count("getUpdates") == 2, "the confirming call is still tried, once"
    finally:
        await application.stop()
        await application.shutdown()
