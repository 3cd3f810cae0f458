"""Start-up and polling on Telegram's bad days (issue 12 items 1, 6 and 7): optional calls
failing, getUpdates down for a while, a rejected token, the API not reachable yet."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.telegram import BotApiEmulator
from tests.harness import ADMIN_ID, BASELINE, TOKEN, env_for, say, wait_for_summary

OPML = (b'<?xml version="1.0"?><opml version="2.0"><head/><body>'
        b'<outline type="rss" text="Second" xmlUrl="%s"/></body></opml>')


def started(
    telegram: BotApiEmulator, tmp_path: Path, bot_process: type[BotProcess]
) -> BotProcess:
    """The bot as run in production (INFO logs), once it has answered its admin's /start."""
    env = env_for(telegram, f"sqlite:///{tmp_path / 's.db'}") | {"LOG_LEVEL": "INFO"}
    bot = bot_process(tmp_path, env).start()
    bot.wait_for_log("Tidings starting", timeout=60)  # a loaded machine starts Python slowly
    admin = telegram.user(ADMIN_ID, "Ada")
    assert "/subscribe" in say(telegram, telegram.private_chat(admin), admin, "/start"), bot.log
    return bot


def add_sources(telegram: BotApiEmulator, feeds: FeedServer) -> None:
    """/addsource and /importopml, both of which show "typing…" first."""
    feeds.put("/feed.xml", rss("Test News", BASELINE))
    feeds.put("/second.xml", rss("Second Wire", []))
    admin = telegram.user(ADMIN_ID, "Ada")
    chat = telegram.private_chat(admin)
    assert "Added source #1" in say(telegram, chat, admin, f"/addsource {feeds.url('/feed.xml')}")
    document = telegram.send_document(chat, admin, OPML % feeds.url("/second.xml").encode(),
                                      "mine.opml")
    before = len(telegram.messages(chat["id"]))
    telegram.send_text(chat, admin, "/importopml", reply_to_message_id=document["message_id"])
    progress = telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before]
    summary = wait_for_summary(telegram, chat["id"], progress.message_id)
    assert "1 added" in summary
    sources = say(telegram, chat, admin, "/sources")
    assert "#1 Test News" in sources and "#2 Second" in sources


