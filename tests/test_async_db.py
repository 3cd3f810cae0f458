"""Database work from async code goes through storage.db.db (issue 11 item 6): a slow query or
a locked database stalls only the caller, never the event loop that answers every chat."""

from __future__ import annotations

import ast
import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from storage import chats
from storage.db import db, make_engine, migrate, session_scope

ROOT = Path(__file__).resolve().parent.parent
APPLICATION = ("app.py", "bot.py", "receiver.py", "services.py", "handlers", "jobs", "news",
               "storage")
BLOCKING = {"session_scope", "Session"}


def _new_chat(*, session: Session, chat_id: int) -> int:
    chats.ensure_chat(session=session, chat_id=chat_id, chat_type="private", title=None,
                      language="en")
    return threading.get_ident()


def _fail_after_writing(*, session: Session, chat_id: int) -> None:
    chats.ensure_chat(session=session, chat_id=chat_id, chat_type="private", title=None,
                      language="en")
    session.flush()
    raise RuntimeError("after the write")


def _chat_exists(engine: Engine, chat_id: int) -> bool:
    with session_scope(engine) as session:
        return chats.get(session=session, chat_id=chat_id) is not None


@pytest.mark.asyncio
async def test_work_runs_off_the_loop_in_one_committed_transaction(engine: Engine) -> None:
    worker = await db(engine, _new_chat, chat_id=501)
    assert worker != threading.get_ident()
    assert _chat_exists(engine, 501)


@pytest.mark.asyncio
async def test_work_that_raises_is_rolled_back_and_the_error_reaches_the_caller(
    engine: Engine,
) -> None:
    with pytest.raises(RuntimeError, match="after the write"):
        await db(engine, _fail_after_writing, chat_id=502)
    assert not _chat_exists(engine, 502)


@pytest.mark.asyncio
async def test_the_loop_keeps_turning_while_the_database_is_locked(tmp_path: Path) -> None:
    """Another writer holds SQLite's write lock: the caller waits, the loop does not."""
    path = tmp_path / "locked.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        waiting = asyncio.create_task(db(engine, _new_chat, chat_id=503))
        ticks = 0
        while ticks < 20:  # the loop turns while the write waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert not waiting.done(), "the write cannot have finished under another's lock"
    finally:
        holder.execute("COMMIT")
        holder.close()
    await waiting
    assert _chat_exists(engine, 503)
    engine.dispose()


def _blocking_calls_in_async_code(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls of session_scope() or Session() lexically inside an `async def` (a nested plain
    `def` is a function for a worker thread, and is left alone)."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_async: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.AsyncFunctionDef):
                visit(child, True)
                continue
            if isinstance(child, ast.FunctionDef | ast.Lambda):
                visit(child, False)
                continue
            if in_async and isinstance(child, ast.Call):
                called = child.func
                name = called.id if isinstance(called, ast.Name) else getattr(called, "attr", "")
                if name in BLOCKING:
                    found.append((child.lineno, name))
            visit(child, in_async)

    visit(tree, False)
    return found


def test_the_scan_finds_a_session_opened_on_the_loop() -> None:
    """The guard below is only as good as this scan: it must see the pattern it forbids."""
    sample = ast.parse(
        "async def handler(engine):\n"
        "    def on_thread():\n"
        "        with session_scope(engine) as session: ...\n"
        "    with session_scope(engine) as session: ...\n"
        "    Session(engine)\n")
    assert _blocking_calls_in_async_code(sample) == [(4, "session_scope"), (5, "Session")]


def test_no_async_code_opens_a_session_on_the_event_loop() -> None:
    files = [path for part in APPLICATION
             for path in ([ROOT / part] if part.endswith(".py")
                          else sorted((ROOT / part).rglob("*.py")))]
    assert len(files) > 20
    offenders = [f"{path.relative_to(ROOT)}:{line} {name}()"
                 for path in files
                 for line, name in _blocking_calls_in_async_code(ast.parse(path.read_text()))]
    assert offenders == [], "use `await storage.db.db(engine, work, ...)` instead"


# Threads that are not the database's: CPU work kept off the loop (charts, parsing, article
# text). Every other thread hop in application code is database work, and goes through
# storage.db (db for one transaction, in_thread for work that keeps its own).
OFF_LOOP = {"asyncio.to_thread", "run_in_executor"}
NOT_DATABASE = {"services.py": 1, "news/article.py": 1, "news/parsing.py": 1,
                "news/search/gdelt.py": 1, "storage/db.py": 2}


def _thread_hops(tree: ast.AST) -> int:
    return sum(1 for node in ast.walk(tree) if isinstance(node, ast.Call)
               and (ast.unparse(node.func) in OFF_LOOP
                    or getattr(node.func, "attr", "") == "run_in_executor"))


def test_database_work_leaves_the_loop_one_way() -> None:
    """Issue 21 item 3: no `asyncio.to_thread` around a function that opens its own session,
    no executor of a module's own; storage.db is the one way to the database."""
    files = [path for part in APPLICATION
             for path in ([ROOT / part] if part.endswith(".py")
                          else sorted((ROOT / part).rglob("*.py")))]
    hops = {str(path.relative_to(ROOT)): count for path in files
            if (count := _thread_hops(ast.parse(path.read_text())))}
    assert hops == NOT_DATABASE, "reach the database with storage.db.db or in_thread"
