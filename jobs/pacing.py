"""Delivery's coupled numbers in one place, and the per-chat claim caps that follow from them.

A claimed delivery is leased: no claim takes it again until `lease` ends. Meanwhile the bot
holds it in its own process: in a queue of up to `queued` rows that `in_flight` senders take
from, then behind its chat's pacing (one message per `chat_period` to a private chat, per
`group_period` to a group or channel, under Telegram's 1/s and 20/min), then in the request
itself (`send_time`, PTB's timeouts), then until its record is stored with others
(`record_gather`). For the lease to outlast all of that, one chat may have at most `cap` of
its rows claimed at a time (rows still held count):

    (queued + in_flight) / overall_per_second    every chat's rows ahead in the queue
  + cap × period                                 this chat's rows ahead of it
  + send_time                                    the request
  + record_gather                                its record
  ≤ lease

25 alerts for one group take 76 s to send at 3.05 s each, longer than a 60 s lease: they are
claimed 14 at a time. (A chat's period runs from the end of its previous send (jobs.throttle),
so each of its rows also takes a request's time; `send_time`'s margin covers that.)
Each send also renews the lease, checking the claim's token, so a row
held longer anyway (a stalled database, a worker busy elsewhere) is dropped, not sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Pacing:
    """Telegram's sending limits and how long and how many claimed rows the bot holds."""

    lease: timedelta = timedelta(seconds=60)
    # Senders side by side. Each is held by its request (a real network's round trip) and
    # then by its record, committed with the others that arrive within `record_gather`: at
    # 30/s about 30 senders wait on records at any time, and the rest keep the pace.
    in_flight: int = 64
    queued: int = 64  # claimed rows waiting for a sender; at 30/s about two seconds of work
    # Seconds a sent row's record waits for others to share its commit (jobs.deliver). At
    # the free pace a commit a second rather than five: each commit runs on a worker thread,
    # and its hand-offs with the event loop cost the bot more CPU than the commit itself
    # (bench/fanout.py: 0.5 ms less an alert than at 0.2 s).
    record_gather: float = 1.0
    # Telegram allows 30/s over all chats; jobs.outbound paces every request under it, alerts
    # taking what replies leave, or 28/s where another replica answers commands: the lease
    # arithmetic below counts the slower.
    overall_per_second: float = 28.0
    chat_period: float = 1.0  # seconds between two messages to one private chat
    group_period: float = 3.05  # ... to one group or channel: 20 a minute, with slack
    send_time: float = 10.0  # the longest a request may take once it leaves its chat's pacing

    @property
    def fresh(self) -> float:
        """Seconds after its claim that a row can still be sent under the claim's own lease;
        older, the lease is renewed (and checked) before it goes."""
        return self.lease.total_seconds() - self.send_time - self.record_gather

    def __post_init__(self) -> None:
        if min(self.cap(1), self.cap(-1)) < 1:
            raise ValueError(f"{self}: the lease cannot cover one paced send per chat")

    def period(self, chat_id: int) -> float:
        """Seconds between two messages to this chat (Telegram's groups have negative ids)."""
        return self.group_period if chat_id < 0 else self.chat_period

    def cap(self, chat_id: int) -> int:
        """Rows of this chat the bot may hold at once and still send each within its lease."""
        queue = (self.queued + self.in_flight) / self.overall_per_second
        spare = self.lease.total_seconds() - queue - self.send_time - self.record_gather
        return int(spare // self.period(chat_id))


PACING = Pacing()
# A paid fan-out (jobs.paid) goes at up to 1,000 a second: more senders, a longer queue. If the
# budget runs out midway the queue drains at the free rate; rows then older than `fresh` are
# renewed one by one before they go, as any row held too long.
# Each send holds its sender ~0.3 s (the request, then its record's commit, gathered with
# others for 0.2 s: a free pace's second would hold ~1,000 senders): 240 senders kept a 970/s
# pace to about 920/s, 480 keep it (bench/fanout.py --paid), under telegram_http's 512
# connections. `send_time` and the lease are longer than the free pace's: a paid pass holds
# many more rows in flight, and a process short of CPU serves them slower.
PAID_PACING = Pacing(lease=timedelta(seconds=120), in_flight=480, queued=600,
                     overall_per_second=950.0, send_time=30.0, record_gather=0.2)
