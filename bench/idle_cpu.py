"""What an idle bot costs the machine: CPU a second and wake-ups a second, with nothing to send.

Run from the repository root (about a minute and a half):

    .venv/bin/python bench/idle_cpu.py [--chats 10] [--seconds 20]

The real bot (`python bot.py`, LLM offline) runs against the loopback Bot API emulator with
one source, added with /addsource, and `--chats` private chats each following "SoftBank",
seeded straight into its SQLite database. Twice in the same run: with the source polled every
second (POLL_INTERVAL_SECONDS=1, as bench/fanout.py runs it, whose per-alert figure carries
these ticks) and at the default interval (300 s), where only the jobs' own ticks remain.

For each, after start-up and a settling pause, every thread of the bot's process is sampled
from /proc/<pid>/task/*/schedstat over `--seconds`: the CPU it ran (ns, not clock ticks) and
how many times it was scheduled in (a wake-up each). Python does not name its threads for the
kernel, so the event loop's thread is told apart and the others are summed.

Baseline from the same run: the CPU one wake of an otherwise idle asyncio loop costs at 30
wakes a second (bench/fanout.py's `wake_cost`); the idle CPU a second is also given in such
wakes, so that machines of different speed compare. Writes bench/results/idle_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fanout import seed, wake_cost  # noqa: E402
from tests.conftest import BotProcess  # noqa: E402
from tests.fakes.feeds import FeedServer, rss  # noqa: E402
from tests.fakes.telegram import BotApiEmulator  # noqa: E402
from tests.harness import ADMIN_ID, BASELINE, TOKEN, env_for, say  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "idle_cpu.json"
SETTLE = 5.0  # seconds after the source is added: its first polls and the start-up's tail
INTERVALS = (1, 300)  # POLL_INTERVAL_SECONDS: the fan-out bench's, the default


def threads(pid: int) -> dict[int, tuple[int, int]]:
    """Thread id -> (CPU ns run, times scheduled in), from schedstat."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ran, _, slices = (task / "schedstat").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
        found[int(task.name)] = (int(ran), int(slices))
    return found


def sample(pid: int, seconds: float) -> dict[str, float]:
    """CPU ms and wake-ups a second over `seconds`: the event loop's thread, the others."""
    before, started = threads(pid), time.monotonic()
    time.sleep(seconds)
    after, elapsed = threads(pid), time.monotonic() - started
    loop_ms = others_ms = loop_wakes = others_wakes = 0.0
    for tid, (ran, slices) in after.items():
        ran_before, slices_before = before.get(tid, (0, 0))
        ms, wakes = (ran - ran_before) / 1e6 / elapsed, (slices - slices_before) / elapsed
        if tid == pid:
            loop_ms, loop_wakes = ms, wakes
        else:
            others_ms, others_wakes = others_ms + ms, others_wakes + wakes
    return {"cpu_ms_per_s": round(loop_ms + others_ms, 2),
            "wakes_per_s": round(loop_wakes + others_wakes, 1),
            "loop_cpu_ms_per_s": round(loop_ms, 2), "loop_wakes_per_s": round(loop_wakes, 1),
            "other_threads_cpu_ms_per_s": round(others_ms, 2),
            "other_threads_wakes_per_s": round(others_wakes, 1), "threads": len(after)}


def run(chats: int, seconds: float, interval: int, workdir: Path) -> dict[str, Any]:
    database_url = f"sqlite:///{workdir / 'idle.db'}"
    seed(database_url, list(range(100_000, 100_000 + chats)))
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        feeds.put("/feed.xml", rss("Test News", BASELINE))
        admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
        env = env_for(telegram, database_url) | {"LOG_LEVEL": "INFO",
                                                 "POLL_INTERVAL_SECONDS": str(interval)}
        bot = BotProcess(workdir, env).start()
        try:
            bot.wait_for_log("Tidings starting", timeout=60)
            reply = say(telegram, telegram.private_chat(admin), admin,
                        f"/addsource {feeds.url('/feed.xml')}")
            assert "Test News" in reply, reply
            time.sleep(SETTLE)
            assert bot.process is not None
            figures = sample(bot.process.pid, seconds)
            bot.terminate(timeout=30)
        finally:
            bot.kill()
    return {"poll_interval_s": interval, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    wake_s = wake_cost()
    rows = []
    for interval in INTERVALS:
        with tempfile.TemporaryDirectory() as workdir:
            rows.append(run(args.chats, args.seconds, interval, Path(workdir)))
    print(f"baseline: one idle asyncio loop wake at 30/s costs {wake_s * 1000:.3f} ms CPU")
    print(f"{'poll every':>10}  {'CPU ms/s':>8}  {'wakes/s':>7}  {'in wakes':>8}  "
          f"{'loop ms/s':>9}  {'loop wakes':>10}  {'others ms/s':>11}  {'others wakes':>12}")
    for row in rows:
        print(f"{row['poll_interval_s']:>9}s  {row['cpu_ms_per_s']:>8.2f}  "
              f"{row['wakes_per_s']:>7.1f}  {row['cpu_ms_per_s'] / 1000 / wake_s:>8.1f}  "
              f"{row['loop_cpu_ms_per_s']:>9.2f}  {row['loop_wakes_per_s']:>10.1f}  "
              f"{row['other_threads_cpu_ms_per_s']:>11.2f}  "
              f"{row['other_threads_wakes_per_s']:>12.1f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": platform.platform(), "python": platform.python_version(),
        "chats": args.chats, "seconds": args.seconds,
        "loop_wake_cpu_ms_at_30_per_s": round(wake_s * 1000, 3),
        "runs": [{**row, "cpu_in_loop_wakes_per_s": round(row["cpu_ms_per_s"] / 1000 / wake_s, 1)}
                 for row in rows]}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
