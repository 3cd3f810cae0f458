"""Parser processes carry the parser, not the bot (issue 21 item 1).

forkserver re-runs the parent's main module in the server that forks every worker. When that
module is bot.py, whatever bot.py imports at module level lands in every parser process: it
used to be python-telegram-bot, openai and the rest, three times the modules and the memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# A process whose main module is the given file (as `python bot.py` makes bot.py), asking its
# parser pool what one worker has imported.
WORKER_REPORT = """
import asyncio, json, sys, __main__
__main__.__file__ = sys.argv[1]
from news.parsing import Killable
from tests.lean_probe import heavy_modules, module_count

async def ask():
    pool = Killable(1, 60.0)
    try:
        return [await pool.run(heavy_modules), await pool.run(module_count)]
    finally:
        pool.close()

print(json.dumps(asyncio.run(ask())))
"""


def worker_report(main_module: Path) -> tuple[list[str], int]:
    done = subprocess.run([sys.executable, "-c", WORKER_REPORT, str(main_module)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=True)
    heavy, count = json.loads(done.stdout.strip().splitlines()[-1])
    return heavy, count


def test_a_parser_worker_of_the_bot_imports_neither_telegram_nor_openai() -> None:
    heavy, count = worker_report(REPO / "bot.py")
    assert heavy == [], f"a parser worker imported {heavy}"
    assert count < 1000, f"a parser worker holds {count} modules"


def test_the_probe_sees_what_a_heavy_main_module_would_bring() -> None:
    """The control: with the application as its main module, the same probe reports it."""
    heavy, _ = worker_report(REPO / "app.py")
    assert {"telegram", "openai"} <= set(heavy)


@pytest.mark.parametrize("module", ["news.parsing", "news.xmlguard", "news.feeds"])
def test_importing_the_parsing_modules_stays_lean(module: str) -> None:
    """Like reader's lazy-import test: the parser's own modules never pull in the bot."""
    code = (f"import sys, json, {module}; "
            "print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = set(json.loads(done.stdout))
    assert not loaded & {"telegram", "openai", "sqlalchemy", "sqlmodel", "matplotlib"}


def test_feed_parsers_leave_article_extraction_to_the_article_workers() -> None:
    """trafilatura is half of the parser's imports: the forkserver preloads news.parsing for
    every worker, so it must not come with it (the article workers import it themselves)."""
    code = "import sys, news.parsing; print('trafilatura' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "False"
