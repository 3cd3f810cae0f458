"""What one user can cost (issue 11 item 6), through the real bot: the command rate limit, the
topic cap, alias calls in the budget and off the update path, OPML import in the background."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from handlers.opml import CHECKS_AT_ONCE
from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.llm import LlmServer, Reply
from tests.fakes.telegram import BotApiEmulator
from tests.harness import (
    ADMIN_ID,
    ALIASES,
    BASELINE,
    TOKEN,
    World,
    say,
    start_world,
    wait_for_summary,
    wait_until,
)

NOTICE = "faster than I can answer"
LIMITS = {"COMMANDS_PER_MINUTE": "10", "MAX_TOPICS_PER_CHAT": "3"}


def limited_world(
    tmp_path: Path, bot_process: type[BotProcess], telegram: BotApiEmulator, feeds: FeedServer,
    extra_env: dict[str, str] | None = None,
) -> World:
    return start_world(tmp_path, bot_process, telegram, feeds, LIMITS | (extra_env or {}))


def test_a_flood_gets_one_notice_then_silence_then_answers_again(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        world = limited_world(tmp_path, bot_process, telegram, feeds)
        user = telegram.user(8001, "Flo", language_code="en")
        chat = telegram.private_chat(user)
        for _ in range(40):
            telegram.send_text(chat, user, "/help")
        wait_until(lambda: any(NOTICE in m.text for m in telegram.messages(chat["id"])))

        def welcomed() -> bool:
            """Every update is handled in order: once /start is answered, the flood was too."""
            if any("Welcome to Tidings" in m.text for m in telegram.messages(chat["id"])):
                return True
            telegram.send_text(chat, user, "/start")  # silently dropped while still limited
            return False

        wait_until(welcomed, timeout=30)  # a token comes back every 6 s
        texts = [m.text for m in telegram.messages(chat["id"])]
        assert sum(NOTICE in t for t in texts) == 1, "one polite notice, then silence"
        helps = sum("/unsubscribe" in t for t in texts)
        assert 10 <= helps < 40, f"the burst of 10 is answered, the rest is not ({helps})"

        # Button presses count too, and every one is answered so the spinner stops.
        presser = telegram.user(8002, "Tap", language_code="en")
        presser_chat = telegram.private_chat(presser)
        say(telegram, presser_chat, presser, "/start")
        menu = telegram.messages(presser_chat["id"])
        ids = [telegram.press_button(presser_chat, presser, menu[-1].message_id, "bogus:1")
               for _ in range(30)]
        wait_until(lambda: all(telegram.answered_callbacks(i) for i in ids), timeout=20)
        notes = [str(telegram.answered_callbacks(i)[0].get("text", "")) for i in ids]
        assert sum(NOTICE in note for note in notes) == 1
        assert 9 <= sum("out of date" in note for note in notes) < 30
        assert "" in notes, "after the notice, presses are answered without words"

        # Bot admins are exempt.
        admin = telegram.user(ADMIN_ID, "Ada")
        admin_chat = telegram.private_chat(admin)
        before = len(telegram.messages(admin_chat["id"]))
        for _ in range(25):
            telegram.send_text(admin_chat, admin, "/help")
        answers = telegram.wait_for_messages(admin_chat["id"], before + 25, timeout=30)
        assert not any(NOTICE in m.text for m in answers)
        assert telegram.rejected == [] and "Traceback" not in world.bot.log


def test_a_chat_follows_at_most_the_cap_of_topics(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        limited_world(tmp_path, bot_process, telegram, feeds)
        user = telegram.user(8101, "Cap", language_code="en")
        chat = telegram.private_chat(user)
        for topic in ("SoftBank", "Nvidia", "Airbus"):
            assert "Following" in say(telegram, chat, user, f"/subscribe {topic}")
        refused = say(telegram, chat, user, "/subscribe Renault")
        assert "already follows 3 topics" in refused and "/unsubscribe" in refused
        assert "already follows Nvidia" in say(telegram, chat, user, "/subscribe Nvidia"), \
            "a topic already followed is not a new one"
        assert "Renault" not in say(telegram, chat, user, "/topics")
        assert "Stopped following" in say(telegram, chat, user, "/unsubscribe Airbus")
        assert "Following" in say(telegram, chat, user, "/subscribe Renault")
        other = telegram.private_chat(telegram.user(8102, "Other", language_code="en"))
        assert "Following" in say(telegram, other, telegram.user(8102, "Other"),
                                  "/subscribe Renault"), "the cap is per chat"


def alias_requests(llm: LlmServer) -> list[dict[str, Any]]:
    return [r for r in llm.requests if "<<<TOPIC" in r["messages"][1]["content"]]


def test_alias_calls_count_in_usage_and_stop_when_the_budget_is_spent(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds, LlmServer() as llm:
        llm.responder = lambda request: json.dumps(ALIASES, ensure_ascii=False)
        world = limited_world(tmp_path, bot_process, telegram, feeds, {
            "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": llm.base_url,
            "LLM_DAILY_TOKEN_BUDGET": "50"})  # one alias call spends more than that
        user = telegram.user(8201, "Wei", language_code="en")
        chat = telegram.private_chat(user)
        say(telegram, chat, user, "/subscribe SoftBank")
        wait_until(lambda: telegram.messages(chat["id"])[-1].reply_markup is not None)
        assert len(alias_requests(llm)) == 1
        say(telegram, chat, user, "/subscribe Nvidia")
        world.bot.wait_for_log("no alias suggestions for 'Nvidia': daily token budget spent")
        assert len(alias_requests(llm)) == 1, "no call once the budget is spent"
        assert telegram.messages(chat["id"])[-1].reply_markup is None

        admin = telegram.user(ADMIN_ID, "Ada")
        stats = say(telegram, telegram.private_chat(admin), admin, "/stats")
        found = re.search(r"LLM calls: (\d+), failed: 0\nLLM tokens: (\d+) in, (\d+) out", stats)
        assert found is not None, stats
        assert found.group(1) == "1" and int(found.group(2)) > 50 and int(found.group(3)) > 0
        assert f"Token budget: {int(found.group(2)) + int(found.group(3))} of 50" in stats


def test_subscribe_answers_and_other_chats_are_served_while_the_model_thinks(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds, LlmServer() as llm:
        llm.responder = lambda request: Reply(json.dumps(ALIASES, ensure_ascii=False), delay=8)
        limited_world(tmp_path, bot_process, telegram, feeds, {
            "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": llm.base_url})
        user = telegram.user(8301, "Wei", language_code="en")
        chat = telegram.private_chat(user)
        assert "Following" in say(telegram, chat, user, "/subscribe SoftBank")
        wait_until(lambda: len(alias_requests(llm)) == 1)
        other = telegram.user(8302, "Bo", language_code="en")
        assert "/subscribe" in say(telegram, telegram.private_chat(other), other, "/help")
        offer = telegram.messages(chat["id"])[-1]
        assert offer.reply_markup is None, "/help was answered before the model answered"
        wait_until(lambda: telegram.messages(chat["id"])[-1].reply_markup is not None,
                   timeout=30)


def test_opml_import_runs_in_the_background_with_one_progress_message(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        limited_world(tmp_path, bot_process, telegram, feeds)
        outlines = b""
        for n in range(6):
            feeds.put(f"/slow{n}.xml", rss(f"Slow {n}", []), delay=4)
            outlines += (b'<outline type="rss" text="Slow" xmlUrl="'
                         + feeds.url(f"/slow{n}.xml").encode() + b'"/>')
        opml = b'<?xml version="1.0"?><opml version="2.0"><head/><body>' + outlines \
            + b"</body></opml>"
        admin = telegram.user(ADMIN_ID, "Ada")
        chat = telegram.private_chat(admin)
        document = telegram.send_document(chat, admin, opml, "slow.opml")
        before = len(telegram.messages(chat["id"]))
        telegram.send_text(chat, admin, "/importopml", reply_to_message_id=document["message_id"])
        progress = telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before]
        assert "0 of 6 checked" in progress.text

        reader = telegram.user(8401, "Rea", language_code="en")
        assert "/subscribe" in say(telegram, telegram.private_chat(reader), reader, "/help")
        assert "added" not in telegram.messages(chat["id"])[before].text, \
            "another chat's /help is answered while the import runs"
        wait_until(lambda: re.search(r"[1-5] of 6 checked",
                                     telegram.messages(chat["id"])[before].text) is not None,
                   timeout=30)
        summary = wait_for_summary(telegram, chat["id"], progress.message_id)
        assert "6 added, 0 already there, 0 failed" in summary
        assert len(telegram.messages(chat["id"])) == before + 1


def test_a_stopping_bot_ends_the_import_instead_of_waiting_for_it(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        # No fetch may time out first (a loaded machine can take seconds to get here): what
        # ends the checks must be the stop, not their own 20 s limit.
        world = limited_world(tmp_path, bot_process, telegram, feeds,
                              {"FETCH_TIMEOUT_SECONDS": "300"})
        outlines = b""
        for n in range(8):
            feeds.put(f"/stuck{n}.xml", rss(f"Stuck {n}", []), delay=30)
            outlines += (b'<outline type="rss" text="Stuck" xmlUrl="'
                         + feeds.url(f"/stuck{n}.xml").encode() + b'"/>')
        opml = b'<?xml version="1.0"?><opml version="2.0"><head/><body>' + outlines \
            + b"</body></opml>"
        admin = telegram.user(ADMIN_ID, "Ada")
        chat = telegram.private_chat(admin)
        document = telegram.send_document(chat, admin, opml, "stuck.opml")
        before = len(telegram.messages(chat["id"]))
        telegram.send_text(chat, admin, "/importopml", reply_to_message_id=document["message_id"])
        telegram.wait_for_messages(chat["id"], before + 1, timeout=20)
        wait_until(lambda: sum(feeds.hits(f"/stuck{n}.xml") for n in range(8)) == CHECKS_AT_ONCE,
                   timeout=20)  # as many checks under way as run at once, whichever they are
        # Ended, not waited for: the bot is gone (cleanly; the 45 s only bounds a broken run)
        # before any stuck feed answered, and the import says it stopped with none checked.
        assert world.bot.terminate(timeout=45) == 0, world.bot.log
        assert sum(feeds.answers(f"/stuck{n}.xml") for n in range(8)) == 0, \
            "shutdown waited for the import"
        stopped = telegram.messages(chat["id"])[before].text
        assert "stopped because the bot is restarting: 0 of 8 checked" in stopped


def test_a_slow_site_keeps_only_its_own_addsource_waiting(world: World) -> None:
    """Updates are handled in order, but /addsource runs beside them: while a feed takes its
    time to answer, another chat's commands are answered."""
    telegram, feeds = world.telegram, world.feeds
    admin = telegram.user(ADMIN_ID, "Ada")
    admin_chat = telegram.private_chat(admin)
    reader = telegram.user(8101, "Ola", language_code="en")
    reader_chat = telegram.private_chat(reader)
    arrive = threading.Event()
    feeds.put("/slow.xml", rss("Slow News", BASELINE), hold=arrive)
    before = len(telegram.messages(admin_chat["id"]))
    telegram.send_text(admin_chat, admin, f"/addsource {feeds.url('/slow.xml')}")
    try:
        wait_until(lambda: feeds.hits("/slow.xml") == 1)  # the check is under way
        assert "/subscribe" in say(telegram, reader_chat, reader, "/help")
        assert feeds.answers("/slow.xml") == 0, "the feed answered before /help did"
        assert len(telegram.messages(admin_chat["id"])) == before  # /addsource still waits
    finally:
        arrive.set()
    added = telegram.wait_for_messages(admin_chat["id"], before + 1, timeout=30)[before].text
    assert "Entries now in the feed" in added


def test_one_feed_added_twice_at_once_is_added_once(world: World) -> None:
    """Two /addsource of one URL both pass the "already there?" look-up while the feed is
    slow; the second to store it is told it is already a source, not shown an error."""
    telegram, feeds = world.telegram, world.feeds
    admin = telegram.user(ADMIN_ID, "Ada")
    chat = telegram.private_chat(admin)
    arrive = threading.Event()
    feeds.put("/twice.xml", rss("Twice News", BASELINE), hold=arrive)
    before = len(telegram.messages(chat["id"]))
    for _ in range(2):
        telegram.send_text(chat, admin, f"/addsource {feeds.url('/twice.xml')}")
    try:
        wait_until(lambda: feeds.hits("/twice.xml") == 2)  # both checks are under way
    finally:
        arrive.set()
    replies = [m.text for m in telegram.wait_for_messages(chat["id"], before + 2, timeout=30)]
    assert sum("Entries now in the feed" in text for text in replies[before:]) == 1, replies
    assert sum("already added as #2 (Twice News)" in text for text in replies[before:]) == 1
    assert say(telegram, chat, admin, "/sources").count("Twice News") == 1
