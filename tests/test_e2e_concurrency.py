"""One user cannot stall every chat (issue 20 item 3): updates of different chats are handled
side by side, each chat's in order, and a user's commands are counted as they arrive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import BotProcess
from tests.fakes.telegram import BotApiEmulator
from tests.harness import TOKEN, World, env_for, say, wait_until

NOTICE = "faster than I can answer"
HELP = "/unsubscribe"  # a line of /help's answer
LIMIT = 5
# A group is answered once every 3.05 s: before the fix, a /help elsewhere waited behind the
# flooder's answers (57.6 s for 20 of them). 2 s is the bound, and ample for one reply.
ANSWER_WITHIN = 2.0
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel",
               "username": "Channel_Bot"}  # Telegram's stand-in sender for posts as a channel


def start_bot(
    tmp_path: Path, bot_process: type[BotProcess], telegram: BotApiEmulator
) -> BotProcess:
    env = env_for(telegram, f"sqlite:///{tmp_path / 't.db'}") | {
        "COMMANDS_PER_MINUTE": str(LIMIT), "SEARCH_PROVIDERS": ""}
    bot = bot_process(tmp_path, env).start()
    bot.wait_for_log("Tidings starting")
    return bot


def texts(telegram: BotApiEmulator, chat_id: int) -> list[str]:
    return [m.text for m in telegram.messages(chat_id)]


def test_a_group_flood_leaves_other_chats_answered_and_its_sender_told_once(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram:
        bot = start_bot(tmp_path, bot_process, telegram)
        group = telegram.group(-5001, "Busy", supergroup=True)
        flooder = telegram.user(8101, "Flo", language_code="en")
        member = telegram.user(8102, "Mem", language_code="en")
        reader = telegram.user(8103, "Rea", language_code="en")
        reader_chat = telegram.private_chat(reader)
        say(telegram, reader_chat, reader, "/start")  # the chat exists; its first reply is out

        for _ in range(30):
            telegram.send_text(group, flooder, "/help")
        wait_until(lambda: bool(telegram.messages(group["id"])))  # the flood is being answered
        telegram.send_text(reader_chat, reader, "/help")
        answer = telegram.wait_for_messages(reader_chat["id"], 2, timeout=ANSWER_WITHIN)[1]
        assert HELP in answer.text

        # The group's own order holds: a member's /start comes after the flooder's answers.
        telegram.send_text(group, member, "/start")
        wait_until(lambda: any("Welcome to Tidings" in t
                               for t in texts(telegram, group["id"])), timeout=60)
        said = texts(telegram, group["id"])
        assert sum(NOTICE in t for t in said) == 1, "one polite notice for the flooder"
        assert sum(HELP in t for t in said) == LIMIT, "the burst is answered, the rest is not"
        assert "Welcome to Tidings" in said[-1]
        assert telegram.rejected == [] and "Traceback" not in bot.log


def post_as_channel(telegram: BotApiEmulator, group: dict[str, Any], channel_id: int,
                    text: str) -> None:
    """A member writing as a channel they own: Telegram names the channel and a stand-in user."""
    message_id = 10_000 + len(telegram.calls)
    telegram.inject({"message": {
        "message_id": message_id, "date": 1_700_000_000, "chat": dict(group),
        "from": dict(CHANNEL_BOT),
        "sender_chat": {"id": channel_id, "type": "channel", "title": f"Mine {channel_id}"},
        "text": text, "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}]}})


def test_commands_sent_as_several_channels_share_one_allowance(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram:
        bot = start_bot(tmp_path, bot_process, telegram)
        groups = [telegram.group(-5100 - n, f"Room {n}", supergroup=True) for n in range(3)]
        for n in range(9):  # three channels in three groups, three commands each
            post_as_channel(telegram, groups[n % 3], -1009000 - n % 3, "/help")
        member = telegram.user(8201, "Mem", language_code="en")
        for group in groups:  # each group answers its member after the channel posts
            telegram.send_text(group, member, "/start")
        for group in groups:
            wait_until(lambda g=group: any("Welcome to Tidings" in t  # type: ignore[misc]
                                           for t in texts(telegram, g["id"])), timeout=60)
        # The notice answers an update refused at arrival, outside its group's queue, so it
        # may come after that group's later replies: wait for it too before counting.
        wait_until(lambda: any(NOTICE in t for group in groups
                               for t in texts(telegram, group["id"])), timeout=60)
        said = [t for group in groups for t in texts(telegram, group["id"])]
        assert sum(HELP in t for t in said) == LIMIT, said
        assert sum(NOTICE in t for t in said) == 1
        assert telegram.rejected == [] and "Traceback" not in bot.log


def test_charts_drawn_for_many_chats_leave_other_chats_answered(world: World) -> None:
    telegram = world.telegram
    users = [telegram.user(8300 + n, f"T{n}", language_code="en") for n in range(12)]
    chats = [telegram.private_chat(user) for user in users]
    assert "stories matched" in say(telegram, chats[0], users[0], "/trend Weather 90")
    reader = telegram.user(8399, "Rea", language_code="en")
    reader_chat = telegram.private_chat(reader)
    say(telegram, reader_chat, reader, "/start")

    for chat, user in zip(chats, users, strict=True):
        for _ in range(3):
            telegram.send_text(chat, user, "/trend Weather 90")
    wait_until(lambda: any(telegram.messages(chat["id"]) for chat in chats[1:]))  # drawing
    telegram.send_text(reader_chat, reader, "/help")
    answer = telegram.wait_for_messages(reader_chat["id"], 2, timeout=ANSWER_WITHIN)[1]
    assert HELP in answer.text
