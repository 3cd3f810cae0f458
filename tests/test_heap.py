"""news.heap: what a poll pass freed goes back to the system."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from news import heap


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_gives_back_what_a_thread_freed_below_live_blocks() -> None:
    """As the polling database thread does: blocks of its arena freed, one kept at the top."""
    kept: list[bytes] = []

    def churn() -> None:
        blocks = [bytes(2048) for _ in range(40 * 512)]  # 40 MiB, from glibc, not pymalloc
        kept.append(bytes(2048))  # a live block above the freed ones
        blocks.clear()

    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    before = resident_mib()
    assert heap.release()
    assert before - resident_mib() > 20