def test_failing_menus_and_typing_neither_stop_the_bot_nor_a_command(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        telegram.fail_always("setMyCommands", 500)
        telegram.fail_always("sendChatAction", 500)
        bot = started(telegram, tmp_path, bot_process)
        add_sources(telegram, feeds)
        assert len(telegram.wait_for_calls("sendChatAction", 2)) >= 2, "typing was tried"
        tried = len(telegram.wait_for_calls("setMyCommands", 2))
        assert telegram.commands() == [], "no menu while Telegram fails"

        telegram.recover()
        bot.wait_for_log("command menus set: 17 of 17", timeout=30)  # 1 + 8 × (1 + 1 admin)
        calls = len(telegram.wait_for_calls("setMyCommands"))
        assert calls >= tried + 17
        assert {c["command"] for c in telegram.commands()} >= {"start", "subscribe", "help"}
        assert telegram.commands(language_code="fr")[0]["command"] == "start"
        admin_menu = telegram.commands("de", {"type": "chat", "chat_id": ADMIN_ID})
        assert {"addsource", "importopml", "subscribe"} <= {c["command"] for c in admin_menu}
        failures = [line for line in bot.log.splitlines() if "command menu (" in line]
        assert len(failures) == calls - 17, "one line per failed call"
        assert all("(setMyCommands) failed: Internal Server Error; next try in" in f
                   for f in failures), "the line names the Bot API method"
        assert "Traceback" not in bot.log and telegram.rejected == []


def test_menus_do_not_wait_behind_a_slow_one(tmp_path: Path, bot_process: type[BotProcess]) -> None:
    """The 17 menus are set side by side: one slow answer holds back none of the others."""
    with BotApiEmulator(token=TOKEN) as telegram:
        telegram.slow_next("setMyCommands", 20.0)  # PTB gives up on it after 5 s, then retries
        bot_process(tmp_path, env_for(telegram, f"sqlite:///{tmp_path / 's.db'}")).start()
        telegram.wait_for_calls("setMyCommands", 1, timeout=30)
        assert len(telegram.wait_for_calls("setMyCommands", 17, timeout=3)) >= 17


def test_failing_typing_alone_does_not_stop_adding_sources(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """The chat action on its own (menus fine): the command must not die with it."""
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        telegram.fail_always("sendChatAction", 500)
        bot = started(telegram, tmp_path, bot_process)
        add_sources(telegram, feeds)
        assert "Traceback" not in bot.log and telegram.rejected == []


@pytest.mark.parametrize("hang_up", [False, True], ids=["502", "hang-up"])
def test_a_polling_outage_is_one_line_when_it_starts_and_one_when_it_ends(
    hang_up: bool, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram:
        bot = started(telegram, tmp_path, bot_process)
        reader = telegram.user(5005, "Mo", language_code="en")
        chat = telegram.private_chat(reader)
        polls = len(telegram.wait_for_calls("getUpdates"))
        telegram.fail_always("getUpdates", 502, hang_up=hang_up)
        telegram.send_text(chat, reader, "/help")  # ends the pending poll, if one is pending
        telegram.wait_for_calls("getUpdates", polls + 4, timeout=30)  # 3 failed tries at least
        telegram.recover("getUpdates")
        bot.wait_for_log("Telegram reachable again", timeout=30)
        assert "/subscribe" in telegram.wait_for_messages(chat["id"], 1)[0].text
        assert "/subscribe" in say(telegram, chat, reader, "/help"), "serving again"

        log = bot.log
        assert log.count("Telegram unreachable while fetching updates") == 1, log
        assert log.count("Telegram reachable again") == 1, log
        assert re.search(r"reachable again after \d+ s \([3-9]\d* failed tries\)", log), log
        assert "Traceback" not in log and "update failed" not in log, log
        assert telegram.rejected == []


@pytest.mark.parametrize("token", ["654321:REVOKED-SECRET", "REVOKED-SECRET-WITHOUT-ID"],
                         ids=["401", "404"])
def test_a_rejected_token_is_one_line_without_the_token_and_exit_code_2(
    token: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram:
        env = env_for(telegram, f"sqlite:///{tmp_path / 't.db'}") | {
            "TELEGRAM_BOT_TOKEN": token, "LOG_LEVEL": "INFO"
        }  # fmt: skip
        bot = bot_process(tmp_path, env).start()
        assert bot.process is not None
        assert bot.process.wait(timeout=30) == 2, bot.log
        log = bot.log
        assert "REVOKED-SECRET" not in log, log
        assert "Traceback" not in log, log
        errors = [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line]
        assert len(errors) == 1, log
        assert "TELEGRAM_BOT_TOKEN" in errors[0] and "@BotFather" in errors[0]
        assert [name for name, _ in telegram.calls] == ["getMe"]


def test_invalid_settings_are_one_line_naming_each_and_exit_code_2(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """An operator's typo gets what to change, not a traceback; the values stay out of it."""
    with BotApiEmulator(token=TOKEN) as telegram:
        env = env_for(telegram, f"sqlite:///{tmp_path / 't.db'}") | {
            "DELIVERY_RETENTION_DAYS": "5", "POLL_INTERVAL_SECONDS": "0"}
        bot = bot_process(tmp_path, env).start()
        assert bot.process is not None
        assert bot.process.wait(timeout=30) == 2, bot.log
        lines = bot.log.strip().splitlines()
        assert lines == [
            "invalid settings (see the README's configuration table): "
            "POLL_INTERVAL_SECONDS: Input should be greater than or equal to 1; "
            "DELIVERY_RETENTION_DAYS: keep at least 15 days (a late weekly brief reads back two "
            "weeks), or 0 to keep every row"], bot.log
        assert TOKEN not in bot.log and telegram.calls == []


def unreachable(tmp_path: Path) -> tuple[int, dict[str, str]]:
    """A free port, closed (connections to it are refused), and a bot's settings naming it
    as the Bot API."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    return port, {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": f"http://127.0.0.1:{port}",
                  "DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}", "ADMIN_IDS": str(ADMIN_ID),
                  "LOG_LEVEL": "INFO", "FULL_TEXT": "false"}


def test_telegram_unreachable_at_start_up_is_retried_until_it_answers(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    port, env = unreachable(tmp_path)
    bot = bot_process(tmp_path, env).start()
    bot.wait_for_log("Telegram is not answering at start-up (attempt 2)", timeout=30)
    with BotApiEmulator(token=TOKEN, port=port) as telegram:
        admin = telegram.user(ADMIN_ID, "Ada")
        assert "/subscribe" in say(telegram, telegram.private_chat(admin), admin, "/start")
        bot.wait_for_log("Telegram answered after", timeout=30)
        log = bot.log
        attempts = re.findall(r"not answering at start-up \(attempt (\d+)\): (.*)", log)
        assert [int(n) for n, _ in attempts] == list(range(1, len(attempts) + 1))
        assert all("trying again" in why for _, why in attempts)
        assert f"Telegram answered after {len(attempts) + 1} attempts" in log
        assert "Traceback" not in log and telegram.rejected == []
        assert bot.process is not None and bot.process.poll() is None, "still serving"


def test_stopped_while_telegram_is_unreachable_it_exits_without_errors(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """SIGTERM during the start-up retries: the HTTP sessions the attempts opened are closed,
    not left for the interpreter to complain about ("Unclosed client session")."""
    _, env = unreachable(tmp_path)
    bot = bot_process(tmp_path, env).start()
    bot.wait_for_log("Telegram is not answering at start-up (attempt 2)", timeout=30)
    bot.terminate(timeout=20)
    log = bot.log
    errors = [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert errors == [], log
    assert "Unclosed" not in log and "Traceback" not in log, log


def test_a_get_me_without_a_required_field_is_one_line(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """A Bot API server that is not quite Telegram: getMe without `is_bot`."""
    with BotApiEmulator(token=TOKEN) as telegram:
        del telegram.bot_user["is_bot"]
        env = env_for(telegram, f"sqlite:///{tmp_path / 't.db'}") | {"LOG_LEVEL": "INFO"}
        bot = bot_process(tmp_path, env).start()
        assert bot.process is not None
        assert bot.process.wait(timeout=30) != 0, bot.log
        log = bot.log
        assert "Traceback" not in log, log
        errors = [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line]
        assert len(errors) == 1 and "getMe" in errors[0] and "is_bot" in errors[0], log
