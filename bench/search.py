"""Search sweeps: how long one pass over every distinct followed query takes under GDELT's
limit, and how soon a new topic's first search runs.

Run from the repository root:

    .venv/bin/python bench/search.py            # 100, 1,000 and 10,000 distinct topics

For each size, a SQLite database holds that many distinct queries (fixed seed; 60 % one word
or name, 15 % one phrase, 10 % an OR of two, 15 % words AND-ed or with an exclusion, which
GDELT must be asked alone), each followed by one chat. The real scheduler (storage.searches
.due, news.search.sweep.plan with the GDELT provider) then runs turn after turn, with the
database doing what a sweep does but no HTTP: a sweep's length is its requests times GDELT's
spacing (6 s: its 5 s limit and a second's margin), since the requests themselves (well under
a second each) overlap that wait. The baseline is one request per query, unpacked.

After the first sweep (every query new), one more chat subscribes to a new topic: the next
turn must ask about it first. Its first search runs within one spacing plus one job tick
(1 s) plus the turn's own database time, which is measured.

Prints a table and writes bench/results/search.json.
"""

from __future__ import annotations

import json
import platform
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from news.search.gdelt import Gdelt  # noqa: E402
from news.search.sweep import plan  # noqa: E402
from storage import chats, searches, subscriptions  # noqa: E402
from storage.db import make_engine, migrate, session_scope  # noqa: E402
from storage.models import utcnow  # noqa: E402

SEED = 20261207
SIZES = (100, 1_000, 10_000)
TICK = 1.0  # jobs.schedule's tick: the search job looks for a turn every second
SYLLABLES = ["so", "ft", "ba", "nk", "vi", "di", "ar", "mo", "to", "yo", "ta", "ne", "ku",
             "ri", "la", "pe", "zo", "mi", "ka", "tes", "lor", "dan", "gre", "vel"]


def name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 5))).capitalize()


def query(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.60:
        return name(rng)
    if roll < 0.75:
        return f'"{name(rng)} {name(rng).lower()}"'
    if roll < 0.85:
        return f"{name(rng)} OR {name(rng)}"
    if roll < 0.93:
        return f"{name(rng)} {name(rng).lower()}"
    return f"{name(rng)} -{name(rng).lower()}"


def populate(engine: object, count: int, rng: random.Random) -> list[str]:
    queries: set[str] = set()
    while len(queries) < count:
        queries.add(query(rng))
    with session_scope(engine) as session:  # type: ignore[arg-type]
        for number, text in enumerate(sorted(queries)):
            chats.ensure_chat(session=session, chat_id=number + 1, chat_type="private",
                              title=None, language="en")
            subscriptions.add(session=session, chat_id=number + 1, query=text)
    return sorted(queries)


def turn(engine: object, source_id: int, provider: Gdelt
         ) -> tuple[tuple[str, ...], int, bool, float]:
    """One turn as news.search.sweep.search takes it, without the HTTP: its queries, how
    many queries it passed over as unsearchable, whether a first search, and the database
    and planning time it cost."""
    started = time.perf_counter()
    now = utcnow()
    with session_scope(engine) as session:  # type: ignore[arg-type]
        due = searches.due(session=session, source_id=source_id, now=now,
                           interval=timedelta(seconds=900))
    request, first, _, skipped = plan(provider, due, now)
    asked = (request.queries if request else ()) + tuple(skipped)
    with session_scope(engine) as session:  # type: ignore[arg-type]
        searches.searched(session=session, source_id=source_id, queries=asked, now=now)
    return (request.queries if request else ()), len(skipped), first, \
        time.perf_counter() - started


def one_size(count: int) -> dict[str, float | int]:
    rng = random.Random(SEED + count)
    provider = Gdelt()
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate(engine)
        populate(engine, count, rng)
        with session_scope(engine) as session:
            ids = searches.sync(session=session, providers=[searches.Configured(
                provider.kind, provider.name, provider.endpoint, provider.spacing_seconds)])
        source_id = ids[provider.kind]
        requests, turn_seconds, asked, unsearchable = 0, [], 0, 0
        while True:
            queries, skipped, _, seconds = turn(engine, source_id, provider)
            if not queries and not skipped:
                break
            turn_seconds.append(seconds)
            requests += bool(queries)
            asked += len(queries)
            unsearchable += skipped
        with session_scope(engine) as session:
            chats.ensure_chat(session=session, chat_id=10 ** 9, chat_type="private",
                              title=None, language="en")
            subscriptions.add(session=session, chat_id=10 ** 9, query="Brandnewtopic")
        queries, _, first, new_turn = turn(engine, source_id, provider)
        assert queries and queries[0] == "Brandnewtopic" and first, queries
        engine.dispose()
    spacing = provider.spacing_seconds
    return {"topics": count, "requests": requests, "per_request": round(asked / requests, 1),
            "unsearchable": unsearchable,
            "sweep_s": requests * spacing, "unpacked_sweep_s": (count - unsearchable) * spacing,
            "turn_ms_median": round(sorted(turn_seconds)[len(turn_seconds) // 2] * 1000, 1),
            "turn_ms_max": round(max(turn_seconds) * 1000, 1),
            "first_search_within_s": round(spacing + TICK + new_turn, 2)}


def main() -> None:
    rows = [one_size(count) for count in SIZES]
    header = (f"{'topics':>7} {'requests':>8} {'q/req':>6} {'sweep':>9} {'unpacked':>9} "
              f"{'turn ms (med/max)':>18} {'new topic ≤':>11}")
    print(header)
    for row in rows:
        print(f"{row['topics']:>7} {row['requests']:>8} {row['per_request']:>6} "
              f"{_minutes(row['sweep_s']):>9} {_minutes(row['unpacked_sweep_s']):>9} "
              f"{row['turn_ms_median']:>9}/{row['turn_ms_max']:<8} "
              f"{row['first_search_within_s']:>9} s")
    out = ROOT / "bench" / "results" / "search.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "python": sys.version.split()[0],
                               "rows": rows}, indent=2) + "\n")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


if __name__ == "__main__":
    main()
