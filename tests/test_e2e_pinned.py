"""Topics pinned as 重点追踪 end to end: `/subscribe !query`, the /topics 📌 button, delivery
modes, digests and the brief's prompt (issue 15, item 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.llm import LlmServer
from tests.fakes.telegram import BotApiEmulator
from tests.harness import (
    BASELINE,
    EN_BRIEF,
    NEW_SOFTBANK,
    TOKEN,
    ZH_BRIEF,
    World,
    brief_requests,
    current,
    last_says,
    say,
    start_with_llm,
    wait_until,
)

NVIDIA = {"title": "Nvidia results beat estimates", "link": "http://news.test/n1", "guid": "n1",
          "description": "Nvidia reported record data center revenue.",
          "pub_date": NEW_SOFTBANK["pub_date"]}
CLOSELY = "tracks this story's topic closely"


def level_three(request: dict[str, Any]) -> str:
    """Briefs that say "for information" (level 3); no alias suggestions."""
    if "<<<TOPIC" in request["messages"][1]["content"]:
        return json.dumps({"aliases": [], "exclusions": []})
    brief = ZH_BRIEF if "in Chinese" in request["messages"][0]["content"] else EN_BRIEF
    return json.dumps({**brief, "tracking_level": 3}, ensure_ascii=False)


def test_a_pinned_topic_is_flagged_red_and_its_prompt_asks_for_close_tracking(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, LlmServer() as llm, FeedServer() as feeds:
        llm.responder = level_three
        feeds.put("/feed.xml", rss("Test News", BASELINE))
        start_with_llm(telegram, llm, feeds, tmp_path, bot_process)
        pinner = telegram.user(9001, "Zhang", language_code="zh")
        reader = telegram.user(9002, "Eve", language_code="en")
        zh_chat, en_chat = telegram.private_chat(pinner), telegram.private_chat(reader)
        reply = say(telegram, zh_chat, pinner, "/subscribe !SoftBank")
        assert "已将 SoftBank 设为重点追踪" in reply and "已关注 SoftBank" in reply
        assert "📌" not in say(telegram, en_chat, reader, "/subscribe SoftBank")

        feeds.put("/feed.xml", rss("Test News", [NEW_SOFTBANK, *BASELINE]))
        zh_alert = telegram.wait_for_messages(zh_chat["id"], 2, timeout=20)[-1].text
        en_alert = telegram.wait_for_messages(en_chat["id"], 2, timeout=20)[-1].text
        assert zh_alert.startswith("🔴 重点追踪 · SoftBank"), "the pin, not the brief's level 3"
        assert "软银承诺巨资" in zh_alert, "the LLM's brief"
        assert en_alert.startswith("⚪ For information · SoftBank"), "unpinned: the brief's level"

        prompts = {"zh" if "in Chinese" in r["messages"][0]["content"] else "en":
                   r["messages"][0]["content"] for r in brief_requests(llm)}
        assert set(prompts) == {"zh", "en"}, "one brief per story and language"
        assert CLOSELY in prompts["zh"], "a zh reader pinned the topic"
        assert CLOSELY not in prompts["en"], "no en reader pinned it"
        assert telegram.rejected == []


def test_the_topics_button_pins_and_unpins_and_only_admins_may_press_it(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(9101, "Jo", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe SoftBank")
    say(telegram, chat, user, "/subscribe Nvidia")
    listing = say(telegram, chat, user, "/topics")
    assert "tracked closely" not in listing
    menu = telegram.messages(chat["id"])[-1]
    buttons = [b for row in menu.reply_markup["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == ["📌 Track closely: SoftBank",
                                            "📌 Track closely: Nvidia"]

    # Issue 25 item 4: the list and its keyboard change together, in place; the press is
    # answered with a short toast and no new message.
    sent = len(telegram.messages(chat["id"]))
    assert world.press(chat, user, menu, buttons[0]["callback_data"]) == (
        "📌 SoftBank is tracked closely.")
    wait_until(lambda: "📌" in current(telegram, menu).text)
    edited = current(telegram, menu)
    assert edited.text.splitlines()[1:] == ["1. SoftBank · 1 in 7 days · 📌 tracked closely",
                                            "2. Nvidia · 0 in 7 days"]
    flipped = [b["text"] for row in edited.reply_markup["inline_keyboard"] for b in row]
    assert flipped == ["✖ 📌 Stop tracking closely: SoftBank", "📌 Track closely: Nvidia"]
    listing = say(telegram, chat, user, "/topics")
    assert "1. SoftBank · 1 in 7 days · 📌 tracked closely" in listing
    assert "2. Nvidia · 0 in 7 days\n" in listing + "\n" and listing.count("📌 tracked") == 1

    assert world.press(chat, user, menu, buttons[0]["callback_data"]) == (
        "SoftBank is no longer tracked closely.")
    wait_until(lambda: "📌" not in current(telegram, menu).text)
    assert current(telegram, menu).text.splitlines()[1:] == ["1. SoftBank · 1 in 7 days",
                                                             "2. Nvidia · 0 in 7 days"]
    assert len(telegram.messages(chat["id"])) == sent + 1, "only the /topics asked for"
    assert "tracked closely" not in say(telegram, chat, user, "/topics")
    assert "out of date" in world.press(chat, user, menu, "pin:999999")

    group = telegram.group(-9100, "Desk")
    boss = telegram.user(9102, "Boss", language_code="en")
    member = telegram.user(9103, "Member", language_code="en")
    telegram.set_member_status(-9100, 9102, "administrator")
    telegram.set_member_status(-9100, 9103, "member")
    say(telegram, group, boss, "/subscribe SoftBank")
    say(telegram, group, member, "/topics")
    data = telegram.messages(-9100)[-1].reply_markup["inline_keyboard"][0][0]["callback_data"]
    assert "only this group's admins" in world.press(group, member, telegram.messages(-9100)[-1],
                                                     data)
    assert "tracked closely" not in say(telegram, group, member, "/topics"), "unchanged"
    assert "only this group's admins" in say(telegram, group, member, "/subscribe !SoftBank")
    assert "tracked closely" not in say(telegram, group, member, "/topics"), "unchanged"
    assert "is tracked closely" in say(telegram, group, boss, "/subscribe !SoftBank"), \
        "pins the topic the group already follows"
    assert "📌 tracked closely" in say(telegram, group, member, "/topics")


def held_state(database: Path, title: str) -> str | None:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            return connection.execute(text(
                "SELECT d.state FROM deliveries d JOIN stories s ON s.id = d.story_id "
                "WHERE s.title = :title"), {"title": title}).scalar()
    finally:
        engine.dispose()


def test_priority_mode_sends_a_pinned_topic_at_once_with_the_offline_brief_flagged_red(
    world: World, tmp_path: Path
) -> None:
    """No LLM: the offline brief of a one-source story is not level 1, yet the pinned topic's
    story is flagged 🔴 and sent at once, while an unpinned topic's story waits for the digest,
    where the pinned topic comes first."""
    telegram = world.telegram
    user = telegram.user(9201, "Pi", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe !SoftBank")
    say(telegram, chat, user, "/subscribe Nvidia")
    say(telegram, chat, user, "/settings")
    world.press(chat, user, telegram.messages(chat["id"])[-1], "mode:priority")
    last_says("Delivery: Track-closely at once", telegram, chat)
    count = len(telegram.messages(chat["id"]))

    world.publish(NEW_SOFTBANK, NVIDIA)
    alert = telegram.wait_for_messages(chat["id"], count + 1, timeout=20)[count].text
    assert alert.startswith("🔴 Track closely · SoftBank") and "SoftBank pledges" in alert
    assert "Core point · original text" in alert, "the offline brief"
    wait_until(lambda: held_state(tmp_path / "t.db", NVIDIA["title"]) == "digest", timeout=20)
    assert not any("Nvidia" in m.text for m in telegram.messages(chat["id"])[count:])

    digest = say(telegram, chat, user, "/digest")
    assert "📌 SoftBank\n🔴 SoftBank pledges" in digest
    assert digest.index("📌 SoftBank") < digest.index("Nvidia results beat estimates")
