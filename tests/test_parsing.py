"""Feeds read in worker processes: the same drafts as in a thread, and a dying worker costs
only its own feed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from news.feeds import NotAFeed
from news.parsing import FeedReader, Killable, Overran, ParseTimeout, ReadFeed, read_feed
from tests.fakes.feeds import rss

URL = "http://example.test/feed.xml"
FEED = rss("News", [{"title": f"SoftBank story {n}", "link": f"/story/{n}?utm_source=x",
                     "guid": f"g{n}", "description": f"<p>Text of story {n}. More.</p>"}
                    for n in range(20)]).encode()
DIE = b"die"
HANG = b"hang"
SLOW = b"slow"


def read_or_die(body: bytes, url: str) -> ReadFeed:
    """A reader whose worker process exits on one body, as one killed by the OOM killer."""
    if body == DIE:
        os._exit(1)
    return read_feed(body, url)


def read_or_hang(body: bytes, url: str) -> ReadFeed:
    """A reader that never returns on one body, as a parser stuck in a pathological document."""
    while body == HANG:
        time.sleep(0.05)
    if body == SLOW:  # for threads, which cannot be killed: it ends, but late
        time.sleep(2)
    return read_feed(body, url)


def spin(seconds: float) -> int:
    """Busy for `seconds`, then this process's id."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return os.getpid()


@pytest.mark.asyncio
async def test_workers_read_what_a_thread_reads() -> None:
    pool, inline = FeedReader(2), FeedReader(0)
    try:
        in_pool, in_thread = await pool.read(FEED, URL), await inline.read(FEED, URL)
    finally:
        pool.close()
    assert in_pool == in_thread and len(in_pool.drafts) == 20
    first = in_pool.drafts[0]
    assert first.link == "http://example.test/story/0"
    assert first.signature == in_thread.drafts[0].signature
    assert "softbank" in first.signature.split()
    assert first.content_hash == in_thread.drafts[0].content_hash
    # derived in the worker and pickled along: the bot's process does not compute them again
    assert {"signature", "content_hash", "snippet"} <= vars(first).keys()


@pytest.mark.asyncio
async def test_a_feed_that_is_no_feed_fails_in_the_worker_as_in_a_thread() -> None:
    pool = FeedReader(1)
    try:
        with pytest.raises(NotAFeed):
            await pool.read(b"<html><body>No feed here</body></html>", URL)
        assert len((await pool.read(FEED, URL)).drafts) == 20
    finally:
        pool.close()


@pytest.mark.asyncio
async def test_a_dead_worker_fails_its_feed_and_the_next_read_works() -> None:
    pool = FeedReader(1, read=read_or_die)
    try:
        assert len((await pool.read(FEED, URL)).drafts) == 20
        with pytest.raises(NotAFeed, match="parser stopped"):
            await pool.read(DIE, URL)
        assert len((await pool.read(FEED, URL)).drafts) == 20
    finally:
        pool.close()


@pytest.mark.asyncio
async def test_warm_starts_every_worker_before_the_first_read() -> None:
    pool = FeedReader(2)
    try:
        pool.warm()
        for _ in range(100):
            if len(pool.worker_pids()) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(pool.worker_pids()) == 2
        assert len((await pool.read(FEED, URL)).drafts) == 20
    finally:
        pool.close()
    assert FeedReader(0).worker_pids() == []


