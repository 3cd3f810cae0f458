"""Capacity: the CPU and memory that steady-state polling costs, to size a deployment.

Run from the repository root:

    .venv/bin/python bench/capacity.py             # 10,000 feeds, SQLite then PostgreSQL x 1, x 2
    .venv/bin/python bench/capacity.py --quick     # 1,000 feeds, under a minute on 2 cores

N feeds (--feeds) of 20 entries with full four-sentence summaries (so news.article fetches
nothing) are served on loopback by an asyncio HTTP/1.1 server in a process of its own (its CPU
is not counted), ten feeds to a host on 127.0.x.y, answering after --delay (50 ms). It sends
an ETag and a Last-Modified and answers a matching If-None-Match (or, without one, an
If-Modified-Since) with 304. Every source polls on a 10-minute interval. Between cycles the
server changes --changed (20%) of the feeds, each with --new (2) new entries in front; the
others answer 304: the steady state of a deployment, where most feeds have nothing new.

Each bot replica is a child process that polls as the bot does: news.poll.poll_due with
its default concurrency over a Newsroom, the bot's HTTP client (news.fetch.make_client) and a
FeedReader with bot.py's default parser processes (news.parsing, one per core up to four). The
parent makes every source due, tells the replicas to poll, and each polls until nothing is
due (a cycle: the work of one 10-minute interval, done at once). The database also holds
--topics subscriptions (single words of the feeds' vocabulary), so new stories are matched and
their deliveries written, as in a bot with users.

1. SQLite, one replica: a warm-up cycle (every feed new: fetch, parse, store the baseline),
   then the bare floor (below), one unchanged cycle (all 304), then --cycles steady cycles.
2. PostgreSQL (127.0.0.1:5432, user postgres, trust; a scratch database, dropped at the end),
   one replica the same way (with an ANALYZE after the warm-up, as autovacuum would make),
   then two replicas (one steady warm-up cycle for the second
   replica's caches, then --cycles steady cycles), both claiming due sources with the real
   claim (storage.sources.claim_due, FOR UPDATE SKIP LOCKED); then both again with the
   replicas under CPU quotas (below), each with a steady warm-up cycle.

Measured, per cycle: CPU seconds (user + sys) of each replica's polling process (getrusage)
and of its parser processes (/proc/<pid>/stat: they are the forkserver's children, so
RUSAGE_CHILDREN cannot see them), divided by the feeds polled: the CPU per feed-poll. The
feeds one core sustains at a 10-minute interval is 600 s over that. Memory: the peak RSS of the
polling process plus the peaks of its parser processes. On PostgreSQL the server's backends for
the scratch database are read from /proc too and reported apart (the database's own cost).

Baselines in the same run, in the replica's own process over the same feeds and server:
- bare 304: a bare httpx.AsyncClient loop of conditional GETs (the stored ETags, the same
  concurrency, every answer a 304), nothing else: the floor of the unchanged path.
- bare 200 + parse: unconditional GETs and feedparser.parse of the body, on a sample.
The steady floor is (1 - changed) x bare 304 + changed x bare 200 + parse, per feed.

Throughput of two replicas against one is feeds per wall second of the steady cycles. With
the machine's cores shared by the replicas, their parser processes, the feed server and
PostgreSQL, that ratio is bounded by the cores left over (on 2 cores, about 1x). So the 1 and
2 replica runs are then repeated with each replica in a cgroup of its own holding it, with its
forkserver and parser processes, to --replica-cpu cores (0.5; bench.cpulimit; skipped with a
note where no cgroup is writable): one replica at q against two at q each asks whether the
design scales out, with the database and the server left the rest. Each cycle also reports
how busy each replica was against its quota (and the share of CFS periods it was throttled),
the machine's idle CPU and what other processes used meanwhile, and, sampled from
pg_stat_activity, what the database's active backends waited on (a replica short of its
quota with the machine idle is waiting, on the story lock for one). The CPU per feed of two
replicas against one tells whether the work itself scales (1.0: each feed costs the same).

Target: at least 50,000 feeds per core at a 10-minute interval (the busiest self-hosted peer
reports about 6,000 feeds per core at about 350 MB). Prints a table and writes the figures to
bench/results/capacity.json.
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
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib.metadata import version as package_version
from ipaddress import ip_network
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import feedparser  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import Engine, create_engine, func, text, update  # noqa: E402
from sqlmodel import col, select  # noqa: E402

from bench.cpulimit import CpuLimits, descendants, join  # noqa: E402
from bench.poll import Timers, feed_url, hosts, serve_http, worker_usage  # noqa: E402
from news.fetch import FetchPolicy, make_client  # noqa: E402
from news.newsroom import Newsroom  # noqa: E402
from news.parsing import FeedReader, default_workers  # noqa: E402
from news.poll import POLL_CONCURRENCY, poll_due  # noqa: E402
from storage import chats, sources, subscriptions  # noqa: E402
from storage.db import make_engine, migrate, session_scope  # noqa: E402
from storage.models import Delivery, Item, Source, utcnow  # noqa: E402
from tests.fakes.feeds import rss  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "capacity.json"
SEED = 20250506
FEEDS, QUICK_FEEDS, ENTRIES, NEW, CHANGED, DELAY = 10_000, 500, 20, 2, 0.2, 0.05
CYCLES, QUICK_CYCLES = 3, 2
REPLICA_CPU = 0.5  # cores per replica in the quota runs: two leave one of 2 cores to the rest
INTERVAL = 600  # seconds: every source polls on a 10-minute interval
TOPICS, CHATS = 1_000, 100
BARE_200_SAMPLE = 200
TARGET_PER_CORE, PEER_PER_CORE, PEER_MB = 50_000, 6_000, 350
TARGET_PSS_PER_10K = 300  # MiB, a replica with its parser processes (issue 21)
VOCABULARY = 20_000
STATS, ADVANCE = "/__stats", "/__advance"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TICK = os.sysconf("SC_CLK_TCK")
KIB = 1 << 20 if sys.platform == "darwin" else 1 << 10


# ---------------------------------------------------------------- the feeds (server process)


def vocabulary() -> list[str]:
    """Made-up words, drawn uniformly: entries of different feeds rarely make one story."""
    rng = random.Random(SEED)
    syllables = ["ka", "lo", "mi", "ne", "tor", "ve", "su", "ran", "di", "pel", "qua", "zo",
                 "bri", "ent", "os", "ul", "gra", "mo", "ti", "ces"]
    words = sorted({"".join(rng.choices(syllables, k=rng.randint(2, 4)))
                    for _ in range(VOCABULARY * 2)})[:VOCABULARY]
    rng.shuffle(words)
    return words


class Feeds:
    """N feeds whose newest entries change on demand, each with its ETag and Last-Modified."""

    def __init__(self, feeds: int, entries: int) -> None:
        self.rng = random.Random(SEED + 1)
        self.words = vocabulary()
        self.serial = [0] * feeds
        self.entries: list[list[dict[str, Any]]] = []
        self.bodies: list[bytes] = []
        self.etags: list[str] = []
        self.modified: list[str] = []
        start = datetime.now(UTC) - timedelta(hours=1)
        for index in range(feeds):
            self.entries.append([self.entry(index, start - timedelta(minutes=3 * n))
                                 for n in range(entries)])
            self.bodies.append(b"")
            self.etags.append("")
            self.modified.append("")
            self.render(index, start)

    def phrase(self, n: int) -> str:
        return " ".join(self.rng.choices(self.words, k=n))

    def entry(self, index: int, when: datetime) -> dict[str, Any]:
        self.serial[index] += 1
        n = self.serial[index]
        return {"title": self.phrase(self.rng.randint(6, 11)).capitalize(),
                "link": f"https://news{index}.example.test/story/{n}",
                "guid": f"feed{index}-story{n}",
                "description": "<p>" + " ".join(
                    self.phrase(self.rng.randint(16, 24)).capitalize() + "."
                    for _ in range(4)) + "</p>",
                "pub_date": when}

    def render(self, index: int, when: datetime) -> None:
        body = rss(f"Feed {index}", self.entries[index],
                   link=f"https://news{index}.example.test/").encode()
        self.bodies[index] = body
        self.etags[index] = f'"{hashlib.sha1(body).hexdigest()[:16]}"'
        self.modified[index] = format_datetime(when.replace(microsecond=0), usegmt=True)

    def advance(self, cycle: int, share: float, new: int) -> int:
        """`share` of the feeds get `new` entries in front (the oldest drop off the end)."""
        picks = random.Random(SEED + 100 + cycle).sample(range(len(self.bodies)),
                                                          round(share * len(self.bodies)))
        now = datetime.now(UTC)
        for index in picks:
            fresh = [self.entry(index, now - timedelta(seconds=k)) for k in range(new)]
            self.entries[index] = (fresh + self.entries[index])[:len(self.entries[index])]
            self.render(index, now)
        return len(picks)


def serve(feeds: int, entries: int, delay: float, port_out: Any) -> None:
    """Entry point of the server process: asyncio, HTTP/1.1 keep-alive, validators -> 304."""
    state = Feeds(feeds, entries)
    stats: Counter[str] = Counter()

    def answer(path: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        if path == STATS:
            return 200, json.dumps(stats).encode(), {"Content-Type": "application/json"}
        if path.startswith(ADVANCE):  # /__advance/<cycle>/<share>/<new>
            cycle, share, new = path.removeprefix(ADVANCE + "/").split("/")
            changed = state.advance(int(cycle), float(share), int(new))
            return 200, json.dumps({"changed": changed}).encode(), {}
        name = path.rsplit("/", 1)[-1].removesuffix(".xml")
        if not path.startswith("/feed/") or not name.isdigit() or int(name) >= feeds:
            return 404, b"not found", {"Content-Type": "text/plain"}
        index = int(name)
        extra = {"ETag": state.etags[index], "Last-Modified": state.modified[index]}
        tags = {t.strip() for t in headers.get("if-none-match", "").split(",") if t.strip()}
        if (state.etags[index] in tags if tags
                else headers.get("if-modified-since") == state.modified[index]):
            return 304, b"", extra
        return 200, state.bodies[index], {
            "Content-Type": "application/rss+xml; charset=utf-8", **extra}

    serve_http(answer, feeds, delay, stats, port_out)


def control(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


# ---------------------------------------------------------------- one replica (child process)


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pss_mib(pids: list[int]) -> float:
    """Proportional set size of the processes, MiB: a page shared by n processes counts 1/n in
    each, so the forkserver's pages that its parsers share are not counted twice (RSS would)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def rss_mib(pid: int, field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of a process, MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Replica:
    """One bot's polling: what bot.py builds for poll_due, driven one cycle at a time."""

    def __init__(self, url: str, concurrency: int | None) -> None:
        self.engine = make_engine(url)
        self.room = Newsroom(self.engine)  # as bot.py builds it
        self.reader = FeedReader(default_workers())  # PARSE_WORKERS unset
        self.policy = FetchPolicy(allowed_networks=(ip_network("127.0.0.0/8"),))
        self.kwargs: dict[str, Any] = {"reader": self.reader}
        if concurrency is not None:
            self.kwargs["concurrency"] = concurrency
        self.concurrency = concurrency or POLL_CONCURRENCY
        self.timers = Timers()
        self.timers.install()

    async def start(self) -> dict[str, Any]:
        self.reader.warm()  # as bot.py does at start-up
        for _ in range(200):
            if len(self.reader.worker_pids()) == self.reader.workers:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        self.client = make_client("Tidings-capacity")  # as bot.py builds its client
        return {"pid": os.getpid(), "workers": self.reader.worker_pids(),
                "rss_mib": round(rss_mib(os.getpid(), "VmRSS"), 1),
                "workers_rss_mib": round(sum(rss_mib(pid, "VmRSS")
                                             for pid in self.reader.worker_pids()), 1)}

    def usage(self) -> tuple[float, float]:
        return process_cpu(), worker_usage(self.reader.worker_pids())[0]

    def memory(self) -> dict[str, float]:
        workers = self.reader.worker_pids()
        return {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB, 1),
                "workers_peak_rss_mib": round(sum(rss_mib(pid, "VmHWM") for pid in workers), 1),
                "rss_mib": round(rss_mib(os.getpid(), "VmRSS"), 1),
                "workers_rss_mib": round(sum(rss_mib(pid, "VmRSS") for pid in workers), 1),
                # the replica with its forkserver, parsers and multiprocessing's tracker
                "tree_pss_mib": round(pss_mib(descendants(os.getpid())), 1),
                "workers": len(workers)}

    async def cycle(self) -> dict[str, Any]:
        """poll_due until nothing is due, as the poll job does tick after tick."""
        self.timers.clear()
        main, workers = self.usage()
        started = time.perf_counter()
        polled, new, errors = 0, 0, Counter[str]()
        while results := await poll_due(self.room, self.client, self.policy,
                                                 **self.kwargs):
            polled += len(results)
            new += sum(result.new for result in results)
            errors.update(result.error.code for result in results if result.error)
        wall = time.perf_counter() - started
        main_after, workers_after = self.usage()
        main_cpu, workers_cpu = main_after - main, workers_after - workers
        return {"s": round(wall, 3), "polled": polled, "new_stories": new,
                "errors": dict(errors), "cpu_main_s": round(main_cpu, 3),
                "cpu_workers_s": round(workers_cpu, 3),
                "cpu_ingest_s": round(self.timers.cpu["ingest"], 3),
                "parses": self.timers.calls["read"],
                "ingest_transactions": self.timers.calls["ingest"], **self.memory()}

    async def bare(self, modified: bool, sample: int) -> dict[str, Any]:
        """The floor: a bare httpx client, conditional GETs (all 304), or unconditional GETs
        and feedparser.parse of each body, at the same concurrency over the same feeds."""
        with session_scope(self.engine) as session:
            rows = [(s.url, s.etag) for s in sources.all_sources(session=session)]
        if modified:
            rows = rows[:: max(1, len(rows) // sample)][:sample]
        gate = asyncio.Semaphore(self.concurrency)
        statuses: Counter[int] = Counter()
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=8)

        async def get(client: httpx.AsyncClient, url: str, etag: str | None) -> None:
            async with gate:
                headers = {"If-None-Match": etag} if etag and not modified else {}
                response = await client.get(url, headers=headers)
                statuses[response.status_code] += 1
                if modified:
                    feedparser.parse(response.content)

        main = process_cpu()
        started = time.perf_counter()
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            await asyncio.gather(*(get(client, url, etag) for url, etag in rows))
        return {"s": round(time.perf_counter() - started, 3), "requests": len(rows),
                "statuses": {str(k): v for k, v in statuses.items()},
                "cpu_s": round(process_cpu() - main, 3)}

    def close(self) -> None:
        self.reader.close()
        self.room.close()
        self.engine.dispose()


async def child(args: argparse.Namespace) -> None:
    """Answers the parent's commands, one JSON line each: cycle, bare304, bare200, quit."""
    if args.cgroup:
        join(args.cgroup)  # before the forkserver starts: it and the parsers inherit the group
    replica = Replica(args.database, args.concurrency)
    print(json.dumps(await replica.start()), flush=True)
    loop = asyncio.get_running_loop()
    try:
        while command := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            if command == "cycle":
                answer = await replica.cycle()
            elif command == "bare304":
                answer = await replica.bare(False, 0)
            elif command == "bare200":
                answer = await replica.bare(True, args.sample)
            elif command == "quit":
                break
            else:
                answer = {"error": f"unknown command {command}"}
            print(json.dumps(answer), flush=True)
    finally:
        await replica.client.aclose()
        replica.close()


# ---------------------------------------------------------------- the parent


class Child:
    """A replica process, spoken to over its stdin and stdout."""

    def __init__(self, args: argparse.Namespace, database: str, port: int,
                 limits: CpuLimits | None = None, group: Path | None = None) -> None:
        self.limits, self.group = limits, group
        command = [sys.executable, str(Path(__file__).resolve().parent / "replica.py"), "--child",
                   "--database",
                   database, "--port", str(port), "--sample", str(args.sample)]
        if args.concurrency is not None:
            command += ["--concurrency", str(args.concurrency)]
        if group is not None:
            command += ["--cgroup", str(group)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.ready = self.receive()

    def send(self, command: str) -> None:
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()

    def receive(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise SystemExit(f"a replica stopped (exit {self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: str) -> dict[str, Any]:
        self.send(command)
        return self.receive()

    def throttling(self) -> dict[str, float]:
        """The CFS counters of the replica's cgroup ({} without one)."""
        if self.limits is None or self.group is None:
            return {}
        return self.limits.throttling(self.group)

    def confined(self) -> dict[str, Any]:
        """Which of the replica's processes (it, its forkserver, the parsers) are in its
        cgroup, read from /proc/<pid>/cgroup: the quota holds only if all are."""
        if self.limits is None or self.group is None:
            return {}
        tree = descendants(self.process.pid)
        workers = self.ready["workers"]
        outside = [pid for pid in tree if not self.limits.member(pid, self.group)]
        return {"processes": len(tree), "parsers_seen": sum(pid in tree for pid in workers),
                "outside": outside}

    def close(self) -> None:
        if self.process.poll() is None:
            self.send("quit")
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def prepare(url: str, port: int, feeds: int, topics: int) -> Engine:
    """Schema, N sources on a 10-minute interval, and `topics` subscriptions of CHATS chats."""
    engine = make_engine(url)
    migrate(engine)
    words = vocabulary()
    with session_scope(engine) as session:
        for index in range(feeds):
            sources.add(session=session, url=feed_url(port, index), name=f"Feed {index}",
                        interval_seconds=INTERVAL)
        for chat_id in range(1, min(CHATS, topics) + 1):
            chats.ensure_chat(session=session, chat_id=chat_id, chat_type="private",
                              title=None, language="en")
        for n in range(topics):
            subscriptions.add(session=session, chat_id=n % CHATS + 1, query=words[n * 7])
    return engine


def make_all_due(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(update(Source).values(next_poll_at=utcnow() - timedelta(seconds=1)))


def count(engine: Engine, model: Any) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def failing(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(Source).where(
            col(Source.error_code).is_not(None))).one())


class Backends:
    """CPU of the PostgreSQL server processes serving one database (read from /proc)."""

    def __init__(self, engine: Engine | None, database: str) -> None:
        self.engine, self.database = engine, database
        self.seen: dict[int, float] = {}

    def cpu(self) -> float:
        """CPU seconds the database's current backends used since last asked."""
        if self.engine is None:
            return 0.0
        with self.engine.connect() as connection:
            pids = [row[0] for row in connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :name "
                     "AND pid <> pg_backend_pid()"), {"name": self.database})]
        used = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            total = (int(fields[11]) + int(fields[12])) / TICK
            used += total - self.seen.get(pid, 0.0)
            self.seen[pid] = total
        return used


class Machine:
    """What else ran during a cycle: the whole machine's busy CPU (/proc/stat), the feed
    server's, and on PostgreSQL what the database's active backends were waiting on, sampled
    from pg_stat_activity over a connection to another database (so not counted as its CPU).
    Whether replicas short of their quota were starved by the machine or waiting on locks."""

    SAMPLE_SECONDS = 0.25

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.waits: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    @staticmethod
    def busy_idle() -> tuple[float, float]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle = fields[3] + fields[4]
        return (sum(fields) - idle) / TICK, idle / TICK

    def server_cpu(self) -> float:
        try:
            fields = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / TICK

    def begin(self, database: str) -> None:
        self.start = (*self.busy_idle(), self.server_cpu())
        self.waits.clear()
        self.stop.clear()
        if database:
            self.thread = threading.Thread(target=self.sample, args=(database,), daemon=True)
            self.thread.start()

    def sample(self, database: str) -> None:
        admin = create_engine(PG_ADMIN)
        query = text("SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE "
                     "datname = :name AND state = 'active' AND backend_type = 'client backend'")
        try:
            with admin.connect() as connection:
                while not self.stop.wait(self.SAMPLE_SECONDS):
                    rows = connection.execute(query, {"name": database}).all()
                    connection.commit()  # a fresh snapshot of pg_stat_activity each time
                    self.waits["samples"] += 1
                    self.waits["active"] += len(rows)
                    self.waits.update(f"{kind}:{event}" for kind, event in rows if kind)
        finally:
            admin.dispose()

    def end(self, wall: float) -> dict[str, Any]:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        busy, idle, server = (*self.busy_idle(), self.server_cpu())
        out: dict[str, Any] = {"machine_busy_cores": round((busy - self.start[0]) / wall, 3),
                               "machine_idle_cores": round((idle - self.start[1]) / wall, 3),
                               "server_cores": round((server - self.start[2]) / wall, 3)}
        if self.waits["samples"]:
            out["database_waits"] = dict(self.waits)
        return out


def run_cycle(kind: str, engine: Engine, children: list[Child], port: int,
              backends: Backends, advance: tuple[int, float, int] | None,
              machine: Machine | None = None) -> dict[str, Any]:
    """Change the feeds (or not), make every source due, let every replica poll it."""
    changed = control(port, f"{ADVANCE}/{advance[0]}/{advance[1]}/{advance[2]}")["changed"] \
        if advance else 0
    make_all_due(engine)
    before = Counter(control(port, STATS))
    items, deliveries = count(engine, Item), count(engine, Delivery)
    backends.cpu()
    throttled = [replica.throttling() for replica in children]
    if machine is not None:
        machine.begin(backends.database)
    started = time.perf_counter()
    for replica in children:
        replica.send("cycle")
    answers = [replica.receive() for replica in children]
    wall = time.perf_counter() - started
    around = machine.end(wall) if machine is not None else {}
    database_cpu = backends.cpu()
    for replica, answer, before_throttling in zip(children, answers, throttled, strict=True):
        answer["busy_cores"] = round((answer["cpu_main_s"] + answer["cpu_workers_s"]) / wall, 3)
        if before_throttling:
            after = replica.throttling()
            answer["throttling"] = {key: round(after[key] - before_throttling[key], 3)
                                    for key in after}
    responses = Counter(control(port, STATS)) - before
    polled = sum(answer["polled"] for answer in answers)
    cpu = sum(answer["cpu_main_s"] + answer["cpu_workers_s"] for answer in answers)
    result = {
        "kind": kind, "changed": changed, "s": round(wall, 3), "polled": polled,
        "responses": dict(responses), "items_added": count(engine, Item) - items,
        "deliveries_added": count(engine, Delivery) - deliveries,
        "failing_sources": failing(engine),
        "cpu_s": round(cpu, 3), "cpu_ms_per_feed": round(1000 * cpu / max(1, polled), 3),
        "feeds_per_s": round(polled / wall, 1),
        "database_cpu_s": round(database_cpu, 3),
        "replicas": answers, **around,
    }
    if around:  # what ran besides the replicas, the database and the server: others' work
        result["other_cores"] = round(around["machine_busy_cores"] - around["server_cores"]
                                      - (cpu + database_cpu) / wall, 3)
    busy = "/".join(f"{answer['busy_cores']:.2f}" for answer in answers)
    held = "/".join(f"{t['throttled'] / max(1, t['periods']):.0%}"
                    for t in (answer.get("throttling") for answer in answers) if t)
    print(f"  {kind:<10} {wall:7.1f} s  {polled:6,} polled  "
          f"{dict(sorted(responses.items()))}  CPU {cpu:6.2f} s = "
          f"{result['cpu_ms_per_feed']:.3f} ms/feed"
          + (f"  (PostgreSQL {database_cpu:.2f} s)" if backends.engine else "")
          + f"  busy {busy} cores" + (f", throttled {held} of periods" if held else "")
          + (f"; machine idle {around['machine_idle_cores']:.2f} cores, other processes "
             f"{result['other_cores']:.2f}" if around else ""), flush=True)
    if "database_waits" in around:
        waits = around["database_waits"]
        locks = sum(n for key, n in waits.items() if key.startswith("Lock:"))
        events = ", ".join(f"{key} {n}" for key, n in sorted(waits.items(), key=lambda kv: -kv[1])
                           if key not in ("samples", "active")) or "no waits"
        print(f"             PostgreSQL: {waits['active'] / waits['samples']:.2f} active backends "
              f"on average, {locks / waits['samples']:.2f} waiting on a lock ({events}; "
              f"{waits['samples']} samples)", flush=True)
    return result


def memory(children: list[Child], answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak RSS of each polling process plus the peaks of its parser processes."""
    per = [a["peak_rss_mib"] + a["workers_peak_rss_mib"] for a in answers]
    now = [a["rss_mib"] + a["workers_rss_mib"] for a in answers]
    return {"peak_total_mib": round(sum(per), 1), "steady_total_mib": round(sum(now), 1),
            "steady_pss_mib": [a["tree_pss_mib"] for a in answers],
            "polling_peak_mib": [a["peak_rss_mib"] for a in answers],
            "parsers_peak_mib": [a["workers_peak_rss_mib"] for a in answers],
            "parsers": [a["workers"] for a in answers],
            "start_rss_mib": [c.ready["rss_mib"] + c.ready["workers_rss_mib"] for c in children]}


def steady(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU per feed and throughput over the steady cycles."""
    polled = sum(c["polled"] for c in cycles)
    cpu = sum(c["cpu_s"] for c in cycles)
    wall = sum(c["s"] for c in cycles)
    per_feed = cpu / max(1, polled)
    return {"cycles": len(cycles), "polled": polled, "cpu_s": round(cpu, 3),
            "cpu_ms_per_feed": round(1000 * per_feed, 3),
            "feeds_per_core": round(INTERVAL / per_feed) if per_feed else 0,
            "feeds_per_s": round(polled / wall, 1),
            "database_cpu_ms_per_feed": round(
                1000 * sum(c["database_cpu_s"] for c in cycles) / max(1, polled), 3)}


def phase(name: str, args: argparse.Namespace, url: str, engine: Engine, port: int,
          backends: Backends, replicas: int, serial: list[int], fresh: bool,
          floor: bool = False, limits: CpuLimits | None = None,
          machine: Machine | None = None) -> dict[str, Any]:
    """Start the replicas (each in a cgroup of its own with --replica-cpu cores, given
    limits), run the cycles (and the bare floor, once a run), stop them."""
    quota = f", {args.replica_cpu:g} core each (cgroup)" if limits else ""
    print(f"{name}: {replicas} replica{'s' * (replicas > 1)}{quota}", flush=True)
    children: list[Child] = []
    out: dict[str, Any] = {"replicas": replicas}
    if limits:
        out["replica_cpu"] = args.replica_cpu
    try:
        for n in range(replicas):
            group = limits.group(f"{replicas}x-{n}", args.replica_cpu) if limits else None
            children.append(Child(args, url, port, limits, group))
        if limits:
            out["confined_at_start"] = [replica.confined() for replica in children]

        def advance() -> tuple[int, float, int]:
            serial[0] += 1
            return serial[0], args.changed, args.new

        def cycle(kind: str, change: tuple[int, float, int] | None) -> dict[str, Any]:
            return run_cycle(kind, engine, children, port, backends, change, machine)

        if fresh:
            out["warm_up"] = cycle("warm-up", None)
            analyze(engine)
            if floor:
                out["bare_304"] = children[0].ask("bare304")
                out["bare_200_parse"] = children[0].ask("bare200")
                b304, b200 = out["bare_304"], out["bare_200_parse"]
                print(f"  bare 304   {b304['cpu_s'] / b304['requests'] * 1000:.3f} ms/feed; "
                      f"bare 200+parse {b200['cpu_s'] / b200['requests'] * 1000:.3f} ms/feed",
                      flush=True)
            out["unchanged"] = cycle("unchanged", None)
        else:
            out["warm_up"] = cycle("warm-up", advance())
        out["steady"] = [cycle("steady", advance()) for _ in range(args.cycles)]
        out["summary"] = steady(out["steady"])
        answers = out["steady"][-1]["replicas"]
        out["memory"] = memory(children, answers)
        if limits:
            out["confined_at_end"] = [replica.confined() for replica in children]
            outside = [pid for confined in (*out["confined_at_start"], *out["confined_at_end"])
                       for pid in confined["outside"]]
            print(f"  cgroups: {', '.join(str(c['processes']) for c in out['confined_at_end'])} "
                  f"processes per replica (itself, forkserver, parsers), outside their group: "
                  f"{outside or 'none'}", flush=True)
    finally:
        for replica in children:
            replica.close()
    return out


def analyze(engine: Engine) -> None:
    """Statistics for the tables the first poll filled, as autovacuum gathers them within a
    minute on a default PostgreSQL; without any, plans guess (this machine's server runs with
    autovacuum off: the figures say which)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))


def autovacuum(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(text("SHOW autovacuum")).scalar())


def cpu_limits(args: argparse.Namespace) -> CpuLimits | None:
    """cgroups for the replicas' quotas, or None (with a note saying why) where there are none."""
    if args.replica_cpu <= 0 or args.no_postgres:
        return None
    limits = CpuLimits.create()
    if isinstance(limits, str):
        print(f"no CPU quotas for the replicas: {limits}; 2 replicas vs 1 is measured only on "
              "the shared cores", flush=True)
        return None
    return limits


def create_database() -> tuple[str, str] | None:
    """A scratch PostgreSQL database (name, URL), or None when the server is not there."""
    name = f"tidings_capacity_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # reported, and the PostgreSQL part skipped
        print(f"PostgreSQL not available ({type(exc).__name__}): skipping replicas", flush=True)
        return None
    finally:
        admin.dispose()
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=None, help=f"default {FEEDS:,}")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_FEEDS:,} feeds and {QUICK_CYCLES} steady cycles")
    parser.add_argument("--entries", type=int, default=ENTRIES, help="entries per feed")
    parser.add_argument("--changed", type=float, default=CHANGED,
                        help="share of the feeds that change each cycle")
    parser.add_argument("--new", type=int, default=NEW, help="new entries in a changed feed")
    parser.add_argument("--delay", type=float, default=DELAY, help="server answer delay, s")
    parser.add_argument("--cycles", type=int, default=None,
                        help=f"steady cycles measured (default {CYCLES}, quick {QUICK_CYCLES})")
    parser.add_argument("--topics", type=int, default=TOPICS, help="subscriptions")
    parser.add_argument("--sample", type=int, default=BARE_200_SAMPLE,
                        help="feeds the bare 200 + parse floor fetches")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="poll_due concurrency (default: poll_due's own, as the bot)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--replica-cpu", type=float, default=REPLICA_CPU,
                        help="CPU quota (cores) of each replica in the PostgreSQL 1-vs-2 "
                             f"runs under cgroups (default {REPLICA_CPU:g}; 0: none)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--cgroup", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args))
        return
    args.feeds = args.feeds or (QUICK_FEEDS if args.quick else FEEDS)
    args.cycles = args.cycles or (QUICK_CYCLES if args.quick else CYCLES)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks run
    started = time.perf_counter()
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(args.feeds, args.entries, args.delay, send), daemon=True)
    server.start()
    serial = [0]
    results: dict[str, Any] = {}
    limits = cpu_limits(args)
    machine = Machine(server.pid)
    try:
        port = receive.recv()
        print(f"{args.feeds:,} feeds of {args.entries} entries served on "
              f"{len(hosts(args.feeds)):,} loopback hosts (port {port}), "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="tidings-capacity-") as workdir:
            url = f"sqlite:///{Path(workdir) / 'bench.db'}"
            engine = prepare(url, port, args.feeds, args.topics)
            results["sqlite"] = phase("SQLite", args, url, engine, port,
                                      Backends(None, ""), 1, serial, fresh=True, floor=True,
                                      machine=machine)
            engine.dispose()
        scratch = None if args.no_postgres else create_database()
        if scratch is not None:
            name, url = scratch
            try:
                engine = prepare(url, port, args.feeds, args.topics)
                backends = Backends(engine, name)
                results["postgresql_autovacuum"] = autovacuum(engine)
                results["postgresql_1"] = phase("PostgreSQL", args, url, engine, port,
                                                backends, 1, serial, fresh=True,
                                                machine=machine)
                results["postgresql_2"] = phase("PostgreSQL", args, url, engine, port,
                                                backends, 2, serial, fresh=False,
                                                machine=machine)
                if limits:
                    for replicas in (1, 2):
                        results[f"postgresql_{replicas}_quota"] = phase(
                            "PostgreSQL", args, url, engine, port, backends, replicas, serial,
                            fresh=False, limits=limits, machine=machine)
                engine.dispose()
            finally:
                drop_database(name)
    finally:
        server.terminate()
        server.join()
        if limits:
            limits.close()
    report(args, results, time.perf_counter() - started)


