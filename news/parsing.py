"""bytes -> drafts in worker processes.

Parsing and normalizing are the CPU-heavy part of a poll (a 50-entry feed costs feedparser
about 7 ms): in the bot's own process they would share one GIL with HTTP, the database and the
story index, and a first poll of a thousand feeds would run on one core. A pool of processes
(forkserver: forking a process that runs threads is unsafe) parses while the event loop keeps
fetching; a draft's signature, content hash and snippet test are derived there and pickled
along with it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

from news.feeds import NotAFeed, ParsedFeed, parse_feed
from news.items import ItemDraft, normalize
from news.stories import boilerplate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadFeed:
    """What polling needs of a feed: its entries as drafts, and the ttl it asks for."""

    title: str
    ttl_seconds: int
    drafts: list[ItemDraft]


def drafts_of(feed: ParsedFeed, url: str) -> list[ItemDraft]:
    """The feed's entries as drafts, each told which leads recur across the feed (their story
    signatures skip those: news.stories.boilerplate)."""
    drafts = [draft for entry in feed.entries if (draft := normalize(entry, url)) is not None]
    skip = boilerplate((draft.summary for draft in drafts), (draft.title for draft in drafts))
    return [replace(draft, boilerplate=skip) for draft in drafts] if skip else drafts


def read_feed(body: bytes, url: str) -> ReadFeed:
    """Parse and normalize; runs in a worker process, so it takes and returns plain data."""
    feed = parse_feed(body)
    drafts = drafts_of(feed, url)
    for draft in drafts:
        _ = draft.signature, draft.content_hash, draft.snippet  # here, off the bot's process
    return ReadFeed(feed.title, feed.ttl_seconds, drafts)


Reader = Callable[[bytes, str], ReadFeed]
PARENT_CHECK_SECONDS = 1.0
WARM_UP = b'<rss version="2.0"><channel><item><title>warm</title></item></channel></rss>'


def _exit_with(parent_pid: int) -> None:
    """Worker initializer. A worker must not outlive the bot: it holds its forkserver alive
    and waits forever on a queue whose other end died with a killed bot, so it watches."""
    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # alive, and another user's: only a reused pid does that
                os._exit(0)

    threading.Thread(target=watch, name="tidings-parent-watch", daemon=True).start()


def default_workers() -> int:
    """One per core, at most four: parsing beyond that waits on the network anyway."""
    return min(4, os.cpu_count() or 1)


class FeedReader:
    """Reads feeds in a pool of `workers` processes, or in a thread when `workers` is 0.

    The pool starts on the first read. A worker that dies (out of memory, a crash in a C
    extension) breaks the pool: that feed fails with a clear error and the next read starts a
    new pool, so one hostile feed never stops polling.
    """

    def __init__(self, workers: int = 0, read: Reader = read_feed) -> None:
        self.workers = workers
        self.read_function = read
        self.pool: ProcessPoolExecutor | None = None

    async def read(self, body: bytes, url: str) -> ReadFeed:
        if self.workers <= 0:
            return await asyncio.to_thread(self.read_function, body, url)
        pool = self._started()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                pool, self.read_function, body, url)
        except BrokenProcessPool as exc:
            log.warning("a feed parser process died reading %s; starting new ones", url)
            self._discard(pool)
            raise NotAFeed("the parser stopped on this feed") from exc

    def warm(self) -> None:
        """Start the processes now, at start-up, so the first poll does not wait for them."""
        if self.workers > 0:
            pool = self._started()
            for _ in range(self.workers):
                pool.submit(read_feed, WARM_UP, "")

    def _started(self) -> ProcessPoolExecutor:
        if self.pool is None:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context(
                "forkserver" if "forkserver" in methods else "spawn")
            context.set_forkserver_preload([__name__])
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                            initializer=_exit_with, initargs=(os.getpid(),))
        return self.pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        if self.pool is pool:
            self.pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self.pool is not None:
            self._discard(self.pool)

    def worker_pids(self) -> list[int]:
        """For benchmarks that account for the workers' memory."""
        processes = getattr(self.pool, "_processes", None) or {}
        return list(processes)
