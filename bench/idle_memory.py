"""An idle bot's memory, process by process, and how fast its first /addsource is answered.

Run from the repository root (about a minute):

    .venv/bin/python bench/idle_memory.py

The real bot runs against the loopback Bot API emulator with one source, twice in the same
run: as shipped (`python bot.py`, the thin launcher) and, as the baseline, with the
application itself as the main module (`python app.py`, which is what bot.py used to be).
forkserver re-runs the main module in every parser process, so the baseline's parsers carry
python-telegram-bot, openai and the rest.

For each, after start-up with the parser pool warm: the proportional set size (PSS, from
/proc/<pid>/smaps_rollup: a page shared by n processes counts 1/n in each, so shared pages are
not counted twice) and the number of modules of the bot, the forkserver and each parser
process, and the tree's total. Then three /addsource commands for three fresh feeds, the
first sent as soon as the bot logs that it started: the time from sending each to its answer.

Targets (issue 21): a parser worker under 45 MiB PSS, the whole tree under 260 MiB, and the
first /addsource answered about as fast as the later ones. Writes bench/results/idle_memory.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import BotProcess  # noqa: E402
from tests.fakes.feeds import FeedServer, rss  # noqa: E402
from tests.fakes.telegram import BotApiEmulator  # noqa: E402

TOKEN = "123456:BENCH-TOKEN"
ADMIN = 1001
MIB = 1024


class Launched(BotProcess):
    """BotProcess with another main module: bot.py as shipped, or app.py as the baseline."""

    def __init__(self, workdir: Path, env: dict[str, str], launcher: str) -> None:
        super().__init__(workdir, env)
        self.launcher = launcher

    def start(self) -> Launched:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TELEGRAM_"))}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / self.launcher)], cwd=self.workdir,
                env={**clean, "SEARCH_PROVIDERS": "", **self.env}, stdout=log,
                stderr=subprocess.STDOUT)
        return self


def children(pid: int) -> list[int]:
    """Direct children of pid, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def tree(pid: int) -> list[int]:
    out = [pid]
    for child in children(pid):
        out.extend(tree(child))
    return out


def pss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / MIB
    return 0.0


def role(pid: int, root: int) -> str:
    """bot, forkserver, parser (the forkserver's children) or tracker (multiprocessing's)."""
    if pid == root:
        return "bot"
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    if "resource_tracker" in cmdline:
        return "tracker"
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return "forkserver" if parent == root else "parser"


def wait_for_workers(root: int, count: int, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = tree(root)
        if sum(role(pid, root) == "parser" for pid in pids) >= count:
            return pids
        time.sleep(0.2)
    raise RuntimeError(f"fewer than {count} parser processes after {timeout}s")


def addsource_seconds(telegram: BotApiEmulator, chat: dict[str, Any], user: dict[str, Any],
                      url: str) -> float:
    before = len(telegram.messages(chat["id"]))
    started = time.monotonic()
    telegram.send_text(chat, user, f"/addsource {url}")
    telegram.wait_for_messages(chat["id"], before + 1, timeout=60)
    return time.monotonic() - started


def one_run(launcher: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch, BotApiEmulator(token=TOKEN) as telegram, \
            FeedServer() as feeds:
        for index in range(3):
            feeds.put(f"/feed{index}.xml", rss(f"Feed {index}", [
                {"title": f"Entry {index}.{n} about the weather", "link": f"http://x.test/{index}/{n}",
                 "guid": f"{index}-{n}", "description": "Rain."} for n in range(20)]))
        env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.base_url,
               "DATABASE_URL": f"sqlite:///{scratch}/bench.db", "ADMIN_IDS": str(ADMIN),
               "ALLOWED_SOURCE_NETWORKS": "127.0.0.0/8", "FULL_TEXT": "false",
               "COMMANDS_PER_MINUTE": "0", "PARSE_WORKERS": "2", "SEARCH_PROVIDERS": ""}
        bot = Launched(Path(scratch), env, launcher).start()
        assert bot.process is not None
        try:
            admin = telegram.user(ADMIN, "Ada", language_code="en")
            chat = telegram.private_chat(admin)
            bot.wait_for_log("Tidings starting", timeout=60)
            answers = [addsource_seconds(telegram, chat, admin, feeds.url(f"/feed{index}.xml"))
                       for index in range(3)]
            pids = wait_for_workers(bot.process.pid, 2)
            time.sleep(1.0)  # let start-up's transient allocations settle before reading
            processes = [{"role": role(pid, bot.process.pid), "pid": pid,
                          "pss_mib": round(pss_mib(pid), 1)} for pid in pids]
        finally:
            bot.terminate()
    parsers = [p["pss_mib"] for p in processes if p["role"] == "parser"]
    return {"launcher": launcher, "processes": processes,
            "tree_pss_mib": round(sum(p["pss_mib"] for p in processes), 1),
            "parser_pss_mib": parsers,
            "addsource_seconds": [round(s, 2) for s in answers]}


def main() -> None:
    runs = [one_run("bot.py"), one_run("app.py")]
    shipped, baseline = runs
    for run in runs:
        print(f"{run['launcher']:>7}: tree {run['tree_pss_mib']:6.1f} MiB PSS; "
              + ", ".join(f"{p['role']} {p['pss_mib']:.1f}" for p in run["processes"])
              + "; /addsource answered in "
              + ", ".join(f"{s:.2f}s" for s in run["addsource_seconds"]))
    print(f"tree: {shipped['tree_pss_mib'] / baseline['tree_pss_mib']:.2f}x of the baseline; "
          f"largest parser {max(shipped['parser_pss_mib']):.1f} MiB (target < 45), tree "
          f"{shipped['tree_pss_mib']:.1f} MiB (target < 260); first /addsource "
          f"{shipped['addsource_seconds'][0] / max(shipped['addsource_seconds'][1:]):.2f}x "
          "the slower of the next two")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "idle_memory.json").write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