def scale_out(one_phase: dict[str, Any], two_phase: dict[str, Any], label: str) -> float:
    """Prints and returns the wall throughput of the two-replica phase over the one-replica's,
    with what the replicas did with their CPU meanwhile."""
    one, two = one_phase["summary"], two_phase["summary"]
    ratio: float = two["feeds_per_s"] / one["feeds_per_s"]
    cpu_ratio = two["cpu_ms_per_feed"] / one["cpu_ms_per_feed"]

    def busy(phase: dict[str, Any]) -> str:
        cores = [r["busy_cores"] for c in phase["steady"] for r in c["replicas"]]
        throttling = [r["throttling"] for c in phase["steady"] for r in c["replicas"]
                      if "throttling" in r]
        share = (sum(t["throttled"] for t in throttling)
                 / max(1, sum(t["periods"] for t in throttling)))
        held = f", throttled in {share:.0%} of CFS periods" if throttling else ""
        cycles = phase["steady"]
        waits = [c["database_waits"] for c in cycles if "database_waits" in c]
        locks = (sum(n for w in waits for k, n in w.items() if k.startswith("Lock:"))
                 / max(1, sum(w["samples"] for w in waits)))
        around = ""
        if "other_cores" in cycles[0]:
            idle = sum(c["machine_idle_cores"] for c in cycles) / len(cycles)
            others = sum(c["other_cores"] for c in cycles) / len(cycles)
            around = f"; machine idle {idle:.2f} cores, other processes {others:.2f}"
        return (f"{min(cores):.2f}-{max(cores):.2f} cores busy per replica{held}{around}"
                + (f", {locks:.2f} backends waiting on a lock" if waits else ""))

    print(f"{label}: throughput {two['feeds_per_s']:.0f} vs {one['feeds_per_s']:.0f} feeds/s = "
          f"{ratio:.2f}x; CPU per feed {cpu_ratio:.2f}x one replica's; 1 replica "
          f"{busy(one_phase)}; 2 replicas {busy(two_phase)} ({os.cpu_count()} cores; "
          f"PostgreSQL {one['database_cpu_ms_per_feed']:.3f} / "
          f"{two['database_cpu_ms_per_feed']:.3f} ms per feed)")
    return ratio


