"""handlers.lanes: each chat's updates in order, different chats side by side, counted on
arrival."""

from __future__ import annotations

import asyncio
from typing import Any

from telegram import Update

from handlers.lanes import ChatLanes
from handlers.ratelimit import RateLimit, Verdict, sender_of

CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel"}
ANONYMOUS_ADMIN = {"id": 1087968824, "is_bot": True, "first_name": "Group"}


def message(update_id: int, chat_id: int, text: str = "/help", **fields: Any) -> Update:
    chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup", "title": "x"}
    body: dict[str, Any] = {"message_id": update_id, "date": 0, "chat": chat, "text": text}
    if text.startswith("/"):
        body["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    body |= {"from": {"id": chat_id if chat_id > 0 else 7, "is_bot": False, "first_name": "A"}}
    return Update.de_json({"update_id": update_id, "message": body | fields}, None)


def test_each_chat_in_order_and_a_slow_chat_keeps_no_other_waiting() -> None:
    done: list[tuple[int, int]] = []
    slow = asyncio.Event()

    async def handle(chat_id: int, n: int) -> None:
        if chat_id < 0:
            await slow.wait()  # a group's paced reply
        done.append((chat_id, n))

    async def run() -> None:
        lanes = ChatLanes(RateLimit(0))
        updates = [(message(n, -100 if n % 2 else 5), n) for n in range(10)]
        tasks = [asyncio.create_task(lanes.process_update(update, handle(
            update.effective_chat.id, n))) for update, n in updates  # type: ignore[union-attr]
        ]
        await asyncio.wait_for(asyncio.gather(*tasks[::2]), 5)  # the private chat's, unblocked
        assert done == [(5, 0), (5, 2), (5, 4), (5, 6), (5, 8)]
        slow.set()
        await asyncio.gather(*tasks)
        assert done[5:] == [(-100, 1), (-100, 3), (-100, 5), (-100, 7), (-100, 9)]
        assert not lanes._lanes, "lanes are forgotten once empty"

    asyncio.run(run())


def test_commands_are_counted_as_they_arrive_not_when_handled() -> None:
    limit = RateLimit(3)
    verdicts = [limit.arrive(message(n, -100)) for n in range(5)]
    assert verdicts == [Verdict.ADMIT] * 3 + [Verdict.NOTICE, Verdict.SILENT]
    assert limit.arrive(message(9, -100, text="hello")) is Verdict.ADMIT, "only commands count"
    exempt = RateLimit(1, exempt=frozenset({7}))
    assert {exempt.arrive(message(n, -100)) for n in range(5)} == {Verdict.ADMIT}


def test_who_sends_a_message_posted_as_a_chat() -> None:
    own_channel = {"id": -1001, "type": "channel", "title": "Mine"}
    as_channel = message(1, -100, sender_chat=own_channel, **{"from": CHANNEL_BOT})
    other_channel = message(2, -100, sender_chat=own_channel | {"id": -1002},
                            **{"from": CHANNEL_BOT})
    assert sender_of(as_channel) == sender_of(other_channel) == CHANNEL_BOT["id"], \
        "a member's channels share the allowance of the one user Telegram names for them"
    group = {"id": -100, "type": "supergroup", "title": "x"}
    anonymous_admin = message(3, -100, sender_chat=group, **{"from": ANONYMOUS_ADMIN})
    assert sender_of(anonymous_admin) == -100, "a group's anonymous admins: the group's own"
    assert sender_of(message(4, -100)) == 7
