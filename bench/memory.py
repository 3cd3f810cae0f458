"""Where a replica's memory goes as it ingests its feeds: the polling process, without HTTP.

Run from the repository root (about 4 minutes on 2 shared cores; --feeds 1000: 20 s):

    .venv/bin/python bench/memory.py                  # 10,000 feeds x 20 entries
    .venv/bin/python bench/memory.py --feeds 2000 --top 25

The entries of bench/capacity.py's feeds (its generator and seed) become drafts as a parser
process makes them (news.parsing.drafts_of, signatures derived) and are stored through
news.ingest.ingest_each over one Newsroom on SQLite, on its database thread, in batches of
poll_due's concurrency: a warm-up cycle, then 20% of the feeds with 2 new entries. Reports the
story index's own size (bytes a story), and the process's PSS growth (/proc/self/smaps_rollup)
before and after news.heap.release, the baseline in the same run; with --top, the largest live
allocations by file:line (tracemalloc, several times slower). bench/capacity.py measures the
whole replica, parser processes included, against the target (300 MiB PSS per 10,000 feeds).
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.capacity import SEED, Feeds, prepare  # noqa: E402
from news import heap  # noqa: E402
from news.ingest import Outcome, ingest_each  # noqa: E402
from news.items import ItemDraft  # noqa: E402
from news.newsroom import Newsroom  # noqa: E402
from news.parsing import drafts_of  # noqa: E402
from news.poll import POLL_CONCURRENCY  # noqa: E402
from news.stories import StoryIndex  # noqa: E402
from storage.db import make_engine, session_scope  # noqa: E402
from storage.sources import DueSource, all_sources  # noqa: E402


def smaps() -> dict[str, float]:
    """RSS and PSS of this process, MiB."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    return {"rss": round(fields["Rss"], 1), "pss": round(fields["Pss"], 1)}


def index_mib(index: StoryIndex) -> float:
    """What the story index's own structures hold, MiB (keys and postings included)."""
    size = sum(column.nbytes for column in vars(index).values() if isinstance(column, np.ndarray))
    size += sum(sys.getsizeof(value) for value in vars(index).values())
    size += sum(map(sys.getsizeof, index.by_token.values()))
    size += sum(map(sys.getsizeof, index.slot_of)) + sum(map(sys.getsizeof, index.tokens))
    return size / 2**20


class Entries(Feeds):
    """The feeds' entries without their rendered bodies, which only the server needs."""

    def render(self, index: int, when: datetime) -> None:
        pass


class Parsed:
    """A feedparser-like result of one feed's entries (what normalize reads)."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = [{"title": e["title"], "link": e["link"], "id": e["guid"],
                         "summary": e["description"],
                         "published_parsed": e["pub_date"].utctimetuple()} for e in entries]


def drafts(feeds: Feeds, index: int, url: str) -> list[ItemDraft]:
    out = drafts_of(Parsed(feeds.entries[index]), url)  # type: ignore[arg-type]
    for draft in out:
        _ = draft.signature, draft.content_hash, draft.snippet
    return out


def cycle(room: Newsroom, feeds: Feeds, rows: list[DueSource],
          which: list[int], batch: int) -> int:
    new = 0
    for start in range(0, len(which), batch):
        outcomes = [Outcome(rows[i], drafts(feeds, i, rows[i].url))
                    for i in which[start:start + batch]]
        new += sum(n for n in ingest_each(room, outcomes) if isinstance(n, int))
    return new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--topics", type=int, default=1_000)
    parser.add_argument("--top", type=int, default=0, help="tracemalloc: largest N lines")
    args = parser.parse_args()
    started = time.perf_counter()
    feeds = Entries(args.feeds, args.entries)
    print(f"feeds generated, {time.perf_counter() - started:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="tidings-memory-") as workdir:
        url = f"sqlite:///{Path(workdir) / 'bench.db'}"
        prepare(url, 8000, args.feeds, args.topics).dispose()
        room = Newsroom(make_engine(url))
        with session_scope(room.engine) as session:
            rows = [DueSource(s.id, s.url, s.name, s.etag, s.last_modified)  # type: ignore[arg-type]
                    for s in all_sources(session=session)]
        gc.collect()
        before = smaps()
        if args.top:
            tracemalloc.start(1)
        t0 = time.perf_counter()
        batch = POLL_CONCURRENCY
        # on the Newsroom's database thread, as poll_due stores: a glibc arena of its own
        new = room.database.submit(cycle, room, feeds, rows, list(range(args.feeds)),
                                   batch).result()
        changed = feeds.advance(1, 0.2, 2)
        picks = sorted(random.Random(SEED + 101).sample(range(args.feeds), changed))
        new += room.database.submit(cycle, room, feeds, rows, picks, batch).result()
        wall = time.perf_counter() - t0
        gc.collect()
        after = smaps()
        held = len(room.clusters.index.slot_of)
        index = index_mib(room.clusters.index)
        print(f"{args.feeds:,} feeds x {args.entries} entries, then {changed:,} with 2 new: "
              f"{new:,} stories, {wall:.0f} s")
        print(f"story index: {held:,} stories, {index:.1f} MiB "
              f"({index * 2**20 / max(1, held):.0f} bytes a story)")
        t1 = time.perf_counter()
        heap.release()
        took = time.perf_counter() - t1
        released = smaps()
        for label, now in (("before news.heap.release", after),
                           ("after news.heap.release", released)):
            print(f"{label:<26} RSS {now['rss']:5.0f} MiB, PSS {now['pss']:5.0f} MiB: "
                  f"+{now['pss'] - before['pss']:.0f} MiB PSS over the start "
                  f"({before['pss']:.0f}, the entries included)")
        kept = (released["pss"] - before["pss"]) / max(1.0, after["pss"] - before["pss"])
        print(f"news.heap.release kept {kept:.2f}x of the growth, in {took * 1000:.0f} ms"
              + (" (tracemalloc's own records included)" if args.top else ""))
        if args.top:
            snapshot = tracemalloc.take_snapshot()
            stats = snapshot.statistics("lineno")
            total = sum(s.size for s in stats)
            print(f"tracemalloc: {total / 2**20:.1f} MiB live in {len(stats):,} lines")
            for stat in stats[:args.top]:
                print(f"{stat.size / 2**20:8.1f} MiB {stat.count:>9,}  {stat.traceback}")
        room.close()
        room.engine.dispose()


if __name__ == "__main__":
    main()
