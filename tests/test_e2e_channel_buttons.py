"""Channel keyboards are for the channel's admins (SPEC §1, §8); forged or oversize presses."""

from __future__ import annotations

from pathlib import Path

from news.topics import MAX_QUERY_CHARS
from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer
from tests.fakes.llm import LlmServer
from tests.fakes.telegram import BotApiEmulator
from tests.harness import TOKEN, World, alias_or_brief, buttons, say, start_world, wait_until

CHANNEL_ID = -2101
VIEWER_ID = 7801
OWNER_ID = 7802


def test_channel_viewer_presses_change_nothing(world: World) -> None:
    telegram = world.telegram
    channel = telegram.channel(CHANNEL_ID, "Tech Channel")
    viewer = telegram.user(VIEWER_ID, "Viewer", language_code="en")
    owner = telegram.user(OWNER_ID, "Owner", language_code="en")
    telegram.set_member_status(CHANNEL_ID, OWNER_ID, "creator")
    assert "Following" in say(telegram, channel, None, "/subscribe SoftBank")
    say(telegram, channel, None, "/settings")
    settings = telegram.messages(CHANNEL_ID)[-1]
    say(telegram, channel, None, "/unsubscribe")
    topics_keyboard = telegram.messages(CHANNEL_ID)[-1]
    say(telegram, channel, None, "/lang")
    lang_keyboard = telegram.messages(CHANNEL_ID)[-1]
    sent_before = len(telegram.messages(CHANNEL_ID))

    presses = [(settings, data) for data in buttons(settings).values()]
    presses += [(topics_keyboard, data) for data in buttons(topics_keyboard).values()]
    presses += [(lang_keyboard, buttons(lang_keyboard)["Deutsch"])]
    presses += [(settings, "unsub:1"), (settings, "mode:digest"), (settings, "lang:fr")]
    for message, data in presses:
        answer = world.press(channel, viewer, message, data)
        assert "only this channel's admins" in answer, (data, answer)

    assert len(telegram.messages(CHANNEL_ID)) == sent_before, "no message sent or edited"
    assert all(m.edits == 0 for m in telegram.messages(CHANNEL_ID)), "no keyboard was edited"
    assert "1. SoftBank" in say(telegram, channel, None, "/topics"), "the topic survived"
    assert "Every story at once" in say(telegram, channel, None, "/settings"), "mode unchanged"

    (unsubscribe,) = buttons(topics_keyboard).values()
    answer = world.press(channel, owner, topics_keyboard, unsubscribe)
    assert "only this channel's admins" not in answer, "the channel's creator may press"
    assert "follows no topics yet" in say(telegram, channel, None, "/topics")


def test_forged_callback_data_gets_a_short_answer(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(7803, "Forger", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe SoftBank")
    message = telegram.messages(chat["id"])[-1]
    for data in ("unsub:" + "9" * 60, "sug:" + "9" * 30, "unsub:-3", "unsub:0", "nope:1"):
        assert "out of date" in world.press(chat, user, message, data), data
    assert "1. SoftBank" in say(telegram, chat, user, "/topics")


def test_alias_button_refuses_to_pass_the_query_cap(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds, LlmServer() as llm:
        llm.responder = alias_or_brief
        world = start_world(tmp_path, bot_process, telegram, feeds, {
            "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": llm.base_url})
        user = telegram.user(7804, "Long", language_code="en")
        chat = telegram.private_chat(user)
        query = "SoftBank " + " ".join(f"-w{n:03d}" for n in range(48))  # 296 characters
        assert len(query) <= MAX_QUERY_CHARS < len(query) + len(" OR 软银")
        say(telegram, chat, user, f"/subscribe {query}")
        wait_until(lambda: telegram.messages(chat["id"])[-1].reply_markup is not None)
        offer = telegram.messages(chat["id"])[-1]
        answer = world.press(chat, user, offer, buttons(offer)["➕ 软银"])
        assert "300 characters" in answer
        topics = say(telegram, chat, user, "/topics")
        assert "软银" not in topics and "w047" in topics, "the topic is unchanged and still listed"
