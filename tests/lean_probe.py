"""Runs inside a parser process for tests/test_lean_workers.py; imports nothing itself, so
what it reports is what the worker had loaded before the call."""

import sys

HEAVY = ("telegram", "openai", "sqlalchemy", "sqlmodel", "matplotlib")


def heavy_modules() -> list[str]:
    """The top-level packages of HEAVY this process has imported."""
    return sorted({name.partition(".")[0] for name in sys.modules} & set(HEAVY))


def module_count() -> int:
    return len(sys.modules)
