"""Freed memory goes back to the system after a poll pass, not only when glibc decides to.

A pass allocates and frees tens of megabytes (response bodies, drafts, rows), much of it on
the polling database thread, whose glibc arena never shrinks on its own, and in the main
arena below live blocks, where only the top is trimmed. The process's resident size then
stays at its busiest moment's. malloc_trim(0) returns every free page of every arena
(madvise); it costs milliseconds. Elsewhere than glibc (musl, macOS) it is a no-op.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return trim


_TRIM = _malloc_trim()


def release() -> bool:
    """Return free heap pages to the system; whether the C library could."""
    return bool(_TRIM(0)) if _TRIM is not None else False
