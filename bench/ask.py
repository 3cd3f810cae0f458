"""/ask retrieval benchmark: the full-text search against reading every item, and what keeping
the index costs when items are stored.

Run from the repository root:  .venv/bin/python bench/ask.py [ITEMS]

A temporary SQLite database (migrated to head) gets ITEMS synthetic items (20,000 by default:
an 8-word headline and a 60-word summary each, words drawn from a Zipf-like vocabulary of 5,000,
fixed seed), one story each. Then, in the same run:

  search:  50 questions of 4 words each through storage.story_search.ranked (FTS5, bm25),
           drawn from headlines (common words: they match most items, the hard case), and 50
           of rarer words drawn evenly from the vocabulary (names: what questions are about);
           the baseline: the same questions answered by reading every item and counting the
           question's words in it (what /ask would do without an index). Reported: median
           milliseconds per question, and baseline / search.
  storing: the same items inserted into a second database with and without the index's
           triggers. Reported: seconds, and with / without (the index's write overhead).

With TIDINGS_BENCH_PG=postgresql+psycopg://postgres@127.0.0.1:5432/postgres the same runs on
two fresh PostgreSQL databases of that server (dropped afterwards); the plain one without the
GIN index and its generated column.

Figures are printed, written to bench/results/ask-BACKEND.json and repeated as JSON on the last
line.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, insert, text  # noqa: E402
from sqlmodel import select  # noqa: E402

from news.ask import question_terms  # noqa: E402
from storage import story_search  # noqa: E402
from storage.db import make_engine, migrate, session_scope  # noqa: E402
from storage.models import Item, Story, utcnow  # noqa: E402

SEED = 20261207
VOCABULARY = 5000
QUESTIONS = 50


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = list(dict.fromkeys("".join(rng.choice(letters) for _ in range(rng.randint(4, 10)))
                               for _ in range(VOCABULARY * 2)))[:VOCABULARY]
    weights = [1.0 / (rank + 1) for rank in range(len(words))]  # Zipf: a few words everywhere
    return words, weights


def rows(count: int, rng: random.Random) -> list[dict[str, Any]]:
    words, weights = vocabulary(rng)
    now = utcnow()
    return [{"id": n, "story_id": n, "source_name": "Wire", "guid": f"g{n}",
             "link": f"https://news.test/{n}", "content_hash": "",
             "title": " ".join(rng.choices(words, weights, k=8)).capitalize(),
             "summary": " ".join(rng.choices(words, weights, k=60)) + ".",
             "fetched_at": now} for n in range(1, count + 1)]


def store(engine: Engine, items: list[dict[str, Any]]) -> float:
    """Seconds to insert the stories and items in batches of 1,000, as the pipeline batches."""
    started = time.perf_counter()
    for start in range(0, len(items), 1000):
        batch = items[start:start + 1000]
        with session_scope(engine) as session:
            session.execute(insert(Story), [{"id": row["story_id"], "title": row["title"],
                                            "created_at": row["fetched_at"]} for row in batch])
            session.execute(insert(Item), batch)
    return time.perf_counter() - started


def scan(engine: Engine, words: tuple[str, ...]) -> list[int]:
    """The baseline: every item read, ranked by how many question words it carries."""
    with session_scope(engine) as session:
        found = session.execute(select(Item.story_id, Item.title, Item.summary)).all()
    scored = []
    for story_id, title, summary in found:
        said = set(f"{title} {summary}".lower().replace(".", " ").split())
        hits = sum(word in said for word in words)
        if hits:
            scored.append((-hits, story_id))
    scored.sort()
    return [story_id for _, story_id in scored]


def timed(work: Any, questions: list[str]) -> float:
    """Median milliseconds per question."""
    times = []
    for question in questions:
        started = time.perf_counter()
        work(question)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def databases(directory: str) -> tuple[str, str, Callable[[Engine], None]]:
    """Two fresh databases (indexed, plain) and how to drop the index from the plain one:
    SQLite files, or with TIDINGS_BENCH_PG (a server URL) two PostgreSQL databases."""
    server = os.environ.get("TIDINGS_BENCH_PG")
    if not server:
        def drop_triggers(engine: Engine) -> None:
            with engine.begin() as connection:
                for name in ("insert", "delete", "update"):
                    connection.execute(text(f"DROP TRIGGER item_search_{name}"))
        return (f"sqlite:///{directory}/indexed.db", f"sqlite:///{directory}/plain.db",
                drop_triggers)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    names = [f"tidings_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    atexit.register(_drop, admin, names)

    def drop_index(engine: Engine) -> None:
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_items_search"))
            connection.execute(text("ALTER TABLE items DROP COLUMN search_vector"))
    base = server.rsplit("/", 1)[0]
    return f"{base}/{names[0]}", f"{base}/{names[1]}", drop_index


def _drop(admin: Engine, names: list[str]) -> None:
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rng = random.Random(SEED)
    items = rows(count, rng)
    words = [word for row in items[:200] for word in row["title"].lower().split()]
    # as headlines are written: common words mostly (the hard case: they match most items)
    questions = [" ".join(rng.sample(words, 4)) + "?" for _ in range(QUESTIONS)]
    # names and rarer words, drawn evenly from the vocabulary (what a question is about)
    vocabulary_words = sorted({word for row in items for word in row["summary"][:-1].split()})
    rare = [" ".join(rng.sample(vocabulary_words, 4)) + "?" for _ in range(QUESTIONS)]
    with tempfile.TemporaryDirectory() as directory:
        indexed_url, plain_url, drop_index = databases(directory)
        indexed = make_engine(indexed_url)
        migrate(indexed)
        with_index = store(indexed, items)
        plain = make_engine(plain_url)
        migrate(plain)
        drop_index(plain)
        without_index = store(plain, items)
        backend = indexed.dialect.name
        if backend == "postgresql":
            with indexed.begin() as connection:
                connection.execute(text("ANALYZE items"))

        def search(question: str) -> list[list[int]]:
            with session_scope(indexed) as session:
                return story_search.ranked(session=session, terms=question_terms(question))

        assert all(search(question) for question in questions), "every question finds stories"
        searched = timed(search, questions)
        searched_rare = timed(search, rare)
        scanned = timed(lambda question: scan(plain, question_terms(question).words),
                        questions[:10])
        indexed.dispose()
        plain.dispose()
    result = {
        "backend": backend, "items": count, "questions": QUESTIONS,
        "search_ms_median": round(searched, 2), "scan_ms_median": round(scanned, 2),
        "rare_words_search_ms_median": round(searched_rare, 2),
        "scan_over_search": round(scanned / searched, 1),
        "store_s_with_index": round(with_index, 2), "store_s_without": round(without_index, 2),
        "store_with_over_without": round(with_index / without_index, 2),
    }
    print(f"{count} items, {QUESTIONS} questions ({backend})")
    print(f"  search (full text):  {searched:8.2f} ms median per question")
    print(f"  search, rarer words: {searched_rare:8.2f} ms median per question")
    print(f"  baseline (read all): {scanned:8.2f} ms median per question "
          f"-> {scanned / searched:.1f}x slower")
    print(f"  storing, with index: {with_index:8.2f} s; without: {without_index:.2f} s "
          f"-> {with_index / without_index:.2f}x")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"ask-{backend}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
