"""Readers steer and question their alerts (issue 15): 👍/👎, "less about", mutes, /why."""

from __future__ import annotations

from typing import Any

from tests.fakes.feeds import rss
from tests.fakes.telegram import BotApiEmulator, SentMessage
from tests.harness import NEW_SOFTBANK, World, buttons, current, say, wait_until

NEW_LINK = "http://news.test/b1"  # NEW_SOFTBANK's link without its tracking parameter


def story(guid: str, title: str, text: str = "It was announced on Monday.") -> dict[str, Any]:
    return {**NEW_SOFTBANK, "guid": guid, "link": f"http://news.test/{guid}", "title": title,
            "description": text}


def alert_for(telegram: BotApiEmulator, chat_id: int, title: str) -> SentMessage:
    """The alert whose text carries `title`, once it has come."""
    def found() -> SentMessage | None:
        return next((m for m in telegram.messages(chat_id) if title in m.text), None)

    wait_until(lambda: found() is not None, timeout=30)
    message = found()
    assert message is not None
    return message


def shows(telegram: BotApiEmulator, message: SentMessage, label: str) -> None:
    """Wait until the message's keyboard carries a button with this label."""
    wait_until(lambda: label in buttons(current(telegram, message)))


def why_says(telegram: BotApiEmulator, chat: dict, user: dict, command: str,
             expected: str) -> str:
    """Ask /why until the answer says `expected` (the story may still be on its way)."""
    said = ""

    def answered() -> bool:
        nonlocal said
        said = say(telegram, chat, user, command)
        return expected in said

    wait_until(answered, timeout=30)
    return said


def test_group_votes_count_once_per_person_and_only_admins_change_topics(world: World) -> None:
    telegram = world.telegram
    group = telegram.group(-4001, "Desk", supergroup=True)
    boss = telegram.user(9101, "Boss", language_code="en")
    member = telegram.user(9102, "Member", language_code="en")
    telegram.set_member_status(-4001, 9101, "administrator")
    telegram.set_member_status(-4001, 9102, "member")
    say(telegram, group, boss, "/subscribe SoftBank")
    world.publish(NEW_SOFTBANK)
    alert = alert_for(telegram, -4001, "SoftBank pledges billions")
    assert list(buttons(alert)) == ["👍", "👎", "❓ Why?"]
    up = buttons(alert)["👍"]

    assert "Thanks" in world.press(group, member, alert, up)
    shows(telegram, alert, "👍 1")
    world.press(group, boss, alert, up)
    shows(telegram, alert, "👍 2")
    assert "withdrawn" in world.press(group, member, alert, up), "a second press is no 2nd vote"
    shows(telegram, alert, "👍 1")

    world.press(group, member, alert, buttons(alert)["👎"])  # anyone may say 👎 ...
    shows(telegram, alert, "👎 1")
    mute = buttons(current(telegram, alert))["🔇 Mute Test News for this topic"]
    answer = world.press(group, member, alert, mute)  # ... but only admins change topics
    assert "only this group's admins" in answer
    topics = say(telegram, group, member, "/topics")
    assert "Muted" not in topics and "1. SoftBank · 2 in 7 days · 👍 1 · 👎 1" in topics
    admin = telegram.user(1001, "Ada")
    stats = say(telegram, telegram.private_chat(admin), admin, "/stats")
    assert "Feedback: 👍 1 · 👎 1 · less about a term: 0 · sources muted: 0" in stats


