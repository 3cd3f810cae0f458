"""bytes -> drafts in worker processes that are killed when they overrun.

Parsing and normalizing are the CPU-heavy part of a poll (a 50-entry feed costs feedparser
about 7 ms): in the bot's own process they would share one GIL with HTTP, the database and the
story index, and a first poll of a thousand feeds would run on one core. A pool of processes
(forkserver: forking a process that runs threads is unsafe) parses while the event loop keeps
fetching; a draft's signature, content hash and snippet test are derived there and pickled
along with it. Feeds and article pages are hostile input, so every call has a hard time limit:
a worker that overruns is killed and replaced (pebble's ProcessPool), and only its own feed or
page fails. Each worker also has an address-space ceiling (WORKER_MEMORY): whatever trick a
feed finds next to make a parser expand it, it costs one worker a MemoryError, not the host
its memory. Article pages have a pool of their own, so polls never wait behind extraction.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pebble import CONSTS, ProcessExpired, ProcessPool

from news.feeds import NotAFeed, ParsedFeed, discover_feed_links, parse_feed
from news.items import ItemDraft, normalize
from news.stories import boilerplate

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ReadFeed:
    """What polling needs of a feed: its entries as drafts, and the ttl it asks for."""

    title: str
    ttl_seconds: int
    drafts: list[ItemDraft]
    hubs: tuple[str, ...] = ()  # WebSub: the hubs the feed names, and its own URL
    self_url: str = ""


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
    return ReadFeed(feed.title, feed.ttl_seconds, drafts, feed.hubs, feed.self_url)


def extract_text(html: bytes, url: str) -> str | None:
    """news.article.extract, imported on first use. trafilatura is half of what the parser
    imports and feeds never need it: the forkserver preloads this module for every worker, and
    only the article workers import news.article (at their start, see FeedReader)."""
    from news.article import extract

    return extract(html, url)


Reader = Callable[[bytes, str], ReadFeed]
Extractor = Callable[[bytes, str], str | None]
PARENT_CHECK_SECONDS = 1.0
WARM_UP = b'<rss version="2.0"><channel><item><title>warm</title></item></channel></rss>'
PARSE_SECONDS = 15.0  # a 10 MB feed parses in a few seconds; past this it is hostile or broken
EXTRACT_SECONDS = 5.0  # trafilatura reads a normal 2 MB page in well under a second
# A worker's address space: about 250 MB once its modules are loaded, and a 10 MB feed or page
# needs a few hundred more at most. Past this it is hostile or broken.
WORKER_MEMORY = 1 << 30
# How often a pool's two manager threads wake to look for overrun calls and dead workers
# (pebble's default: ten times a second each, a fifth of an idle bot's CPU). A time limit is
# now kept to within half a second, and a pool takes up to that long to stop; results still
# arrive the moment they are ready.
POOL_CHECK_SECONDS = 0.5
CONSTS.sleep_unit = POOL_CHECK_SECONDS


class ParseTimeout(NotAFeed):
    """A feed whose parse ran past the time limit; its worker process was killed."""

    code = "parse_timeout"


class ParseOutOfMemory(NotAFeed):
    """A feed whose parse ran into its worker's memory ceiling (WORKER_MEMORY)."""

    code = "parse_memory"


class Overran(Exception):
    """A call ran past its pool's time limit (in a process: the process was killed)."""


class OutOfMemory(Exception):
    """A call in a process ran into its address-space ceiling (MemoryError there)."""


class WorkerLost(Exception):
    """The worker process died during the call (out of memory, a crash in a C extension)."""


def _start_worker(parent_pid: int, modules: Sequence[str], memory: int = WORKER_MEMORY) -> None:
    """Worker initializer: import what the calls need before the time limit starts counting,
    cap the address space, and exit when the bot is gone. A worker must not outlive the bot:
    it holds its forkserver alive and waits forever on a pipe whose other end died with a
    killed bot, so it watches."""
    for module in modules:
        importlib.import_module(module)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS,
                           (memory if hard == resource.RLIM_INFINITY else min(memory, hard), hard))

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


