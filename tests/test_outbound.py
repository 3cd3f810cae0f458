"""jobs.outbound: replies and alerts share one limiter, replies first (issue 24)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from telegram.error import RetryAfter

from jobs.outbound import FREE_BURST, Outbound


class Calls:
    """A callback PTB would hand the limiter: records which request went when."""

    def __init__(self) -> None:
        self.done: list[tuple[str, float]] = []

    def __call__(self, name: str) -> Any:
        async def callback() -> bool:
            self.done.append((name, time.monotonic()))
            return True
        return callback


async def request(limiter: Outbound, calls: Calls, name: str, chat_id: int = 1, *,
                  alert: bool = False, paid: bool = False) -> object:
    data: dict[str, Any] = {"chat_id": chat_id, "text": name}
    if paid:
        data["allow_paid_broadcast"] = True
    return await limiter.process_request(calls(name), (), {}, "sendMessage", data,
                                         {"alert": True} if alert else None)


@pytest.mark.asyncio
async def test_a_reply_goes_before_alerts_already_waiting() -> None:
    limiter, calls = Outbound(per_second=20), Calls()
    alerts = [asyncio.create_task(request(limiter, calls, f"alert {n}", 100 + n, alert=True))
              for n in range(6)]
    await asyncio.sleep(0.06)  # the first alert or two went; the rest wait
    await request(limiter, calls, "reply", 7)
    await asyncio.gather(*alerts)
    order = [name for name, _ in calls.done]
    assert order.index("reply") <= 2, order  # at most the slot under way was taken before it
    assert sorted(order) == sorted(["reply", *(f"alert {n}" for n in range(6))])
    times = [moment for _, moment in calls.done]
    for first, last in itertools.combinations(range(len(times)), 2):  # one bucket for all:
        assert last - first + 1 <= FREE_BURST + 20 * (times[last] - times[first]) + 0.1


@pytest.mark.asyncio
async def test_alone_alerts_take_every_slot_else_they_keep_to_their_share() -> None:
    for alone, reserved in ((True, 10.0), (False, 10.0)):
        limiter, calls = Outbound(lambda a=alone: a, per_second=40, reserved=reserved), Calls()
        started = time.monotonic()
        await asyncio.gather(*(request(limiter, calls, f"a{n}", 100 + n, alert=True)
                               for n in range(9)))
        took = time.monotonic() - started
        if alone:
            assert took < 8 / 40 + 0.1, took  # the whole 40/s
        else:
            assert took >= 8 / 10 - 0.02, took  # 10/s: the rest is left to other replicas


@pytest.mark.asyncio
async def test_alone_alerts_go_in_pairs_else_one_at_a_time() -> None:
    """A pair is one wake-up of the pace for two sends (jobs.outbound.ALERT_BATCH)."""
    for alone in (True, False):
        limiter, calls = Outbound(lambda a=alone: a, per_second=20, reserved=20), Calls()
        await asyncio.gather(*(request(limiter, calls, f"a{n}", 100 + n, alert=True)
                               for n in range(8)))
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(calls.done)]
        together = sum(gap < 0.02 for gap in gaps)
        assert together == (4 if alone else 0), (alone, gaps)
        assert sum(gaps) >= (8 - FREE_BURST) / 20 - 0.02, gaps  # still 20 a second


@pytest.mark.asyncio
async def test_a_lone_alert_does_not_wait_for_a_second_to_pair_with() -> None:
    limiter, calls = Outbound(per_second=2), Calls()
    await asyncio.gather(*(request(limiter, calls, f"a{n}", 100 + n, alert=True)
                           for n in range(2)))  # the bucket is left with a quarter of a slot
    await asyncio.sleep(0.6)  # over one slot (0.5 s), under two
    started = time.monotonic()
    await request(limiter, calls, "lone", 200, alert=True)
    assert time.monotonic() - started < 0.2  # waiting for a second slot would take 0.275 s


@pytest.mark.asyncio
async def test_paid_sends_have_their_own_bucket_and_requests_without_a_chat_none() -> None:
    limiter, calls = Outbound(per_second=5, paid_per_second=500), Calls()
    started = time.monotonic()
    await asyncio.gather(*(request(limiter, calls, f"p{n}", 100 + n, alert=True, paid=True)
                           for n in range(40)))
    assert time.monotonic() - started < 0.5  # 40 at 500/s, not at the free 5/s
    result = await limiter.process_request(calls("getMe"), (), {}, "getMe", {}, None)
    assert result is True and calls.done[-1][0] == "getMe"


def throttled_once(calls: Calls, name: str) -> Any:
    """A send Telegram throttles (429, retry after 0 s) the first time and accepts after."""
    tries = []

    async def callback() -> bool:
        tries.append(name)
        if len(tries) == 1:
            raise RetryAfter(0)
        calls.done.append((name, time.monotonic()))
        return True
    return callback


@pytest.mark.asyncio
async def test_a_throttled_reply_goes_again_but_an_alert_is_left_to_its_row() -> None:
    """A reply the chat's one message a second throttled (right after an alert) waits and goes
    again; an alert's 429 reaches jobs.deliver, which delays that row (no second try here)."""
    limiter, calls = Outbound(per_second=50), Calls()
    data = {"chat_id": 5, "text": "why"}
    assert await limiter.process_request(throttled_once(calls, "reply"), (), {}, "sendMessage",
                                         data, None) is True
    assert [name for name, _ in calls.done] == ["reply"]
    with pytest.raises(RetryAfter):
        await limiter.process_request(throttled_once(calls, "alert"), (), {}, "sendMessage",
                                      data, {"alert": True, "paced": True})
    assert [name for name, _ in calls.done] == ["reply"]


@pytest.mark.asyncio
async def test_a_reply_throttled_again_and_again_gives_up() -> None:
    limiter = Outbound(per_second=50)
    tries = 0

    async def always() -> bool:
        nonlocal tries
        tries += 1
        raise RetryAfter(0)

    with pytest.raises(RetryAfter):
        await limiter.process_request(always, (), {}, "sendMessage", {"chat_id": 5}, None)
    assert tries == 3

    async def long_wait() -> bool:
        nonlocal tries
        tries += 1
        raise RetryAfter(60)  # longer than a reader would wait: not retried

    tries = 0
    with pytest.raises(RetryAfter):
        await limiter.process_request(long_wait, (), {}, "sendMessage", {"chat_id": 5}, None)
    assert tries == 1
