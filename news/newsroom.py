"""What one running bot keeps between polls: its story index, matcher cache and database thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Engine

from news.matcher import MatcherCache
from news.stories import Clusters
from storage import locks

T = TypeVar("T")


class Newsroom:
    """What one running bot keeps between polls: the story index, the matcher cache and the
    thread its polls' database work runs on. bot.py builds one and services.Services holds
    it; a second process is just another owner, and the database keeps owners agreeing."""

    def __init__(self, engine: Engine, keys: locks.Keys | None = None) -> None:
        self.engine = engine
        self.keys = keys or locks.Keys.of(engine)  # its story lock's key among them
        self.clusters = Clusters()
        self.lock = threading.Lock()  # ingests run in worker threads and share the index
        self.matchers = MatcherCache()
        # With EMBEDDING_MODEL set, new stories are queued for their embedding, and matched
        # against the semantic topics once they have it (news.semantic_round).
        self.embedding = False
        # Polling's database work runs on one thread of its own: SQLite takes one writer at a
        # time, and writers racing from several threads (or from the event loop) sleep in its
        # busy handler while the loop stalls; queued on one thread they follow each other.
        # Polls pass it to storage.db.db and in_thread as their `thread`.
        self.database = ThreadPoolExecutor(1, thread_name_prefix="tidings-poll-db")

    def close(self) -> None:
        self.database.shutdown(wait=False, cancel_futures=True)
