"""Polling: 1,000 feeds over slow HTTP, against the naive loop and the parsing floor.

Run from the repository root:

    .venv/bin/python bench/poll.py            # 1,000 feeds of 50 entries, ~70 s on 2 cores

1,000 RSS feeds of 50 entries (~53 KB each, fixed seed) are served on loopback by an asyncio
HTTP/1.1 server in a process of its own (so its CPU does not share our GIL) that answers every
request after 200 ms, what a real server across the internet takes, and answers a matching
If-None-Match with 304. The feeds live on 100 loopback addresses (127.0.0.x, ten feeds each),
as feeds live on many hosts, since the fetcher holds at most 4 requests in flight per host.
Entries carry full four-sentence summaries, not snippets, so the pipeline's article fetching
(news.article) has nothing to fetch; the bench counts its fetches.

- ours: the bot's pipeline. A temporary SQLite database holds the 1,000 sources, all due; the
  poll job's work is `news.poll.poll_due` at its default concurrency, as jobs/poll.py calls
  it (its pollers take due sources from a queue that claims refill; the bench calls it again
  while any source is due). First cycle: every feed new (fetch, parse, store 50,000 items). Second
  cycle: all due again, nothing changed: every fetch must be a 304 and nothing parsed. It runs in
  a child process, so its peak RSS is its own (the parent holds the 1,000 bodies).
- baseline: what most bots do, a sequential loop of `feedparser.parse(url)`. 1,000 x 200 ms is
  over 200 s, so it is timed on an evenly spread sample of 50 feeds and extrapolated.
- floor: feedparser parsing the same 1,000 bodies already in memory, over a warmed
  ProcessPoolExecutor with one worker per core: no network, no database.

Targets: the first cycle >= 20x faster than the baseline and within 1.5x of the floor; the
unchanged cycle parses nothing.

The first cycle gets a time budget (--budget, 150 s) so that a slow pipeline ends the run too:
past it no more sources are claimed (storage.sources.claim_due, wrapped in the child, then
claims nothing, so poll_due returns with the sources in hand), the sources not reached are
paused, and every row of the
table is then for the same work, the feeds the first cycle did poll (the baseline and the floor
scaled to them). The full first cycle is estimated from the pace of its last tenth, a lower
bound when the pace keeps falling.

Besides the cycles, `ours` reports where the time went: CPU seconds of the polling process
and of its parser processes (news.parsing, one per core up to 4, as the bot runs them) against
wall time, split by stage: read (parse and normalize, in the parser processes), ingest (the
database and the story index, on the poll's database thread) and the rest of the polling
process (event loop, HTTP, handing bodies to the parsers and drafts back). A third cycle,
unchanged again, is run at another poll_due concurrency (--what-if) to show what the network
side gives. Nothing in the pipeline is changed.

Prints a table and writes the figures to bench/results/poll.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from ipaddress import ip_network
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import feedparser  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import func, update  # noqa: E402
from sqlmodel import col, select  # noqa: E402

from news import article  # noqa: E402
from news import poll as polling  # noqa: E402
from news.fetch import FetchPolicy, make_client  # noqa: E402
from news.newsroom import Newsroom  # noqa: E402
from news.parsing import FeedReader, default_workers  # noqa: E402
from storage import sources  # noqa: E402
from storage.db import make_engine, migrate, session_scope  # noqa: E402
from storage.models import Item, Source, utcnow  # noqa: E402
from tests.fakes.feeds import rss  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "poll.json"
SEED = 20240611
FEEDS, ENTRIES, DELAY, SAMPLE = 1000, 50, 0.2, 50
FEEDS_PER_HOST = 10  # 1,000 feeds on 100 loopback addresses
VOCABULARY = 20_000  # words drawn uniformly: items of different feeds rarely make one story
TARGET_VS_BASELINE, TARGET_VS_FLOOR = 20.0, 1.5
STATS_PATH = "/__stats"
BUDGET = 150.0  # seconds the first cycle may run before it stops claiming (keeps the run ~5 min)


# ---------------------------------------------------------------- the feeds


def make_bodies(feeds: int, entries: int) -> list[bytes]:
    """Deterministic RSS 2.0 feeds: headline, link, guid, a date and a four-sentence summary
    (~550 characters): full entries, not snippets, so news.article fetches no article pages."""
    rng = random.Random(SEED)
    syllables = ["ka", "lo", "mi", "ne", "tor", "ve", "su", "ran", "di", "pel", "qua", "zo",
                 "bri", "ent", "os", "ul", "gra", "mo", "ti", "ces"]
    words = sorted({"".join(rng.choices(syllables, k=rng.randint(2, 4)))
                    for _ in range(VOCABULARY * 2)})[:VOCABULARY]
    rng.shuffle(words)

    def phrase(n: int) -> str:
        return " ".join(rng.choices(words, k=n))

    start = datetime(2025, 5, 6, 7, 0, tzinfo=UTC)
    bodies = []
    for f in range(feeds):
        items = [{
            "title": phrase(rng.randint(6, 11)).capitalize(),
            "link": f"https://news{f}.example.test/story/{n}",
            "guid": f"feed{f}-story{n}",
            "description": "<p>" + " ".join(f"{phrase(rng.randint(16, 24)).capitalize()}."
                                            for _ in range(4)) + "</p>",
            "pub_date": start - timedelta(minutes=7 * n + f),
        } for n in range(entries)]
        bodies.append(rss(f"Feed {f}", items, link=f"https://news{f}.example.test/").encode())
    return bodies


# ---------------------------------------------------------------- the server (own process)


Answer = Callable[[str, dict[str, str]], tuple[int, bytes, dict[str, str]]]
CONTROL = "/__"  # the benchmark's own requests (stats, advance): not delayed, not counted


def serve_http(answer: Answer, feeds: int, delay: float, stats: Counter[str],
               port_out: Any) -> None:
    """Serve `answer` on every feed host's address (one port), HTTP/1.1 with keep-alive, each
    feed request after `delay` and counted by status in `stats`; the port goes to `port_out`.
    The servers of bench/poll.py and bench/capacity.py differ only in what they answer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, protocol = [*lines[0].split(" "), "", "", ""][:3]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                if "content-length" in headers:
                    await reader.readexactly(int(headers["content-length"]))
                if not path.startswith(CONTROL):
                    await asyncio.sleep(delay)
                status, body, extra = answer(path, headers)
                if not path.startswith(CONTROL):
                    stats[str(status)] += 1
                close = (headers.get("connection", "").lower() == "close"
                         or protocol != "HTTP/1.1")
                reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
                out = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in extra.items()]
                if status != 304:
                    out.append(f"Content-Length: {len(body)}")
                if close:
                    out.append("Connection: close")
                writer.write("\r\n".join(out).encode() + b"\r\n\r\n"
                             + (b"" if method == "HEAD" or status == 304 else body))
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        first = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        port = first.sockets[0].getsockname()[1]  # every host listens on the same port
        others = await asyncio.start_server(handle, hosts(feeds)[1:], port, backlog=4096)
        port_out.send(port)
        port_out.close()
        async with first, others:
            await asyncio.gather(first.serve_forever(), others.serve_forever())

    asyncio.run(main())


