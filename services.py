"""What handlers and jobs share, built once by bot.py and kept in `application.bot_data`."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import httpx
from sqlalchemy import Engine

from locales import Catalog
from news.aliases import AliasFinder
from news.briefs import BriefWriter
from news.embeddings import Embedder
from news.fetch import FetchPolicy
from news.newsroom import Newsroom
from news.packs import Pack
from news.parsing import FeedReader
from news.search.sweep import Searching
from news.semantic_round import SemanticCache
from news.websub import PushSettings
from storage.locks import Role

if TYPE_CHECKING:
    from handlers.ratelimit import CommandLimiter

KEY = "services"
T = TypeVar("T")
PRUNE_EVERY_SECONDS = 600.0  # how often a process prunes old subscription tombstones


@dataclass
class Every:
    """A chore a process does at most once a period, the first time at once."""

    seconds: float
    last: float = -math.inf

    def due(self, now: float | None = None) -> bool:
        """True (and the period starts again) when the chore is due."""
        now = time.monotonic() if now is None else now
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


@dataclass(frozen=True)
class Services:
    engine: Engine
    newsroom: Newsroom  # the story index and matcher cache this process keeps (news.newsroom)
    sending: Role  # only its holder sends alerts and digests (jobs.deliver)
    http: httpx.AsyncClient
    fetch_policy: FetchPolicy
    writer: BriefWriter
    aliases: AliasFinder
    catalog: Catalog
    admin_ids: frozenset[int]
    default_language: str
    poll_interval_seconds: int
    daily_token_budget: int = 0
    delivery_retention: timedelta | None = None  # None: deliveries are kept for ever
    full_text: bool = True
    heartbeat_file: Path | None = None
    reader: FeedReader = field(default_factory=FeedReader)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    max_topics_per_chat: int = 50  # 0: no cap
    searching: Searching | None = None  # the news-search providers (jobs.search); None: off
    # Semantic topics: the embeddings endpoint (offline without EMBEDDING_MODEL) and the
    # matcher of their meanings (news.semantic_round).
    embedder: Embedder = field(default_factory=lambda: Embedder(None, ""))
    semantic: SemanticCache = field(default_factory=SemanticCache)
    semantic_threshold: float = 0.5
    packs: tuple[Pack, ...] = ()  # the starter packs /addsource pack offers (news.packs)
    # Paid broadcast (jobs.paid): Stars a day (0: off), for fan-outs longer than the seconds.
    paid_stars_per_day: int = 0
    paid_after_seconds: float = 60.0
    asks: CommandLimiter | None = None  # /ask questions per user and hour (ASKS_PER_HOUR)
    push: PushSettings | None = None  # WebSub (news.websub); None: long polling, or off
    # Tombstones of removed subscriptions older than a day are deleted after a poll pass
    # (jobs.poll, storage.subscriptions.prune_removals), by every replica in turn.
    pruning: Every = field(default_factory=lambda: Every(PRUNE_EVERY_SECONDS))
    # Charts are drawn one at a time (matplotlib's font cache is shared) on a thread of their
    # own: waiting their turn in the shared pool, they would hold the threads every
    # database call needs, and a few /trend would stall every chat.
    charts: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="charts"))

    async def draw(self, work: Callable[[], T]) -> T:
        """`work` (a chart) on the charts thread, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.charts, work)
