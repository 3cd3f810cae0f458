"""Layers that run one way (issue 21 item 3): storage/ stores and queries, and of news/ it
knows only the plain data both share (news.types); what a step decides stays in news/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from news.parsing import FeedReader

ROOT = Path(__file__).resolve().parent.parent
SHARED = "news.types"


def _news_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module of news/ the code imports, at any depth (a function's own import too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names
                      if alias.name == "news" or alias.name.startswith("news.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "news":  # `from news import items` imports news.items
                found += [(node.lineno, f"news.{alias.name}") for alias in node.names]
            elif node.module.startswith("news."):
                found.append((node.lineno, node.module))
    return found


def test_the_scan_sees_every_way_of_importing_news() -> None:
    """The guard below is only as good as this scan."""
    sample = ast.parse(
        "import news.items\n"
        "from news import stories\n"
        "from news.types import Topic\n"
        "def later():\n"
        "    from news.briefs import Brief\n")
    assert _news_imports(sample) == [(1, "news.items"), (2, "news.stories"), (3, "news.types"),
                                     (5, "news.briefs")]


def test_storage_imports_nothing_of_news_but_the_shared_types() -> None:
    files = sorted(path for path in (ROOT / "storage").rglob("*.py")
                   if "migrations" not in path.parts)
    assert len(files) > 10
    offenders = [f"{path.relative_to(ROOT)}:{line} {module}"
                 for path in files
                 for line, module in _news_imports(ast.parse(path.read_text()))
                 if module != SHARED]
    assert offenders == [], f"storage/ may import only {SHARED} from news/"


def test_the_shared_types_import_nothing_of_the_steps() -> None:
    """news.types is neutral: were it to import a step, storage would reach that step too."""
    tree = ast.parse((ROOT / "news" / "types.py").read_text())
    assert _news_imports(tree) == []


def test_importing_the_bot_builds_no_translation_catalogue() -> None:
    """State has an owner: app.py builds the catalogue the bot uses and keeps it in
    services.Services; importing the modules builds none (tests read `locales.catalog`,
    built on first use)."""
    code = "import app, locales; assert locales._default is None, 'built at import'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_each_reader_extracts_on_threads_of_its_own() -> None:
    """A reader without processes owns its extraction threads, and gives them back on close:
    no module keeps a pool that two bots in one process (the replica tests) would share."""
    one, other = FeedReader(0), FeedReader(0)
    try:
        assert one.article_threads is not None
        assert one.article_threads is not other.article_threads
        assert FeedReader(1).article_threads is None, "with processes, no threads to own"
    finally:
        one.close()
        other.close()