class Killable:
    """Runs calls in `workers` processes under a hard time limit, or in threads when `workers`
    is 0 (tests, and machines where processes cost too much: there the limit only stops the
    wait, as a thread cannot be killed).

    The processes start on the first call. One that overruns is killed and replaced, and its
    call raises Overran; one that dies raises WorkerLost; the other calls go on.
    """

    def __init__(self, workers: int, time_limit: float, *, modules: Sequence[str] = (),
                 threads: Executor | None = None, memory: int = WORKER_MEMORY) -> None:
        self.workers = workers
        self.time_limit = time_limit
        self.memory = memory  # each process's address-space ceiling; 0: none
        self.modules = tuple(modules)
        self.threads = threads  # None: asyncio's default executor
        self.pool: ProcessPool | None = None
        self.lock = threading.Lock()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self.workers <= 0:
            loop = asyncio.get_running_loop()
            try:
                return await asyncio.wait_for(
                    loop.run_in_executor(self.threads, function, *args), self.time_limit)
            except TimeoutError as exc:
                raise Overran(f"over {self.time_limit:g}s") from exc
        pool = self._started()
        try:
            future = pool.schedule(function, args, timeout=self.time_limit)
        except RuntimeError:  # the pool broke since it was started: a new one takes the call
            self._discard(pool)
            pool = self._started()
            future = pool.schedule(function, args, timeout=self.time_limit)
        try:
            return await asyncio.wrap_future(future)
        except TimeoutError as exc:
            if exc.args[:1] != ("Task timeout",):  # the function's own, not pebble's kill
                raise
            raise Overran(f"over {self.time_limit:g}s; its worker was killed") from exc
        except MemoryError as exc:  # the worker's ceiling: it lives on, and so does the pool
            raise OutOfMemory(f"out of memory (ceiling {self.memory >> 20} MiB)") from exc
        except ProcessExpired as exc:
            raise WorkerLost(str(exc)) from exc
        except BrokenProcessPool as exc:
            self._discard(pool)
            raise WorkerLost(str(exc)) from exc

    def submit(self, function: Callable[..., object], *args: Any) -> None:
        """Start the processes now and give each a first call (warm-up), not waiting for it."""
        if self.workers > 0:
            self._started().schedule(function, args, timeout=self.time_limit)

    def _started(self) -> ProcessPool:
        with self.lock:
            if self.pool is None:
                methods = multiprocessing.get_all_start_methods()
                context = multiprocessing.get_context(
                    "forkserver" if "forkserver" in methods else "spawn")
                if "forkserver" in methods:
                    context.set_forkserver_preload([__name__])
                self.pool = ProcessPool(self.workers, initializer=_start_worker,
                                        initargs=(os.getpid(), self.modules, self.memory),
                                        context=context)
            return self.pool

    def _discard(self, pool: ProcessPool) -> None:
        with self.lock:
            if self.pool is pool:
                self.pool = None
        pool.stop()
        threading.Thread(target=pool.join, name="tidings-pool-stop", daemon=True).start()

    def close(self) -> None:
        pool = self.stop()
        if pool is not None:
            pool.join()

    def stop(self) -> ProcessPool | None:
        """Stop the pool without waiting (join it after): pools stopped together wait out
        their managers' checks together."""
        with self.lock:
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.stop()
        return pool

    def worker_pids(self) -> list[int]:
        """For benchmarks and tests that look at the processes themselves."""
        manager = getattr(self.pool, "_pool_manager", None)
        workers = getattr(getattr(manager, "worker_manager", None), "workers", None) or {}
        return list(workers)


EXTRACT_THREADS = 2  # without processes, a reader extracts article pages on this many threads


class FeedReader:
    """Reads feeds, and extracts article pages, in killable worker processes (Killable): a
    pool of `workers` for feeds, and a smaller one for article pages started on first use.

    A feed whose parse overruns `time_limit` fails with ParseTimeout; one whose worker dies
    fails with NotAFeed; either way the next read finds a working pool.
    """

    def __init__(self, workers: int = 0, read: Reader = read_feed, *,
                 extract: Extractor = extract_text, time_limit: float = PARSE_SECONDS,
                 extract_limit: float = EXTRACT_SECONDS) -> None:
        self.workers = workers
        self.read_function = read
        self.extract_function = extract
        self.feeds = Killable(workers, time_limit)
        # extraction never takes a thread that rendering or a preview is waiting for: without
        # processes, it has threads of this reader's own
        self.article_threads = None if workers > 0 else ThreadPoolExecutor(
            EXTRACT_THREADS, thread_name_prefix="tidings-extract")
        self.articles = Killable(max(1, min(2, workers)) if workers > 0 else 0, extract_limit,
                                 modules=("news.article",), threads=self.article_threads)

    async def read(self, body: bytes, url: str) -> ReadFeed:
        """Entries as drafts, for polling."""
        return await self._feed_call(self.read_function, body, url)

    async def parse(self, body: bytes) -> ParsedFeed:
        """The feed as feedparser entries, for /addsource and /importopml."""
        return await self._feed_call(parse_feed, body)

    async def discover(self, html: bytes, page_url: str) -> list[str]:
        """The feed links an HTML page advertises; hostile pages are parsed off the loop too."""
        try:
            return await self._feed_call(discover_feed_links, html, page_url)
        except NotAFeed:
            return []

    async def extract(self, html: bytes, url: str) -> str | None:
        """An article page's main text (news.article.extract); None when it overran or died."""
        try:
            return await self.articles.run(self.extract_function, html, url)
        except (Overran, OutOfMemory, WorkerLost) as exc:
            log.info("article extraction stopped for %s: %s", url, exc)
            return None

    async def _feed_call(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return await self.feeds.run(function, *args)
        except Overran as exc:
            log.warning("parsing a feed ran past %gs: %s", self.feeds.time_limit, exc)
            raise ParseTimeout(str(exc)) from exc
        except OutOfMemory as exc:
            log.warning("parsing a feed ran out of memory: %s", exc)
            raise ParseOutOfMemory(str(exc)) from exc
        except WorkerLost as exc:
            log.warning("a feed parser process died (%s); it is replaced", exc)
            raise NotAFeed("the parser stopped on this feed") from exc

    def warm(self) -> None:
        """Start the processes now, at start-up, so the first poll does not wait for them."""
        for _ in range(self.workers):
            self.feeds.submit(read_feed, WARM_UP, "")

    def close(self) -> None:
        for pool in (self.feeds.stop(), self.articles.stop()):
            if pool is not None:
                pool.join()
        if self.article_threads is not None:
            self.article_threads.shutdown(wait=False, cancel_futures=True)

    def worker_pids(self) -> list[int]:
        """The feed parsers' processes, for benchmarks that account for their memory."""
        return self.feeds.worker_pids()