def serve(feeds: int, entries: int, delay: float, port_out: Any) -> None:
    """Entry point of the server process: asyncio, HTTP/1.1 keep-alive, ETag -> 304."""
    bodies = make_bodies(feeds, entries)
    etags = [f'"{hashlib.sha1(body).hexdigest()[:16]}"' for body in bodies]
    stats: Counter[str] = Counter()

    def answer(path: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        if path == STATS_PATH:
            return 200, json.dumps(stats).encode(), {"Content-Type": "application/json"}
        name = path.rsplit("/", 1)[-1].removesuffix(".xml")
        if not path.startswith("/feed/") or not name.isdigit() or int(name) >= feeds:
            return 404, b"not found", {"Content-Type": "text/plain"}
        index = int(name)
        extra = {"ETag": etags[index], "Cache-Control": "max-age=0"}
        if etags[index] in {t.strip() for t in headers.get("if-none-match", "").split(",")}:
            return 304, b"", extra
        return 200, bodies[index], {"Content-Type": "application/rss+xml; charset=utf-8",
                                    **extra}

    serve_http(answer, feeds, delay, stats, port_out)


def server_stats(port: int) -> Counter[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{STATS_PATH}", timeout=10) as answer:
        return Counter(json.loads(answer.read()))


def host_of(index: int) -> str:
    """Feeds live on many hosts, as on the internet (and the fetcher limits each host)."""
    return f"127.0.{index // FEEDS_PER_HOST // 250}.{index // FEEDS_PER_HOST % 250 + 1}"


def hosts(feeds: int) -> list[str]:
    """127.0.0.1 first (it answers the stats), then every feed host."""
    return ["127.0.0.1", *sorted({host_of(index) for index in range(feeds)} - {"127.0.0.1"})]


def feed_url(port: int, index: int) -> str:
    return f"http://{host_of(index)}:{port}/feed/{index}.xml"


# ---------------------------------------------------------------- baseline and floor


def baseline(port: int, feeds: int, sample: int) -> dict[str, Any]:
    """The naive loop, sequential feedparser.parse(url), on an evenly spread sample."""
    picks = [round(i * feeds / sample) for i in range(sample)]
    entries = 0
    started = time.perf_counter()
    for index in picks:
        entries += len(feedparser.parse(feed_url(port, index)).entries)
    seconds = time.perf_counter() - started
    return {"sample": sample, "sample_s": round(seconds, 3), "entries": entries,
            "per_feed_ms": round(1000 * seconds / sample, 1),
            "extrapolated_s": round(seconds * feeds / sample, 2)}


def parse_count(body: bytes) -> int:
    return len(feedparser.parse(body).entries)


def warm(_: int) -> int:
    return parse_count(b'<rss version="2.0"><channel><item><title>x</title></item></channel></rss>')


def floor(bodies: list[bytes], workers: int) -> dict[str, Any]:
    """feedparser over the in-memory bodies on every core, after the pool is up."""
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(warm, range(workers * 2)))
        started = time.perf_counter()
        entries = sum(pool.map(parse_count, bodies, chunksize=max(1, len(bodies) // workers // 8)))
        seconds = time.perf_counter() - started
    one_core = bodies[:: max(1, len(bodies) // 100)]
    started = time.perf_counter()
    for body in one_core:
        parse_count(body)
    per_body = (time.perf_counter() - started) / len(one_core)
    return {"workers": workers, "s": round(seconds, 3), "entries": entries,
            "parse_ms_per_feed_one_core": round(1000 * per_body, 2),
            "parse_s_one_core_extrapolated": round(per_body * len(bodies), 2)}


# ---------------------------------------------------------------- ours (child process)


class Timers:
    """Calls, wall seconds and CPU seconds of the pipeline's synchronous stages (patched into
    news.poll in the child only). CPU is the calling thread's own (time.thread_time), so
    waiting for the GIL, a lock or SQLite is not counted; wall time is, summed over calls that
    overlap. Fetches are async: their CPU is what is left of the process's."""

    STAGES = ("read", "ingest")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.wall: Counter[str] = Counter()
        self.cpu: Counter[str] = Counter()

    def clear(self) -> None:
        for counter in (self.calls, self.wall, self.cpu):
            counter.clear()

    def timed(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return real(*args, **kwargs)
            finally:
                with self.lock:
                    self.calls[name] += 1
                    self.wall[name] += time.perf_counter() - wall
                    self.cpu[name] += time.thread_time() - cpu
        return call

    def install(self) -> None:
        """Reading (parse and normalize) runs in the reader's worker processes: its calls and
        summed wall time are counted here, its CPU is the workers' (worker_usage). Ingest runs
        on the poll's database thread, one transaction for the polls that finished while the
        last one ran (its calls are transactions); article fetches (news.article) are counted."""
        real_article_fetch = article.fetch

        async def article_fetch(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.calls["article fetch"] += 1
            return await real_article_fetch(*args, **kwargs)

        article.fetch = article_fetch  # type: ignore
        real_read = FeedReader.read

        async def read(reader: FeedReader, body: bytes, url: str) -> Any:
            wall = time.perf_counter()
            try:
                return await real_read(reader, body, url)
            finally:
                with self.lock:
                    self.calls["read"] += 1
                    self.wall["read"] += time.perf_counter() - wall

        FeedReader.read = read  # type: ignore[method-assign]
        polling.ingest_each = self.timed("ingest", polling.ingest_each)  # type: ignore


class Claims:
    """storage.sources.claim_due, counted and refused past a deadline (poll_due then ends
    with the sources in hand, and the budget holds without touching the pipeline), and
    news.poll.poll's completions, for the pace."""

    def __init__(self) -> None:
        self.started = 0.0
        self.deadline: float | None = None
        self.claimed = 0
        self.batches = 0
        self.polled = 0
        self.progress: list[tuple[float, int]] = []  # (seconds, sources polled) at each poll

    def start(self, budget: float | None) -> None:
        self.started = time.perf_counter()
        self.deadline = None if budget is None else self.started + budget
        self.claimed = self.batches = self.polled = 0
        self.progress = [(0.0, 0)]

    def install(self) -> None:
        real, real_poll = sources.claim_due, polling.poll

        async def poll(*args: Any, **kwargs: Any) -> Any:
            try:
                return await real_poll(*args, **kwargs)
            finally:
                self.polled += 1
                self.progress.append((round(time.perf_counter() - self.started, 2),
                                      self.polled))

        polling.poll = poll  # type: ignore[assignment]

        def claim_due(**kwargs: Any) -> Any:
            if self.deadline is not None and time.perf_counter() >= self.deadline:
                return []
            due = real(**kwargs)
            self.claimed += len(due)
            self.batches += bool(due)
            return due

        sources.claim_due = claim_due  # type: ignore[assignment]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_usage(pids: list[int]) -> tuple[float, float]:
    """CPU seconds and the largest peak RSS (MiB) of the reader's worker processes, which are
    the forkserver's children, not ours, so getrusage cannot see them."""
    cpu, peak = 0.0, 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, IndexError, ValueError):
            continue
    return cpu, peak


def make_all_due(engine: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(Source).values(next_poll_at=utcnow() - timedelta(seconds=1)))


def count(engine: Any, what: Any) -> int:
    with session_scope(engine) as session:
        return int(session.exec(what).one())


def due_now(engine: Any) -> int:
    return count(engine, select(func.count()).select_from(Source).where(
        col(Source.next_poll_at) <= utcnow(), col(Source.paused).is_(False)))


def items(engine: Any) -> int:
    return count(engine, select(func.count()).select_from(Item))


async def cycle(engine: Any, room: Newsroom, client: httpx.AsyncClient,
                policy: FetchPolicy, port: int, timers: Timers, claims: Claims,
                poll_kwargs: dict[str, Any], budget: float | None = None) -> dict[str, Any]:
    """poll_due while any source is due, or until `budget` seconds have gone."""
    timers.clear()
    before_items, before_stats = items(engine), server_stats(port)
    total = due_now(engine)
    reader: FeedReader = poll_kwargs["reader"]
    cpu, workers_before = cpu_seconds(), worker_usage(reader.worker_pids())[0]
    claims.start(budget)
    while due_now(engine) and (claims.deadline is None
                               or time.perf_counter() < claims.deadline):
        await polling.poll_due(room, client, policy, **poll_kwargs)
    wall = time.perf_counter() - claims.started
    main_cpu = cpu_seconds() - cpu
    workers_after, workers_peak = worker_usage(reader.worker_pids())
    workers_cpu = workers_after - workers_before
    stats = server_stats(port) - before_stats
    failing = count(engine, select(func.count()).select_from(Source).where(
        col(Source.error_code).is_not(None)))
    return {
        "s": round(wall, 3), "sources": total, "polled": claims.claimed,
        "finished": claims.claimed >= total, "batches": claims.batches,
        "cpu_s": round(main_cpu + workers_cpu, 2),
        "cores_busy": round((main_cpu + workers_cpu) / wall, 2),
        "responses": dict(stats), "parses": timers.calls["read"],
        "article_fetches": timers.calls["article fetch"],
        "ingest_transactions": timers.calls["ingest"],
        "items_added": items(engine) - before_items, "failing_sources": failing,
        "stage_cpu_s": {f"read ({len(reader.worker_pids())} worker processes)":
                            round(workers_cpu, 2),
                        "ingest (database thread)": round(timers.cpu["ingest"], 2),
                        "rest of the polling process (loop, HTTP, claims, records)":
                            round(main_cpu - timers.cpu["ingest"], 2)},
        "stage_wall_summed_s": {name: round(timers.wall[name], 2) for name in timers.STAGES},
        "workers_peak_rss_mib": round(workers_peak, 1),
        "progress": claims.progress,
    }


def pace(progress: list[tuple[float, int]], share: float = 0.1) -> tuple[float, float]:
    """Sources per second over the first and the last `share` of the sources polled."""
    polled = progress[-1][1]
    span = max(1, round(polled * share))
    first = next(p for p in progress if p[1] >= span)
    last = next(p for p in progress if p[1] >= polled - span)
    tail = (polled - last[1]) / (progress[-1][0] - last[0]) if progress[-1][0] > last[0] else 0
    return first[1] / first[0], tail if tail else polled / progress[-1][0]


async def ours(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    engine = make_engine(f"sqlite:///{workdir / 'bench.db'}")
    migrate(engine)
    with session_scope(engine) as session:
        for index in range(args.feeds):
            sources.add(session=session, url=feed_url(args.port, index), name=f"Feed {index}",
                        interval_seconds=3600)
    timers, claims = Timers(), Claims()
    timers.install()
    claims.install()
    policy = FetchPolicy(allowed_networks=(ip_network("127.0.0.0/8"),))
    reader = FeedReader(default_workers())  # as bot.py builds it with PARSE_WORKERS unset
    reader.warm()  # as bot.py does at start-up (the floor's pool is warmed too)
    for _ in range(200):
        if len(reader.worker_pids()) == reader.workers:
            break
        await asyncio.sleep(0.05)
    room = Newsroom(engine)  # as bot.py builds it
    poll_kwargs: dict[str, Any] = {"reader": reader}
    if args.concurrency is not None:
        poll_kwargs["concurrency"] = args.concurrency
    async with make_client("Tidings-bench") as client:  # as bot.py builds its client
        make_all_due(engine)
        first = await cycle(engine, room, client, policy, args.port, timers, claims, poll_kwargs,
                            args.budget)
        first["pace_first_last_10pct"] = [round(v, 2) for v in pace(first["progress"])]
        peak_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if not first["finished"]:  # the unchanged cycles cover the sources the first one did
            with engine.begin() as connection:
                connection.execute(update(Source).where(col(Source.last_polled_at).is_(None))
                                   .values(paused=True))
        make_all_due(engine)
        second = await cycle(engine, room, client, policy, args.port, timers, claims, poll_kwargs)
        make_all_due(engine)
        what_if = await cycle(engine, room, client, policy, args.port, timers, claims,
                              {**poll_kwargs, "concurrency": args.what_if})
    workers_peak = worker_usage(reader.worker_pids())[1]
    reader.close()
    engine.dispose()
    kib = 1 << 20 if sys.platform == "darwin" else 1 << 10
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"first": first, "second": second, "what_if": what_if,
            "peak_rss_mib": round(peak / kib, 1),
            "peak_rss_mib_after_first": round(peak_first / kib, 1),
            "workers": default_workers(),
            "workers_peak_rss_mib": round(workers_peak, 1)}


def child_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tidings-poll-") as workdir:
        figures = asyncio.run(ours(args, Path(workdir)))
    print(json.dumps(figures))


def run_ours(port: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--port", str(port),
               "--feeds", str(args.feeds), "--what-if", str(args.what_if),
               "--budget", str(args.budget)]
    if args.concurrency is not None:
        command += ["--concurrency", str(args.concurrency)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          timeout=args.budget + 600)
    if done.returncode:
        raise SystemExit(f"the polling child failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# ---------------------------------------------------------------- report


def table(rows: list[tuple[str, ...]]) -> str:
    header = ("", "seconds", "vs baseline", "vs floor", "notes")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) if i in (0, 4) else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in [header, *rows]]
    rule = "-" * max(len(line) for line in lines)
    return "\n".join([rule, lines[0], rule, *lines[1:], rule])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=FEEDS)
    parser.add_argument("--entries", type=int, default=ENTRIES)
    parser.add_argument("--delay", type=float, default=DELAY, help="server answer delay, s")
    parser.add_argument("--sample", type=int, default=SAMPLE, help="feeds the baseline times")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="poll_due concurrency (default: poll_due's own, as the bot)")
    parser.add_argument("--what-if", type=int, default=16,
                        help="poll_due concurrency of the extra unchanged cycle")
    parser.add_argument("--budget", type=float, default=BUDGET,
                        help="seconds after which the first cycle stops claiming")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return

    started = time.perf_counter()
    bodies = make_bodies(args.feeds, args.entries)
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(args.feeds, args.entries, args.delay, send), daemon=True)
    server.start()
    try:
        port = receive.recv()
        floor_figures = floor(bodies, args.workers)
        print(f"floor: {floor_figures['s']:.2f} s", flush=True)
        base = baseline(port, args.feeds, args.sample)
        print(f"baseline: {base['sample_s']:.2f} s for {args.sample} feeds", flush=True)
        mine = run_ours(port, args)
    finally:
        server.terminate()
        server.join()

    first, second, what_if = mine["first"], mine["second"], mine["what_if"]
    n = first["polled"]
    # Equal work: the baseline and the floor for the n feeds the first cycle polled.
    base_n = base["per_feed_ms"] / 1000 * n
    floor_n = floor_figures["s"] * n / args.feeds
    vs_base, vs_floor = base_n / first["s"], first["s"] / floor_n
    early, late = first["pace_first_last_10pct"]
    estimate = first["s"] + (args.feeds - n) / late if n < args.feeds else first["s"]
    checks = {
        "first_cycle_vs_baseline": {"target": f">= {TARGET_VS_BASELINE:g}x faster",
                                    "value": round(vs_base, 2),
                                    "met": first["finished"] and vs_base >= TARGET_VS_BASELINE},
        "first_cycle_vs_floor": {"target": f"<= {TARGET_VS_FLOOR:g}x the floor",
                                 "value": round(vs_floor, 2),
                                 "met": first["finished"] and vs_floor <= TARGET_VS_FLOOR},
        "second_cycle_parses": {"target": "0", "value": second["parses"],
                                "met": second["parses"] == 0
                                and second["responses"].get("304", 0) == n},
    }
    done = (f"all {n:,} feeds" if first["finished"]
            else f"DID NOT FINISH: {n:,} of {args.feeds:,} feeds in the {args.budget:.0f} s budget")

    def row(name: str, seconds: float, note: str) -> tuple[str, ...]:
        return (name, f"{seconds:.2f}", f"{base_n / seconds:.1f}x", f"{seconds / floor_n:.2f}x",
                note)

    rows = [
        row("baseline: sequential feedparser.parse(url)", base_n,
            f"extrapolated from {args.sample} feeds ({base['per_feed_ms']:.0f} ms each)"),
        row(f"floor: feedparser, {args.workers} processes, in memory", floor_n,
            "no network, no database"),
        row("ours, first cycle (all new)", first["s"],
            f"{done}; {first['responses'].get('200', 0)} x 200, {first['parses']} parses, "
            f"{first['items_added']:,} items, {first['batches']} claims, "
            f"{first['ingest_transactions']} ingest transactions, "
            f"{first['article_fetches']} article fetches"),
        row("ours, second cycle (unchanged)", second["s"],
            f"{second['responses'].get('304', 0)} x 304, {second['parses']} parses, "
            f"{second['items_added']} items, "
            f"{second['ingest_transactions']} ingest transactions"),
        row(f"what-if: unchanged, concurrency {args.what_if}", what_if["s"],
            f"{what_if['responses'].get('304', 0)} x 304, {what_if['parses']} parses"),
    ]
    print(f"\nPoll benchmark: {args.feeds:,} feeds x {args.entries} entries "
          f"(~{sum(map(len, bodies)) / len(bodies) / 1024:.0f} KB each), loopback server "
          f"answering after {args.delay * 1000:.0f} ms, SQLite, {os.cpu_count()} cores")
    print(f"all rows for the same {n:,} feeds (those the first cycle polled)")
    print(table(rows))
    print("vs baseline: how many times faster than the naive loop; vs floor: how many times "
          "the floor's time.")
    if not first["finished"]:
        falling = "; the pace was falling" if late < 0.9 * early else ""
        print(f"full first cycle: >= {estimate:.0f} s (the rest at the last 10% pace{falling})")
    print(f"first-cycle pace: {early:.1f} feeds/s over the first 10%, {late:.1f} over the last")
    print(f"peak RSS of the polling process: {mine['peak_rss_mib']:.0f} MiB "
          f"({mine['peak_rss_mib_after_first']:.0f} MiB after the first cycle), and of each "
          f"of its {mine['workers']} parser processes at most "
          f"{mine['workers_peak_rss_mib']:.0f} MiB")
    for name, c in (("first", first), ("second", second)):
        stages = ", ".join(f"{k} {v:.1f}" for k, v in c["stage_cpu_s"].items())
        print(f"{name} cycle: CPU {c['cpu_s']:.1f} s over {c['s']:.1f} s wall "
              f"({c['cores_busy']:.1f} cores busy); CPU s by stage: {stages}")
    print(f"one core parses a feed in {floor_figures['parse_ms_per_feed_one_core']:.1f} ms "
          f"(feedparser alone)")
    for name, check in checks.items():
        print(f"target {name}: {check['target']}: {check['value']} "
              f"{'met' if check['met'] else 'NOT MET'}")
    total_s = time.perf_counter() - started
    print(f"total wall time: {total_s:.1f} s")
    figures = {
        "benchmark": "poll", "feeds": args.feeds, "entries": args.entries,
        "delay_ms": args.delay * 1000, "seed": SEED,
        "mean_body_bytes": round(sum(map(len, bodies)) / len(bodies)),
        "concurrency": args.concurrency or "poll_due default", "budget_s": args.budget,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "feedparser": package_version("feedparser"),
                    "httpx": package_version("httpx")},
        "baseline": base, "floor": floor_figures, "ours": mine,
        "equal_work_feeds": n,
        "ratios": {"first_vs_baseline": round(vs_base, 2), "first_vs_floor": round(vs_floor, 2),
                   "second_vs_baseline": round(base_n / second["s"], 1),
                   "second_vs_floor": round(second["s"] / floor_n, 2)},
        "first_cycle_full_estimate_s": round(estimate, 1),
        "targets": checks, "total_wall_s": round(total_s, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {RESULTS.relative_to(ROOT)}")
    if second["parses"]:
        raise SystemExit(f"the unchanged cycle parsed {second['parses']} feeds")


if __name__ == "__main__":
    main()
