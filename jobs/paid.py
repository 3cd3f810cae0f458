"""Paid broadcast (issue 24): a story whose fan-out would take longer than `after_seconds` at
Telegram's free 30 a second goes with `allow_paid_broadcast`, up to 1,000 a second, at 0.1
Star a message, within `stars_per_day`; past the budget, or once Telegram refuses for want
of Stars, alerts go at the free rate again (nothing is lost, only slower).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from jobs.outbound import FREE_PER_SECOND
from storage.paid import TENTHS_PER_MESSAGE

# Telegram's answer to a paid send the bot's Stars cannot cover. Not documented: the Bot API
# names no error for it, so this follows the form of its other balance errors (a 400 whose
# description names the condition); any 400 mentioning Stars and balance counts.
REFUSAL_MARKS = ("balance_too_low", "not enough stars", "insufficient stars")


def refused_for_stars(description: str) -> bool:
    """Whether a 400 on a paid send says the bot's Star balance is too low."""
    text = description.lower()
    return any(mark in text for mark in REFUSAL_MARKS)


@dataclass(frozen=True)
class PaidPolicy:
    """PAID_BROADCAST_STARS_PER_DAY (0: off) and PAID_BROADCAST_AFTER_SECONDS."""

    stars_per_day: int = 0
    after_seconds: float = 60.0

    @property
    def on(self) -> bool:
        return self.stars_per_day > 0

    @property
    def messages_per_day(self) -> int:
        return self.stars_per_day * 10 // TENTHS_PER_MESSAGE

    def worth_paying(self, fanout: int) -> bool:
        """A fan-out of this many chats would take longer than `after_seconds` at the free rate."""
        return self.on and fanout / FREE_PER_SECOND > self.after_seconds


class Ledger:
    """This process's count of today's paid sends: the day's record (storage.paid) plus those
    claimed as paid and not yet recorded, so that a claim never promises more than the budget.
    Only the replica holding the sending role sends, so no other process spends meanwhile."""

    def __init__(self, policy: PaidPolicy) -> None:
        self.policy = policy
        self.day: date | None = None
        self.spent = 0  # recorded today
        self.outstanding = 0  # claimed as paid, not yet recorded or given up
        self.refused = False  # Telegram refused for want of Stars today

    def today(self, day: date, spent: int, refused: bool) -> None:
        """The day's record as the database has it, read at the start of a delivery pass."""
        self.day, self.spent, self.refused = day, spent, refused

    def allowance(self) -> int:
        """Paid sends a claim may still promise today."""
        if not self.policy.on or self.refused:
            return 0
        return max(0, self.policy.messages_per_day - self.spent - self.outstanding)
