"""The per-user command limiter: a burst, one notice, silence, then answered again."""

from __future__ import annotations

import pytest

from handlers import ratelimit
from handlers.ratelimit import CommandLimiter, Verdict


class Clock:
    """A hand-wound clock, so the tests never sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_gets_the_burst_one_notice_then_silence() -> None:
    clock = Clock()
    limiter = CommandLimiter(20, clock=clock)
    verdicts = [limiter.admit(7) for _ in range(40)]
    assert verdicts[:20] == [Verdict.ADMIT] * 20
    assert verdicts[20] is Verdict.NOTICE
    assert verdicts[21:] == [Verdict.SILENT] * 19
    assert limiter.admit(8) is Verdict.ADMIT, "another sender has a bucket of their own"


def test_answered_again_once_a_token_is_back_and_the_notice_is_not_repeated_soon() -> None:
    clock = Clock()
    limiter = CommandLimiter(20, clock=clock)  # one token every 3 s
    for _ in range(25):
        limiter.admit(7)
    clock.now += 2.9
    assert limiter.admit(7) is Verdict.SILENT, "refused commands cost nothing, but earn nothing"
    clock.now += 0.2
    assert limiter.admit(7) is Verdict.ADMIT
    assert limiter.admit(7) is Verdict.SILENT, "a second notice within a minute would be spam"
    clock.now += 60
    assert [limiter.admit(7) for _ in range(20)] == [Verdict.ADMIT] * 20
    assert limiter.admit(7) is Verdict.NOTICE, "a new flood, a minute later, is told again"


def test_idle_senders_are_forgotten_when_many_are_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_TRACKED", 100)
    clock = Clock()
    limiter = CommandLimiter(20, clock=clock)
    for _ in range(21):
        limiter.admit(-1)  # a flooder: refused, told, and still over the limit
    for sender in range(150):
        limiter.admit(sender)  # each used a token: not idle yet, so all are kept
    assert len(limiter._buckets) == 151
    clock.now += 10  # the 150 have refilled; the flooder was told within the minute
    limiter.admit(100_000)
    assert set(limiter._buckets) == {-1, 100_000}
    # 10 s gave the flooder 3 tokens back; its notice is remembered, so no second one yet.
    assert [limiter.admit(-1) for _ in range(5)] == [Verdict.ADMIT] * 3 + [Verdict.SILENT] * 2
