"""Delivery under Telegram's limits and faults (SPEC §6), against the emulator enforcing them."""

from __future__ import annotations

import time
from pathlib import Path

from storage.deliveries import MAX_ATTEMPTS
from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.telegram import BotApiEmulator
from tests.harness import ADMIN_ID, BASELINE, NEW_SOFTBANK, TOKEN, env_for, say

OTHER = {**NEW_SOFTBANK, "guid": "f2", "link": "http://news.test/f2",
         "title": "SoftBank sells a stake in its chip unit",
         "description": "The sale raises cash for new investments."}


def start(telegram: BotApiEmulator, feeds: FeedServer, tmp_path: Path,
          bot_process: type[BotProcess]) -> BotProcess:
    feeds.put("/feed.xml", rss("Test News", BASELINE))
    env = env_for(telegram, f"sqlite:///{tmp_path / 'f.db'}") | {"LOG_LEVEL": "INFO"}
    bot = bot_process(tmp_path, env).start()
    bot.wait_for_log("Tidings starting")
    admin = telegram.user(ADMIN_ID, "Ada")
    say(telegram, telegram.private_chat(admin), admin, f"/addsource {feeds.url('/feed.xml')}")
    return bot


def readers(telegram: BotApiEmulator, count: int, first_id: int) -> list[dict]:
    chats = []
    for n in range(count):
        user = telegram.user(first_id + n, f"R{n}", language_code="en")
        chat = telegram.private_chat(user)
        say(telegram, chat, user, "/subscribe SoftBank")
        chats.append(chat)
    return chats


def alerts(telegram: BotApiEmulator, chats: list[dict]) -> list[int]:
    return [sum("SoftBank" in m.text and "Core point" in m.text
                for m in telegram.messages(c["id"])) for c in chats]


def test_150_chats_within_telegrams_limits_without_a_single_429(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN, enforce_limits=True, latency=0.02) as telegram, \
            FeedServer() as feeds:
        start(telegram, feeds, tmp_path, bot_process)
        chats = readers(telegram, 150, 30_000)
        feeds.put("/feed.xml", rss("Test News", [NEW_SOFTBANK, *BASELINE]))
        for chat in chats:
            telegram.wait_for_messages(chat["id"], 2, timeout=60)
        assert alerts(telegram, chats) == [1] * 150
        # not faster than Telegram allows: the emulator refused nothing, and by its own record
        # no second held more than 30 sends (so the 150 were spread over five at least)
        assert telegram.too_many_requests == 0
        assert telegram.max_rate() <= 30
        assert telegram.rejected == []