def report(args: argparse.Namespace, results: dict[str, Any], total: float) -> None:
    changed = args.changed
    lite = results["sqlite"]
    bare304 = lite["bare_304"]["cpu_s"] / lite["bare_304"]["requests"]
    bare200 = lite["bare_200_parse"]["cpu_s"] / lite["bare_200_parse"]["requests"]
    floor = (1 - changed) * bare304 + changed * bare200
    unchanged = lite["unchanged"]["cpu_s"] / max(1, lite["unchanged"]["polled"])
    summary = lite["summary"]
    per_feed = summary["cpu_ms_per_feed"] / 1000
    per_core = summary["feeds_per_core"]
    mem = lite["memory"]
    per_10k = mem["peak_total_mib"] if args.feeds == 10_000 else None
    print(f"\nCapacity: {args.feeds:,} feeds x {args.entries} entries, {changed:.0%} changed "
          f"with {args.new} new entries per cycle, the rest 304; {INTERVAL // 60}-minute "
          f"interval; {args.topics:,} subscriptions; server delay {args.delay * 1000:.0f} ms; "
          f"{os.cpu_count()} cores")
    rule = "-" * 96
    print(rule)
    print(f"{'':<44}{'CPU ms/feed':>12}{'vs floor':>10}{'feeds/core':>12}   notes")
    print(rule)

    def line(name: str, seconds: float, floor_s: float | None, note: str = "") -> None:
        ratio = f"{seconds / floor_s:.2f}x" if floor_s else ""
        print(f"{name:<44}{seconds * 1000:>12.3f}{ratio:>10}{INTERVAL / seconds:>12,.0f}   {note}")

    line("bare httpx conditional GET (304)", bare304, None, "floor of the unchanged path")
    line("bare httpx GET + feedparser.parse (200)", bare200, None,
         f"sample of {lite['bare_200_parse']['requests']}")
    line(f"floor, steady mix ({1 - changed:.0%} 304)", floor, None)
    line("ours, unchanged cycle (all 304), SQLite", unchanged, bare304)
    line(f"ours, steady, SQLite ({summary['cycles']} cycles)", per_feed, floor)
    quota = f"{args.replica_cpu:g} core"
    for key, label in (("postgresql_1", "ours, steady, PostgreSQL, 1 replica"),
                       ("postgresql_2", "ours, steady, PostgreSQL, 2 replicas"),
                       ("postgresql_1_quota", f"ours, steady, PostgreSQL, 1 x {quota}"),
                       ("postgresql_2_quota", f"ours, steady, PostgreSQL, 2 x {quota}")):
        if key in results:
            s = results[key]["summary"]
            line(label, s["cpu_ms_per_feed"] / 1000, floor,
                 f"+ PostgreSQL backends {s['database_cpu_ms_per_feed']:.3f} ms/feed")
    print(rule)
    phases = ("postgresql_1", "postgresql_2", "postgresql_1_quota", "postgresql_2_quota")
    for name, c in (("SQLite", lite), *((k, results[k]) for k in phases if k in results)):
        for cycle in c["steady"]:
            parts = ", ".join(f"{r['cpu_main_s']:.2f} + {r['cpu_workers_s']:.2f} parsers "
                              f"(ingest {r['cpu_ingest_s']:.2f})" for r in cycle["replicas"])
            print(f"{name} steady cycle: {cycle['s']:.1f} s wall, {cycle['polled']:,} polled, "
                  f"{cycle['items_added']:,} items, {cycle['deliveries_added']:,} deliveries, "
                  f"CPU s polling + parsers: {parts}")
    checks: dict[str, Any] = {
        "feeds_per_core": {"target": f">= {TARGET_PER_CORE:,}", "value": per_core,
                           "met": per_core >= TARGET_PER_CORE},
    }
    print(f"memory: peak {mem['peak_total_mib']:.0f} MiB for {args.feeds:,} feeds "
          f"(polling process {mem['polling_peak_mib'][0]:.0f} MiB + {mem['parsers'][0]} parser "
          f"processes {mem['parsers_peak_mib'][0]:.0f} MiB; {mem['start_rss_mib'][0]:.0f} MiB "
          f"at start-up; {mem['steady_total_mib']:.0f} MiB after the steady cycles)"
          + ("" if per_10k is not None else
                             " (run with the default 10,000 feeds for memory per 10,000)"))
    pss = mem["steady_pss_mib"][0]
    print(f"memory, PSS: {pss:.0f} MiB for the replica with its parser processes after the "
          f"steady cycles, {args.feeds:,} feeds (target for 10,000 feeds: <= "
          f"{TARGET_PSS_PER_10K} MiB)")
    if per_10k is not None:
        checks["pss_per_10k_mib"] = {"target": f"<= {TARGET_PSS_PER_10K}", "value": pss,
                                     "met": pss <= TARGET_PSS_PER_10K}
    if "postgresql_autovacuum" in results:
        print(f"PostgreSQL: autovacuum {results['postgresql_autovacuum']} on this server; the "
              "bench runs ANALYZE after the warm-up, as autovacuum would")
    if "postgresql_2" in results:
        ratio = scale_out(results["postgresql_1"], results["postgresql_2"],
                          "2 replicas vs 1 on PostgreSQL, sharing the cores")
        polled = [c["polled"] for c in results["postgresql_2"]["steady"]]
        overlap = all(p == args.feeds for p in polled)
        print(f"each source polled once per cycle across both replicas: {overlap} ({polled})")
        checks["two_replicas_once_each"] = {"target": "every source once per cycle",
                                            "value": polled, "met": overlap}
        checks["two_replicas_throughput_ratio_shared"] = {
            "target": "close to 2x", "value": round(ratio, 2), "met": None,
            "note": "the replicas share the machine's cores with PostgreSQL and the server"}
    if "postgresql_2_quota" in results:
        ratio = scale_out(results["postgresql_1_quota"], results["postgresql_2_quota"],
                          f"2 replicas vs 1 on PostgreSQL, {quota} each (cgroup quota)")
        checks["two_replicas_throughput_ratio"] = {
            "target": "close to 2x", "value": round(ratio, 2), "met": ratio >= 1.8,
            "note": f"each replica (with its parser processes) held to {quota} by a cgroup"}
    verdict = "met" if checks["feeds_per_core"]["met"] else "NOT MET"
    print(f"target: >= {TARGET_PER_CORE:,} feeds per core at a {INTERVAL // 60}-minute interval "
          f"(SQLite, one replica): {per_core:,} - {verdict}; the busiest self-hosted peer: "
          f"about {PEER_PER_CORE:,} per core at about {PEER_MB} MB")
    print(f"total wall time: {total:.1f} s")
    figures = {
        "benchmark": "capacity", "feeds": args.feeds, "entries": args.entries,
        "changed": changed, "new_entries": args.new, "delay_ms": args.delay * 1000,
        "interval_s": INTERVAL, "topics": args.topics, "seed": SEED,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "feedparser": package_version("feedparser"),
                    "httpx": package_version("httpx")},
        "floor_ms_per_feed": {"bare_304": round(bare304 * 1000, 3),
                              "bare_200_parse": round(bare200 * 1000, 3),
                              "steady_mix": round(floor * 1000, 3)},
        "results": results, "targets": checks, "total_wall_s": round(total, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
