"""How updates arrive (issue 14 item 1, SPEC §9): a webhook guarded by its secret, or long
polling by exactly one replica on PostgreSQL, taken over when it dies; 409s in one line."""

from __future__ import annotations

import http.client
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import BotProcess
from tests.fakes.telegram import POLL_CONFLICT, BotApiEmulator
from tests.harness import TOKEN, env_for, peak_memory, say

SECRET = "s3cret_Token-for-tests"
READER_ID = 4242


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def webhook_env(telegram: BotApiEmulator, tmp_path: Path, url: str, port: int) -> dict[str, str]:
    return env_for(telegram, f"sqlite:///{tmp_path / 'w.db'}") | {
        "LOG_LEVEL": "INFO", "WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_LISTEN": "127.0.0.1", "WEBHOOK_PORT": str(port),
        # Parser processes still starting when SIGTERM comes are waited for: on a loaded
        # machine that alone can take seconds. They are not what these tests are about.
        "PARSE_WORKERS": "0",
    }  # fmt: skip


def test_webhook_mode_sets_its_hook_serves_it_and_refuses_posts_without_the_secret(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    with BotApiEmulator(token=TOKEN) as telegram:
        env = webhook_env(telegram, tmp_path, url, port) | {"LOG_LEVEL": "DEBUG"}
        bot = bot_process(tmp_path, env).start()
        bot.wait_for_log("receiving updates by webhook")
        hook = telegram.wait_for_calls("setWebhook")[-1]
        assert hook["url"] == url and hook["secret_token"] == SECRET
        assert {"message", "callback_query", "my_chat_member"} <= set(hook["allowed_updates"])
        assert telegram.webhook_url == url

        reader = telegram.user(READER_ID, "Mo")
        chat = telegram.private_chat(reader)
        telegram.send_text(chat, reader, "/help")
        assert telegram.deliver_webhook(secret="not-the-secret") == 403
        assert telegram.deliver_webhook(secret="") == 403, "no secret header at all"
        assert telegram.deliver_webhook() == 200
        telegram.send_text(chat, reader, "/start")
        assert telegram.deliver_webhook() == 200
        # Updates are handled in order: had a refused post been handled, the second reply
        # would be a second /help, not the welcome.
        replies = [m.text for m in telegram.wait_for_messages(chat["id"], 2)]
        assert "Commands" in replies[0] and "Welcome to Tidings" in replies[1], replies

        assert "getUpdates" not in {name for name, _ in telegram.calls}
        assert bot.terminate(timeout=10) == 0, bot.log  # a clean exit, within the 10 s
        # Other replicas behind the proxy still serve the hook: stopping one keeps it.
        assert "deleteWebhook" not in {name for name, _ in telegram.calls}
        assert telegram.webhook_url == url
        # At DEBUG, PTB logs each refused post with its traceback: errors are what matter.
        log = bot.log
        assert not [line for line in log.splitlines() if " ERROR " in line or "CRITICAL" in line]
        assert "setWebhook" in log and SECRET not in log, "debug lines name no secret"
        assert telegram.rejected == []


def post_raw(url: str, size: int, secret: str | None) -> int | None:
    """POST `size` bytes of JSON-typed junk; the HTTP status, or None when the bot hung up
    before answering (it may refuse on the headers while the body is still being sent)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    headers = {"Content-Type": "application/json", "Content-Length": str(size)}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    try:
        connection.putrequest("POST", parts.path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        block = b" " * (1024 * 1024)
        for sent in range(0, size, len(block)):
            connection.send(block[: size - sent])
        return connection.getresponse().status
    except OSError:  # reset or broken pipe: refused without reading the rest
        return None
    finally:
        connection.close()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the bot's peak memory from /proc")
def test_webhook_bodies_are_refused_on_their_headers_and_capped_at_one_megabyte(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    with BotApiEmulator(token=TOKEN) as telegram:
        bot = bot_process(tmp_path, webhook_env(telegram, tmp_path, url, port)).start()
        bot.wait_for_log("receiving updates by webhook")
        assert bot.process is not None
        reader = telegram.user(READER_ID, "Mo")
        chat = telegram.private_chat(reader)
        telegram.send_text(chat, reader, "/help")
        assert telegram.deliver_webhook() == 200
        telegram.wait_for_messages(chat["id"], 1)
        before = peak_memory(bot.process.pid)

        for secret in (None, "wrong", None, "wrong", None):
            assert post_raw(url, 20 * 1024 * 1024, secret) in (403, None)
        grown = peak_memory(bot.process.pid) - before
        assert grown < 8 * 1024 * 1024, f"refused bodies were read: +{grown // 1024} KiB"
        assert post_raw(url, 2 * 1024 * 1024, SECRET) in (400, 413, None), \
            "Telegram's updates are small: even with the secret, 2 MB is refused"

        telegram.send_text(chat, reader, "/start")
        assert telegram.deliver_webhook() == 200, "a real update with the secret still works"
        assert "Welcome to Tidings" in telegram.wait_for_messages(chat["id"], 2)[1].text
        assert telegram.rejected == [] and "Traceback" not in bot.log


@pytest.mark.parametrize("secret", [None, "has spaces"], ids=["missing", "malformed"])
def test_a_webhook_without_a_usable_secret_is_one_line_and_exit_code_2(
    secret: str | None, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram:
        port = free_port()
        env = webhook_env(telegram, tmp_path, f"https://bot.example.org:{port}/hook", port)
        del env["WEBHOOK_SECRET"]
        if secret is not None:
            env["WEBHOOK_SECRET"] = secret
        bot = bot_process(tmp_path, env).start()
        assert bot.process is not None
        assert bot.process.wait(timeout=30) == 2, bot.log
        lines = bot.log.strip().splitlines()
        errors = [line for line in lines if " ERROR " in line]
        assert len(errors) == 1 and "WEBHOOK_SECRET" in errors[0], bot.log
        assert "Traceback" not in bot.log and telegram.calls == []


def first_to_log(bots: dict[str, BotProcess], needle: str, timeout: float) -> str:
    """The name of the first bot whose log shows `needle`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, bot in bots.items():
            if needle in bot.log:
                return name
            assert bot.process is not None and bot.process.poll() is None, bot.log
        time.sleep(0.1)
    raise AssertionError(f"no bot logged {needle!r} within {timeout}s")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_replica_fetches_updates_and_another_takes_over_within_30_s_when_it_dies(
    database_url: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram:
        bots: dict[str, BotProcess] = {}
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            env = env_for(telegram, database_url) | {
                "TELEGRAM_API_URL": f"{telegram.base_url}/{name}", "LOG_LEVEL": "INFO",
            }  # fmt: skip
            bots[name] = bot_process(tmp_path / name, env).start()
            bots[name].wait_for_log("Tidings starting")  # one migrates the new database first
        holder = first_to_log(bots, "receiver role taken", timeout=30)
        standby = "b" if holder == "a" else "a"
        bots[standby].wait_for_log("receiver role held by another replica", timeout=30)

        reader = telegram.user(READER_ID, "Mo")
        chat = telegram.private_chat(reader)
        assert "Welcome to Tidings" in say(telegram, chat, reader, "/start")
        pollers = {caller for caller, method in telegram.callers if method == "getUpdates"}
        assert pollers == {holder}, telegram.callers

        seen = len(telegram.callers)
        bots[holder].kill()
        bots[standby].wait_for_log("receiver role taken", timeout=30)  # the 30 s: a deadline
        assert "Commands" in say(telegram, chat, reader, "/help")
        pollers = {caller for caller, method in telegram.callers[seen:] if method == "getUpdates"}
        assert pollers == {standby}
        log = bots[standby].log
        assert "Traceback" not in log and "update failed" not in log, log
        assert telegram.rejected == []


def test_another_poller_on_the_token_is_one_log_line_not_a_traceback_per_try(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram:
        env = env_for(telegram, f"sqlite:///{tmp_path / 'c.db'}") | {"LOG_LEVEL": "INFO"}
        bot = bot_process(tmp_path, env).start()
        reader = telegram.user(READER_ID, "Mo")
        chat = telegram.private_chat(reader)
        assert "Welcome to Tidings" in say(telegram, chat, reader, "/start")
        polls = len(telegram.wait_for_calls("getUpdates"))
        telegram.fail_always("getUpdates", 409, POLL_CONFLICT)
        telegram.send_text(chat, reader, "/help")  # ends the pending poll
        telegram.wait_for_calls("getUpdates", polls + 4, timeout=30)  # 3 conflicts at least
        telegram.recover("getUpdates")
        assert "Commands" in telegram.wait_for_messages(chat["id"], 2, timeout=30)[1].text

        log = bot.log
        assert log.count("another process fetches updates with this bot token") == 1, log
        assert "Traceback" not in log and "update failed" not in log, log
        assert telegram.rejected == []