def test_502s_and_429s_still_deliver_exactly_once(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        bot = start(telegram, feeds, tmp_path, bot_process)
        chats = readers(telegram, 40, 31_000)
        telegram.random_faults(method="sendMessage", rate=0.1, status=502, seed=3)
        telegram.fail_next("sendMessage", status=429, retry_after=2, count=3,
                           description="Too Many Requests: retry after 2")
        feeds.put("/feed.xml", rss("Test News", [NEW_SOFTBANK, *BASELINE]))
        for chat in chats:
            telegram.wait_for_messages(chat["id"], 2, timeout=60)
        time.sleep(3)
        telegram.random_faults(method="sendMessage", rate=0)
        assert alerts(telegram, chats) == [1] * 40
        assert telegram.injected_faults >= 4
        assert "will be retried" in bot.log
        assert telegram.rejected == []


THIRD = {**NEW_SOFTBANK, "guid": "f3", "link": "http://news.test/f3",
         "title": "SoftBank opens a robotics lab",
         "description": "The lab in Tokyo will build warehouse robots."}


def test_migrated_group_gets_its_alert_in_the_supergroup(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        start(telegram, feeds, tmp_path, bot_process)
        group = telegram.group(-500, "Old group")
        boss = telegram.user(32_100, "Boss", language_code="en")
        telegram.set_member_status(-500, 32_100, "administrator")
        say(telegram, group, boss, "/subscribe SoftBank")
        supergroup = telegram.group(-100500, "Old group", supergroup=True)
        telegram.fail_next("sendMessage", status=400, migrate_to_chat_id=-100500,
                           description="Bad Request: group chat was upgraded to a supergroup chat")
        feeds.put("/feed.xml", rss("Test News", [NEW_SOFTBANK, *BASELINE]))
        alert = telegram.wait_for_messages(-100500, 1, timeout=30)[0]
        assert "SoftBank pledges billions" in alert.text
        assert "1. SoftBank" in say(telegram, supergroup, boss, "/topics")
        assert len([m for m in telegram.messages(-500) if "Core point" in m.text]) == 0
        assert telegram.rejected == []


def test_a_group_matched_before_it_migrated_gets_the_next_story_and_polling_goes_on(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """The matcher cached at the first story knows the group's old id; the second story must
    still reach the supergroup, and storing it must not fail the source's poll."""
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        bot = start(telegram, feeds, tmp_path, bot_process)
        group = telegram.group(-700, "Desk")
        boss = telegram.user(32_200, "Boss", language_code="en")
        telegram.set_member_status(-700, 32_200, "administrator")
        say(telegram, group, boss, "/subscribe SoftBank")
        feeds.put("/feed.xml", rss("Test News", [NEW_SOFTBANK, *BASELINE]))
        assert "SoftBank pledges" in telegram.wait_for_messages(-700, 2, timeout=30)[1].text
        supergroup = telegram.group(-100700, "Desk", supergroup=True)
        telegram.inject({"message": {"message_id": 90, "date": int(time.time()), "chat": group,
                                     "from": boss, "migrate_to_chat_id": -100700}})
        bot.wait_for_log("chat -700 migrated to -100700")
        feeds.put("/feed.xml", rss("Test News", [OTHER, NEW_SOFTBANK, *BASELINE]))
        alert = telegram.wait_for_messages(-100700, 1, timeout=30)[0]
        assert "SoftBank sells a stake" in alert.text
        admin = telegram.user(ADMIN_ID, "Ada")
        assert "✅ ok" in say(telegram, telegram.private_chat(admin), admin, "/sources")
        assert "polling source" not in bot.log and "storing" not in bot.log
        assert "1. SoftBank" in say(telegram, supergroup, boss, "/topics")
        assert telegram.rejected == []


def test_an_unreadable_answer_is_an_attempt_and_the_row_is_parked_with_its_reason(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """Telegram sends the alert but its answer cannot be read: the bot cannot know it went
    out, so it tries again, at most MAX_ATTEMPTS times, then parks it and says why."""
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        bot = start(telegram, feeds, tmp_path, bot_process)
        [reader] = readers(telegram, 1, 33_000)
        telegram.malformed_next("sendMessage", count=MAX_ATTEMPTS)
        feeds.put("/feed.xml", rss("Test News", [NEW_SOFTBANK, *BASELINE]))
        bot.wait_for_log(f"parked after {MAX_ATTEMPTS} failed attempts", timeout=60)
        time.sleep(2)
        assert alerts(telegram, [reader]) == [MAX_ATTEMPTS], "never endlessly"
        admin = telegram.user(ADMIN_ID, "Ada")
        stats = say(telegram, telegram.private_chat(admin), admin, "/stats")
        assert "Deliveries given up: 1" in stats
        assert "failed on every try, last: UnreadableAnswer(" in stats
        assert alerts(telegram, [reader]) == [MAX_ATTEMPTS]
        assert telegram.rejected == []


def test_blocked_and_kicked_chats_are_not_tried_again(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        bot = start(telegram, feeds, tmp_path, bot_process)
        [blocker, reader] = readers(telegram, 2, 32_000)
        kicked = telegram.group(-600, "Kicked group")
        boss = telegram.user(32_100, "Boss", language_code="en")
        telegram.set_member_status(-600, 32_100, "administrator")
        say(telegram, kicked, boss, "/subscribe SoftBank")
        telegram.block(blocker["id"])
        telegram.block(-600)
        replies = _sends_to(telegram, blocker["id"]) + _sends_to(telegram, -600)
        feeds.put("/feed.xml", rss("Test News", [OTHER, *BASELINE]))
        telegram.wait_for_messages(reader["id"], 2, timeout=30)
        time.sleep(2)
        tried = _sends_to(telegram, blocker["id"]) + _sends_to(telegram, -600)
        assert tried == replies + 2, "each tried once, answered 403"
        feeds.put("/feed.xml", rss("Test News", [THIRD, OTHER, *BASELINE]))
        telegram.wait_for_messages(reader["id"], 3, timeout=30)
        time.sleep(2)
        assert _sends_to(telegram, blocker["id"]) + _sends_to(telegram, -600) == tried, \
            "a chat that blocked or removed the bot is not tried again"
        assert "blocked or removed the bot" in bot.log
        assert telegram.rejected == []


def _sends_to(telegram: BotApiEmulator, chat_id: int) -> int:
    return sum(1 for method, params in telegram.calls
               if method == "sendMessage" and str(params.get("chat_id")) == str(chat_id))


def test_a_migration_is_logged_once(tmp_path: Path, bot_process: type[BotProcess]) -> None:
    """Telegram announces a migration twice, in the old group and in the new supergroup."""
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        bot = start(telegram, feeds, tmp_path, bot_process)
        group = telegram.group(-800, "Desk")
        boss = telegram.user(32_300, "Boss", language_code="en")
        telegram.set_member_status(-800, 32_300, "administrator")
        say(telegram, group, boss, "/subscribe SoftBank")
        supergroup = telegram.group(-100800, "Desk", supergroup=True)
        telegram.set_member_status(-100800, 32_300, "administrator")
        telegram.inject({"message": {"message_id": 91, "date": int(time.time()), "chat": group,
                                     "from": boss, "migrate_to_chat_id": -100800}})
        bot.wait_for_log("chat -800 migrated to -100800")
        telegram.inject({"message": {"message_id": 1, "date": int(time.time()),
                                     "chat": supergroup, "from": boss,
                                     "migrate_from_chat_id": -800}})
        assert "1. SoftBank" in say(telegram, supergroup, boss, "/topics"), "handled in order"
        assert bot.log.count("migrated to") == 1, bot.log