def test_less_about_a_term_excludes_it_until_undone(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(9201, "Lu", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe SoftBank")
    world.publish(NEW_SOFTBANK)
    alert = alert_for(telegram, chat["id"], "SoftBank pledges billions")
    assert "Noted" in world.press(chat, user, alert, buttons(alert)["👎"])
    shows(telegram, alert, "➖ Less about Hauts-de-France")
    less = buttons(current(telegram, alert))["➖ Less about Hauts-de-France"]
    assert "left out" in world.press(chat, user, alert, less)
    shows(telegram, alert, "↩ Undo: less about Hauts-de-France")
    assert "1. SoftBank -Hauts-de-France" in say(telegram, chat, user, "/topics")

    world.publish(story("b6", "SoftBank adds a campus in Hauts-de-France"),
                  story("b7", "SoftBank names a new finance chief"))
    alert_for(telegram, chat["id"], "SoftBank names a new finance chief")
    said = why_says(telegram, chat, user, "/why http://news.test/b6", "leaves out")
    assert "«Hauts-de-France»" in said
    assert not any("adds a campus" in m.text for m in telegram.messages(chat["id"])
                   if m.reply_markup is not None), "the excluded story was not delivered"

    undo = buttons(current(telegram, alert))["↩ Undo: less about Hauts-de-France"]
    assert "Undone" in world.press(chat, user, alert, undo)
    shows(telegram, alert, "➖ Less about Hauts-de-France")
    topics = say(telegram, chat, user, "/topics")
    assert "1. SoftBank ·" in topics and "Hauts-de-France" not in topics


def test_a_press_before_the_send_is_answered_finds_its_alert(world: World) -> None:
    """Issue 25 item 13: a reader can press 👎 while the bot still waits for Telegram's answer
    to the send (the emulator holds it back, the message already in the chat): the press
    waits for the alert to be recorded instead of calling its button out of date."""
    telegram = world.telegram
    user = telegram.user(9202, "Ed", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe SoftBank")
    telegram.slow_next("sendMessage", 3.0)
    world.publish(NEW_SOFTBANK)
    alert = alert_for(telegram, chat["id"], "SoftBank pledges billions")
    assert "Noted" in world.press(chat, user, alert, buttons(alert)["👎"])
    assert ("sendMessage", 3.0) in telegram.held
    shows(telegram, alert, "👎 1")
    assert "· 👍 0 · 👎 1" in say(telegram, chat, user, "/topics")


def test_a_choice_on_an_alert_of_several_topics_changes_the_one_picked(world: World) -> None:
    """Issue 25 item 5: an alert that came for two topics asks which one a 👎 choice is for,
    changes only that one, says which in its toast, and /topics counts the vote under each."""
    telegram = world.telegram
    user = telegram.user(9203, "Sam", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe SoftBank")
    say(telegram, chat, user, "/subscribe valley")
    world.publish(NEW_SOFTBANK)
    alert = alert_for(telegram, chat["id"], "SoftBank pledges billions")
    world.press(chat, user, alert, buttons(alert)["👎"])
    shows(telegram, alert, "➖ Less about Hauts-de-France")
    less = buttons(current(telegram, alert))["➖ Less about Hauts-de-France"]
    assert world.press(chat, user, alert, less) == "Which topic? Choose it below."
    shows(telegram, alert, "For topic: valley")
    assert "For topic: SoftBank" in buttons(current(telegram, alert))
    pick = buttons(current(telegram, alert))["For topic: valley"]
    assert world.press(chat, user, alert, pick) == (
        "➖ «Hauts-de-France» is now left out. Topic: valley -Hauts-de-France")
    shows(telegram, alert, "↩ Undo: less about Hauts-de-France")
    assert "For topic: SoftBank" not in buttons(current(telegram, alert))
    assert "out of date" in world.press(chat, user, alert, pick), "a left-over pick undoes not"

    mute = buttons(current(telegram, alert))["🔇 Mute Test News for this topic"]
    assert world.press(chat, user, alert, mute) == "Which topic? Choose it below."
    shows(telegram, alert, "For topic: SoftBank")
    pick = buttons(current(telegram, alert))["For topic: SoftBank"]
    assert world.press(chat, user, alert, pick) == (
        "🔇 Test News is muted for SoftBank. /topics lists it.")
    shows(telegram, alert, "↩ Undo: mute Test News")

    lines = say(telegram, chat, user, "/topics").splitlines()
    assert lines[1].startswith("1. SoftBank ·") and lines[1].endswith("· 👍 0 · 👎 1")
    assert lines[2] == "   🔇 Muted: Test News"
    assert lines[3].startswith("2. valley -Hauts-de-France ·")
    assert lines[3].endswith("· 👍 0 · 👎 1") and len(lines) == 4


def test_mute_a_source_listed_by_topics_and_lifted_there(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(9301, "Mo", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe SoftBank")
    world.publish(NEW_SOFTBANK)
    alert = alert_for(telegram, chat["id"], "SoftBank pledges billions")
    world.press(chat, user, alert, buttons(alert)["👎"])
    shows(telegram, alert, "🔇 Mute Test News for this topic")
    mute = buttons(current(telegram, alert))["🔇 Mute Test News for this topic"]
    assert "Test News is muted for SoftBank" in world.press(chat, user, alert, mute)
    shows(telegram, alert, "↩ Undo: mute Test News")

    topics = say(telegram, chat, user, "/topics")
    assert "Muted: Test News" in topics
    listing = telegram.messages(chat["id"])[-1]
    unmute = buttons(listing)["🔊 Unmute Test News (topic 1)"]

    world.publish(story("b8", "SoftBank opens a lab in Lille"))
    said = why_says(telegram, chat, user, "/why http://news.test/b8", "muted for this topic")
    assert "SoftBank" in said
    assert not any("opens a lab" in m.text for m in telegram.messages(chat["id"])
                   if m.reply_markup is not None and "up:" in str(m.reply_markup))

    assert "no longer muted" in world.press(chat, user, listing, unmute)
    wait_until(lambda: "🔊" not in str(current(telegram, listing).reply_markup))
    assert "📌" in str(current(telegram, listing).reply_markup), "the pin buttons stay"
    assert "Muted" not in say(telegram, chat, user, "/topics")
    world.publish(story("b9", "SoftBank buys a robot maker"))
    alert_for(telegram, chat["id"], "SoftBank buys a robot maker")


def test_the_keyboard_survives_the_edit_that_adds_a_source(world: World) -> None:
    telegram, feeds = world.telegram, world.feeds
    admin = telegram.user(1001, "Ada")
    feeds.put("/wire.xml", rss("Other Wire", []))
    say(telegram, telegram.private_chat(admin), admin, f"/addsource {feeds.url('/wire.xml')}")
    user = telegram.user(9401, "Ed", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe SoftBank")
    world.publish(NEW_SOFTBANK)
    alert = alert_for(telegram, chat["id"], "SoftBank pledges billions")
    world.press(chat, user, alert, buttons(alert)["👍"])
    shows(telegram, alert, "👍 1")
    feeds.put("/wire.xml", rss("Other Wire", [{
        "title": "Hauts-de-France: SoftBank pledges billions for AI valley",
        "link": "http://wire.test/softbank", "guid": "w1",
        "description": "SoftBank has pledged a major investment in Hauts-de-France, "
                       "officials said.", "pub_date": NEW_SOFTBANK["pub_date"]}]))
    wait_until(lambda: "Other Wire" in current(telegram, alert).text, timeout=30)
    edited = current(telegram, alert)
    assert list(buttons(edited)) == ["👍 1", "👎", "❓ Why?"]


def test_why_button_and_why_as_a_reply(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(9501, "Wy", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe softbank Bertrand")
    world.publish(NEW_SOFTBANK)
    alert = alert_for(telegram, chat["id"], "SoftBank pledges billions")
    before = len(telegram.messages(chat["id"]))
    world.press(chat, user, alert, buttons(alert)["❓ Why?"])
    answer = telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before].text
    assert "Why this alert" in answer
    assert ("Topic softbank Bertrand: «softbank» in the headline, «Bertrand» in the text"
            in answer)
    assert "Reported by: Test News" in answer
    assert "Level: 🟡 Keep watching — no written brief, so set by rule: sources reporting it: 1"\
        " (3 or more 🔴, 2 🟡, 1 ⚪); one level higher: the headline names the topic" in answer

    before = len(telegram.messages(chat["id"]))
    telegram.send_text(chat, user, "/why", reply_to_message_id=alert.message_id)
    replied = telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before].text
    assert replied == answer
    assert "Reply /why to one of my alerts" in say(telegram, chat, user, "/why")


def test_why_as_a_reply_the_moment_an_alert_shows_waits_for_its_record(world: World) -> None:
    """Telegram shows the alert before the bot has its answer to the send (held back here):
    /why replied to it then finds the send not yet recorded, and waits for the record rather
    than saying the message is none of the bot's alerts."""
    telegram = world.telegram
    user = telegram.user(9502, "Qu", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe softbank Bertrand")
    telegram.slow_next("sendMessage", 2.0)  # the alert: shown at once, answered 2 s late
    world.publish(NEW_SOFTBANK)
    alert = alert_for(telegram, chat["id"], "SoftBank pledges billions")
    before = len(telegram.messages(chat["id"]))
    telegram.send_text(chat, user, "/why", reply_to_message_id=alert.message_id)
    replied = telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before].text
    assert "Why this alert" in replied and "Topic softbank Bertrand" in replied, replied
    assert ("sendMessage", 2.0) in telegram.held


def test_why_link_explains_stories_the_chat_did_not_get(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(9601, "Ny", language_code="en")
    chat = telegram.private_chat(user)
    assert "No source I track has carried this link" in say(
        telegram, chat, user, "/why http://elsewhere.test/story")
    say(telegram, chat, user, "/subscribe SoftBank Nvidia")
    world.publish(NEW_SOFTBANK)
    said = why_says(telegram, chat, user, f"/why {NEW_LINK}", "is not in the story")
    assert "SoftBank Nvidia: «Nvidia» is not in the story" in said
    say(telegram, chat, user, "/subscribe SoftBank")
    said = say(telegram, chat, user, f"/why {NEW_SOFTBANK['link']}")
    assert "SoftBank: the story arrived before this topic existed" in said

    say(telegram, chat, user, "/settings")
    world.press(chat, user, telegram.messages(chat["id"])[-1], "mode:digest")
    wait_until(lambda: "Daily digest only" in telegram.messages(chat["id"])[-1].text)
    world.publish(story("b10", "SoftBank pledges more for robots"))
    said = why_says(telegram, chat, user, "/why http://news.test/b10", "held for your digest")
    assert "which comes" in said and "08:00 (UTC)" in said


def test_why_in_channels_and_groups_is_answered_to_the_presser_alone(world: World) -> None:
    telegram = world.telegram
    channel = telegram.channel(-2201, "Wire")
    group = telegram.group(-4201, "Desk", supergroup=True)
    viewer = telegram.user(9601, "Vi", language_code="en")
    telegram.set_member_status(-2201, 9601, "member")
    telegram.set_member_status(-4201, 9601, "member")
    say(telegram, channel, None, "/subscribe SoftBank")
    say(telegram, group, None, "/subscribe SoftBank")
    world.publish(NEW_SOFTBANK)
    for chat in (channel, group):
        alert = alert_for(telegram, chat["id"], "SoftBank pledges billions")
        before = len(telegram.messages(chat["id"]))
        for _ in range(3):
            query_id = telegram.press_button(chat, viewer, alert.message_id,
                                             buttons(alert)["❓ Why?"])
            wait_until(lambda q=query_id: bool(telegram.answered_callbacks(q)))
            answer = telegram.answered_callbacks(query_id)[0]
            assert answer.get("show_alert") is True, answer
            said = str(answer["text"])
            assert said.startswith("Why this alert") and "SoftBank" in said, said
            assert "<" not in said and len(said) <= 200, said
        # A last command is answered after the presses: none of them posted in the chat.
        say(telegram, chat, None, "/topics")
        assert len(telegram.messages(chat["id"])) == before + 1, chat["title"]
