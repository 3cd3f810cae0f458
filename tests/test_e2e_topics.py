"""Topics people can trust (SPEC §1, §3, §4): previews, buttons, groups, channels, forums."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer
from tests.fakes.llm import LlmServer
from tests.fakes.telegram import BotApiEmulator, SentMessage
from tests.harness import (
    NEW_SOFTBANK,
    TOKEN,
    World,
    alias_or_brief,
    last_says,
    say,
    start_world,
    wait_until,
)

CHINESE_STORY = {
    "title": "软银承诺在上法兰西大区巨额投资", "link": "http://news.test/zh1", "guid": "zh1",
    "description": "软银承诺在上法兰西大区进行巨额投资，推动当地打造人工智能谷。",
    "pub_date": datetime(2026, 11, 21, tzinfo=UTC),
}


def test_subscribe_previews_the_week_and_topics_counts(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(7001, "Li", language_code="en")
    chat = telegram.private_chat(user)
    reply = say(telegram, chat, user, "/subscribe softbank")
    assert "would have matched in the last 7 days: 1." in reply
    assert "SoftBank opens an office in Lille" in reply
    assert 'href="http://news.test/a1"' in telegram.messages(chat["id"])[-1].html
    assert "matched no story of the last 7 days" in say(telegram, chat, user, "/subscribe Zyxwv")
    topics = say(telegram, chat, user, "/topics")
    assert "1. softbank · 1 in 7 days" in topics and "2. Zyxwv · 0 in 7 days" in topics


def test_buttons_unsubscribe_language_settings_and_stale_presses(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(7002, "Jo", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe SoftBank")
    say(telegram, chat, user, "/subscribe Nvidia")
    say(telegram, chat, user, "/unsubscribe")
    menu = telegram.messages(chat["id"])[-1]
    buttons = [b for row in menu.reply_markup["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == ["✖ SoftBank", "✖ Nvidia"]
    assert "Stopped following" in world.press(chat, user, menu, buttons[1]["callback_data"])
    last_says("Stopped following Nvidia", telegram, chat)
    assert "out of date" in world.press(chat, user, menu, buttons[1]["callback_data"])
    assert "out of date" in world.press(chat, user, menu, "unsub:999999")
    assert "out of date" in world.press(chat, user, menu, "bogus:1")
    assert "out of date" in world.press(chat, user, menu, "unsub:not-a-number")
    assert "Nvidia" not in say(telegram, chat, user, "/topics")

    say(telegram, chat, user, "/lang")
    languages = telegram.messages(chat["id"])[-1]
    codes = [b["callback_data"] for row in languages.reply_markup["inline_keyboard"] for b in row]
    assert "lang:zh" in codes and "lang:en" in codes
    world.press(chat, user, languages, "lang:zh")
    last_says("语言已设为", telegram, chat)
    assert "本聊天关注的话题" in say(telegram, chat, user, "/topics")
    say(telegram, chat, user, "/lang en")

    screen = say(telegram, chat, user, "/settings")
    assert "Every story at once" in screen and "08:00 (UTC)" in screen
    settings = telegram.messages(chat["id"])[-1]
    world.press(chat, user, settings, "mode:digest")
    last_says("Delivery: Daily digest only", telegram, chat)
    assert "09:30 (Asia/Shanghai)" in say(telegram, chat, user, "/settings tz Asia/Shanghai") \
        or "Asia/Shanghai" in say(telegram, chat, user, "/settings digest 09:30")
    assert "not a time zone" in say(telegram, chat, user, "/settings tz Mars/Olympus")
    assert "did not understand" in say(telegram, chat, user, "/settings digest 25:00")
    assert "Quiet hours: 22:00–07:00" in say(telegram, chat, user, "/settings quiet 22:00-07:00")
    assert "Quiet hours: off" in say(telegram, chat, user, "/settings quiet off")


def test_groups_only_admins_configure_and_alerts_follow_migration(world: World) -> None:
    telegram = world.telegram
    group = telegram.group(-100, "Tech Desk")
    boss = telegram.user(7101, "Boss", language_code="en")
    member = telegram.user(7102, "Member", language_code="en")
    telegram.set_member_status(-100, 7101, "administrator")
    telegram.set_member_status(-100, 7102, "member")
    assert "only this group's admins" in say(telegram, group, member, "/subscribe SoftBank")
    assert "follows no topics" in say(telegram, group, member, "/topics"), "nothing changed"
    assert "Following" in say(telegram, group, boss, "/subscribe SoftBank")
    for command in ("/unsubscribe SoftBank", "/unsubscribe", "/lang zh", "/settings quiet off"):
        assert "only this group's admins" in say(telegram, group, member, command), command
    say(telegram, group, boss, "/unsubscribe")
    menu = telegram.messages(-100)[-1]
    data = menu.reply_markup["inline_keyboard"][0][0]["callback_data"]
    assert "only this group's admins" in world.press(group, member, menu, data)
    say(telegram, group, boss, "/settings")
    assert "only this group's admins" in world.press(group, member, telegram.messages(-100)[-1],
                                                     "mode:digest")
    assert "Every story at once" in say(telegram, group, member, "/settings"), "unchanged"
    assert "1. SoftBank" in say(telegram, group, member, "/topics"), "still followed"
    telegram.send_text(group, member, "/frobnicate")  # maybe another bot's: not answered here
    assert "I don't know that command" in say(telegram, group, member,
                                              "/frobnicate@tidings_test_bot")
    unknown = [m for m in telegram.messages(-100) if "I don't know" in m.text]
    assert len(unknown) == 1, "only the command addressed to this bot is answered"

    supergroup = telegram.group(-1009, "Tech Desk", supergroup=True)
    telegram.inject({"message": {"message_id": 99, "date": int(time.time()), "chat": group,
                                 "from": boss, "migrate_to_chat_id": -1009}})
    time.sleep(1)
    world.publish(NEW_SOFTBANK)
    alert = telegram.wait_for_messages(-1009, 1, timeout=20)[0]
    assert "SoftBank pledges billions" in alert.text
    assert "1. SoftBank" in say(telegram, supergroup, member, "/topics")


def test_removed_chats_receive_nothing_until_readded(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(7201, "Kim", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe SoftBank")
    bot_user = telegram.bot_user

    def membership(status: str) -> None:
        change = {"chat": chat, "from": user, "date": int(time.time()),
                  "old_chat_member": {"user": bot_user, "status": "member"},
                  "new_chat_member": {"user": bot_user, "status": status, "until_date": 0}}
        telegram.inject({"my_chat_member": change})

    membership("kicked")
    world.bot.wait_for_log(f"chat {chat['id']} removed or blocked the bot")
    world.publish(NEW_SOFTBANK)
    time.sleep(4)
    assert len(telegram.messages(chat["id"])) == 1, "a blocked chat receives nothing"
    membership("member")
    world.bot.wait_for_log(f"chat {chat['id']} added the bot")
    world.publish({**NEW_SOFTBANK, "guid": "b5", "link": "http://news.test/b5",
                   "title": "SoftBank is back in the news",
                   "description": "Its shares rose after quarterly results."})
    alert = telegram.wait_for_messages(chat["id"], 2, timeout=20)[1]
    assert "SoftBank is back in the news" in alert.text
    assert "1. SoftBank" in say(telegram, chat, user, "/topics"), "subscriptions survived"


def test_channels_and_forum_topics(world: World) -> None:
    telegram = world.telegram
    channel = telegram.channel(-2001, "Tech Channel")
    assert "Following" in say(telegram, channel, None, "/subscribe SoftBank")
    forum = telegram.group(-3001, "Forum", supergroup=True, is_forum=True)
    boss = telegram.user(7301, "Boss", language_code="en")
    telegram.set_member_status(-3001, 7301, "creator")
    before = len(telegram.messages(-3001))
    telegram.send_text(forum, boss, "/subscribe SoftBank", message_thread_id=42)
    reply = telegram.wait_for_messages(-3001, before + 1)[before]
    assert reply.message_thread_id == 42, "the reply stays in the forum topic"

    world.publish(NEW_SOFTBANK)
    assert "SoftBank pledges billions" in telegram.wait_for_messages(-2001, 2, timeout=20)[1].text
    forum_alert = telegram.wait_for_messages(-3001, before + 2, timeout=20)[before + 1]
    assert forum_alert.message_thread_id == 42 and "SoftBank pledges" in forum_alert.text


def labels_of(telegram: BotApiEmulator, chat: dict, message: SentMessage) -> list[str]:
    """The buttons a message shows now."""
    now = next(m for m in telegram.messages(chat["id"]) if m.message_id == message.message_id)
    return [b["text"] for row in (now.reply_markup or {}).get("inline_keyboard", []) for b in row]


def test_alias_buttons_extend_the_query_across_languages(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds, LlmServer() as llm:
        llm.responder = alias_or_brief
        world = start_world(tmp_path, bot_process, telegram, feeds, {
            "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": llm.base_url})
        user = telegram.user(7401, "Wei", language_code="en")
        chat = telegram.private_chat(user)
        say(telegram, chat, user, "/subscribe SoftBank")
        wait_until(lambda: telegram.messages(chat["id"])[-1].reply_markup is not None)
        offer = telegram.messages(chat["id"])[-1]
        buttons = [b for row in offer.reply_markup["inline_keyboard"] for b in row]
        labels = [b["text"] for b in buttons]
        expected = ["➕ 软银", "➕ ソフトバンク", "➕ 소프트뱅크", "➖ Hawks"]
        assert labels == expected, "the topic's own name is not offered again"
        # Issue 25 item 8: a press edits the offer in place: the topic as it now reads, the
        # pressed button gone, the others still there; no new message.
        sent = len(telegram.messages(chat["id"]))
        assert "Now following SoftBank OR 软银" in world.press(
            chat, user, offer, buttons[0]["callback_data"])
        wait_until(lambda: labels_of(telegram, chat, offer) == expected[1:])
        edited = next(m for m in telegram.messages(chat["id"])
                      if m.message_id == offer.message_id)
        assert edited.text.startswith("✅ Following SoftBank OR 软银.\n"
                                      "I understood: «SoftBank» OR «软银»\n")
        world.press(chat, user, offer, buttons[3]["callback_data"])
        wait_until(lambda: labels_of(telegram, chat, offer) == expected[1:3])
        edited = next(m for m in telegram.messages(chat["id"])
                      if m.message_id == offer.message_id)
        assert edited.text.startswith("✅ Following (SoftBank OR 软银) -Hawks.\n")
        assert len(telegram.messages(chat["id"])) == sent
        assert "(SoftBank OR 软银) -Hawks" in say(telegram, chat, user, "/topics")
        assert "out of date" in world.press(chat, user, offer, buttons[0]["callback_data"])

        world.publish(CHINESE_STORY)
        alert = telegram.wait_for_messages(chat["id"], len(telegram.messages(chat["id"])) + 1,
                                           timeout=20)[-1]
        assert "软银承诺" in alert.text and "(SoftBank OR 软银) -Hawks" in alert.text
        assert telegram.rejected == []


def test_topics_differing_only_in_case_are_one_topic(world: World) -> None:
    """Issue 25 item 3: `/subscribe softbank` after `SoftBank` is the same topic, pinned or
    not, and `/unsubscribe` in any case (or spacing, or quoting) removes it."""
    telegram = world.telegram
    user = telegram.user(7003, "Ana", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe SoftBank -Hawks")
    assert say(telegram, chat, user, "/subscribe softbank  -HAWKS") == (
        "This chat already follows SoftBank -Hawks. /topics lists your topics.")
    assert "SoftBank -Hawks is tracked closely" in say(
        telegram, chat, user, '/subscribe !"SOFTBANK" -hawks')
    topics = say(telegram, chat, user, "/topics").splitlines()
    assert topics[1:] == ["1. SoftBank -Hawks · 1 in 7 days · 📌 tracked closely"]
    say(telegram, chat, user, "/subscribe Nvidia")
    assert say(telegram, chat, user, "/unsubscribe softbank -hawks") == (
        "Stopped following SoftBank -Hawks.")
    topics = say(telegram, chat, user, "/topics").splitlines()
    assert topics[1:] == ["1. Nvidia · 0 in 7 days"]
