"""news.workers.Batched: calls that arrive during a run share the next one, and each caller
hears its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from news.workers import Batched, drain


class Recorder:
    """A run that takes a while, answers each item doubled, and fails items it is told to."""

    def __init__(self, failing: frozenset[int] = frozenset(), broken: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.failing = failing
        self.broken = broken
        self.release = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        await self.release.wait()
        if self.broken:
            raise RuntimeError("the run itself failed")
        return [ValueError(item) if item in self.failing else item * 2 for item in items]


async def calling(batched: Batched[int, int], *items: int) -> list[asyncio.Task[int]]:
    """Call with each item in a task of its own, and let the calls reach their await (in the
    order they were made)."""
    tasks = [asyncio.create_task(batched(item)) for item in items]
    for _ in range(3):
        await asyncio.sleep(0)
    return tasks


@pytest.mark.asyncio
async def test_calls_made_during_a_run_share_the_next_run_up_to_the_limit() -> None:
    recorder = Recorder()
    batched = Batched(recorder, limit=4)
    [first] = await calling(batched, 0)
    assert recorder.batches == [[0]], "the first call runs at once, alone"
    later = await calling(batched, *range(1, 7))
    recorder.release.set()
    assert await asyncio.gather(first, *later) == [0, 2, 4, 6, 8, 10, 12]
    assert recorder.batches == [[0], [1, 2, 3, 4], [5, 6]]


@pytest.mark.asyncio
async def test_an_item_that_fails_fails_only_its_own_caller() -> None:
    recorder = Recorder(failing=frozenset({2}))
    recorder.release.set()
    batched = Batched(recorder, limit=10)
    outcomes = await asyncio.gather(*(batched(n) for n in range(4)), return_exceptions=True)
    assert outcomes[:2] == [0, 2] and outcomes[3] == 6
    assert isinstance(outcomes[2], ValueError)


@pytest.mark.asyncio
async def test_a_run_that_fails_fails_its_callers_and_the_next_run_goes_on() -> None:
    recorder = Recorder(broken=True)
    recorder.release.set()
    batched = Batched(recorder, limit=10)
    outcomes = await asyncio.gather(batched(1), batched(2), return_exceptions=True)
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    recorder.broken = False
    assert await batched(3) == 6


@pytest.mark.asyncio
async def test_a_caller_cancelled_before_its_run_is_left_out_and_the_others_answered() -> None:
    recorder = Recorder()
    batched = Batched(recorder, limit=10)
    [first] = await calling(batched, 1)
    gone, kept = await calling(batched, 2, 3)
    gone.cancel()
    recorder.release.set()
    assert await first == 2 and await kept == 6
    assert gone.cancelled()
    assert recorder.batches == [[1], [3]]


@pytest.mark.asyncio
async def test_close_cancels_the_callers_of_the_run_under_way_and_of_the_next() -> None:
    recorder = Recorder()
    batched = Batched(recorder, limit=10)
    [running] = await calling(batched, 1)
    [waiting] = await calling(batched, 2)
    await batched.close()
    assert running.cancelled() and waiting.cancelled()
    assert recorder.batches == [[1]] and batched.pending == []
    recorder.release.set()
    assert await batched(5) == 10, "a later call starts a new run"


@pytest.mark.asyncio
async def test_a_run_that_answers_the_wrong_number_of_items_fails_its_callers() -> None:
    async def short(items: list[int]) -> list[int | Exception]:
        return items[1:]

    batched = Batched(short, limit=10)
    outcomes = await asyncio.gather(batched(1), batched(2), return_exceptions=True)
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)


@pytest.mark.asyncio
async def test_drain_starts_no_worker_for_a_claim_that_finds_nothing() -> None:
    """The jobs drain every tick and most ticks claim nothing: no task is started for them."""
    tasks_seen: list[int] = []

    async def claim() -> list[int]:
        tasks_seen.append(len(asyncio.all_tasks()))
        return []

    async def handle(item: int) -> None:
        raise AssertionError("nothing was claimed")

    before = len(asyncio.all_tasks())
    await drain(claim, handle, workers=32, queued=64, name=str)
    assert tasks_seen == [before]


@pytest.mark.asyncio
async def test_drain_starts_workers_as_items_wait_up_to_its_limit() -> None:
    """One item at a time takes one worker; a batch waiting takes as many as allowed, and every
    item is handled once."""
    batches = [[1], [2], list(range(10, 30)), []]
    running, peak, handled = 0, 0, []
    release = asyncio.Event()

    async def claim() -> list[int]:
        await asyncio.sleep(0.01)  # the single items finish before the next claim
        if len(batches) == 2:
            release.set()
        return batches.pop(0)

    async def handle(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if item >= 10:
            await release.wait()
            await asyncio.sleep(0.01)
        handled.append(item)
        running -= 1

    before = len(asyncio.all_tasks())
    workers: list[int] = []

    async def counting_claim() -> list[int]:
        workers.append(len(asyncio.all_tasks()) - before)
        return await claim()

    await drain(counting_claim, handle, workers=5, queued=8, name=str)
    assert sorted(handled) == [1, 2, *range(10, 30)]
    assert workers[:3] == [0, 1, 1]  # the second single item reused the idle worker
    assert peak == 5


@pytest.mark.asyncio
async def test_drain_given_the_claims_limit_stops_after_a_short_claim() -> None:
    """A claim of everything due that fell short of its limit was the last: no empty claim
    follows it (an idle poll tick's thread hop). A full claim is followed by another."""
    def claims(batches: list[list[int]]) -> tuple[Callable[[], Awaitable[list[int]]], list[int]]:
        calls: list[int] = []

        async def claim() -> list[int]:
            calls.append(len(batches))
            return batches.pop(0) if batches else []
        return claim, calls

    handled: list[int] = []

    async def handle(item: int) -> None:
        handled.append(item)

    short, calls = claims([[1, 2], [3]])
    await drain(short, handle, workers=4, queued=4, limit=3, name=str)
    assert (handled, len(calls)) == ([1, 2], 1)

    handled.clear()
    full, calls = claims([[1, 2, 3], [4]])
    await drain(full, handle, workers=4, queued=4, limit=3, name=str)
    assert (sorted(handled), len(calls)) == ([1, 2, 3, 4], 2)

    handled.clear()
    unlimited, calls = claims([[1], [2]])
    await drain(unlimited, handle, workers=4, queued=4, name=str)
    assert (sorted(handled), len(calls)) == ([1, 2], 3)