ORPHAN = """
import asyncio, os, sys, time
from news.parsing import FeedReader

async def main() -> None:
    reader = FeedReader(2)
    reader.warm()
    while len(reader.worker_pids()) < 2:
        await asyncio.sleep(0.05)
    print(*reader.worker_pids(), flush=True)
    time.sleep(60)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_workers_exit_when_the_bot_is_killed() -> None:
    with subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True,
                          cwd=Path(__file__).resolve().parent.parent) as bot:
        try:
            assert bot.stdout is not None
            workers = [int(pid) for pid in bot.stdout.readline().split()]
            assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        finally:
            bot.kill()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "parser processes outlived a killed bot"


@pytest.mark.asyncio
async def test_a_parse_past_the_time_limit_kills_its_worker_and_fails_only_its_feed() -> None:
    reader = FeedReader(2, read=read_or_hang, time_limit=1.0)
    try:
        reader.warm()
        before = await _workers(reader.feeds, 2)
        assert len(before) == 2
        stuck = asyncio.create_task(reader.read(HANG, URL))
        # the other worker keeps reading while one is stuck
        others = [await reader.read(FEED, URL) for _ in range(3)]
        assert all(len(feed.drafts) == 20 for feed in others)
        with pytest.raises(ParseTimeout) as caught:
            await asyncio.wait_for(stuck, 30)  # a bound for a broken limit; it is 1 s
        assert caught.value.code == "parse_timeout"
        assert "over 1s; its worker was killed" in str(caught.value)  # the limit, not forever
        killed = before - await _workers(reader.feeds, 2)
        assert len(killed) == 1 and not any(_alive(pid) for pid in killed)
        # replaced: the pool is whole again and the next feed is read
        assert len((await reader.read(FEED, URL)).drafts) == 20
        assert len(await _workers(reader.feeds, 2)) == 2
    finally:
        reader.close()


async def _workers(pool: Killable, count: int) -> set[int]:
    """The pool's worker ids once it has `count` of them (a killed one is replaced shortly)."""
    for _ in range(200):
        if len(pool.worker_pids()) == count:
            break
        await asyncio.sleep(0.05)
    return set(pool.worker_pids())


@pytest.mark.asyncio
async def test_killable_pool_kills_only_the_call_that_overran() -> None:
    pool = Killable(2, 1.0)
    try:
        await pool.run(spin, 0.0)
        before = await _workers(pool, 2)
        assert len(before) == 2
        overrun = asyncio.create_task(pool.run(spin, 60.0))
        meanwhile = await pool.run(spin, 0.2)  # the other worker answers while one spins
        with pytest.raises(Overran):
            await overrun
        after = await _workers(pool, 2)
        killed = before - after
        assert len(killed) == 1 and meanwhile not in killed and _alive(meanwhile)
        assert not any(_alive(pid) for pid in killed)
        assert len(after) == 2 and await pool.run(spin, 0.0) in after
    finally:
        pool.close()
    assert not any(_alive(pid) for pid in before | after)


@pytest.mark.asyncio
async def test_in_a_thread_the_limit_stops_the_wait() -> None:
    """With no processes (PARSE_WORKERS=0) nothing can be killed, but nobody waits past it."""
    reader = FeedReader(0, read=read_or_hang, time_limit=0.3)
    with pytest.raises(ParseTimeout):
        await reader.read(SLOW, URL)
    assert len((await reader.read(FEED, URL)).drafts) == 20


GREEDY = b"greedy"


def read_or_grab(body: bytes, url: str) -> ReadFeed:
    """A reader that asks for 4 GiB on one body, as a parser expanding a bomb of a kind the
    scan does not know yet."""
    if body == GREEDY:
        grabbed = bytearray(4 << 30)
        return ReadFeed(str(len(grabbed)), 0, [])
    return read_feed(body, url)


def extract_or_grab(html: bytes, url: str) -> str | None:
    return str(len(bytearray(4 << 30))) if html == GREEDY else "text"


@pytest.mark.asyncio
async def test_a_worker_has_a_memory_ceiling_and_only_its_feed_fails() -> None:
    """The address-space limit set in each worker turns a runaway parse into a refusal of
    that feed with its own reason; the host never lends it the memory, and the next feed is
    read by the same pool."""
    pool = FeedReader(1, read_or_grab, extract=extract_or_grab)
    try:
        with pytest.raises(NotAFeed) as caught:
            await pool.read(GREEDY, URL)
        assert caught.value.code == "parse_memory"
        assert len((await pool.read(FEED, URL)).drafts) == 20
        assert await pool.extract(GREEDY, URL) is None
        assert await pool.extract(b"<p>page</p>", URL) == "text"
    finally:
        pool.close()
