"""When an alert may go out: delivery modes, quiet hours and the daily digest (SPEC §6).

Pure functions of the chat's preferences and an explicit `now`, so tests control the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from news.types import Preferences


@dataclass(frozen=True)
class Decision:
    """Send now, hold for the digest, or wait until `until` (quiet hours)."""

    action: str  # "send" | "digest" | "later"
    until: datetime | None = None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_until(prefs: Preferences, now: datetime) -> datetime | None:
    """When the current quiet hours end (UTC), or None when it is not quiet now."""
    if not prefs.quiet_start or not prefs.quiet_end:
        return None
    local = now.astimezone(zone(prefs.timezone))
    start, end, clock = _clock(prefs.quiet_start), _clock(prefs.quiet_end), local.time()
    quiet = start <= clock < end if start < end else clock >= start or clock < end
    if not quiet:
        return None
    ends = datetime.combine(local.date(), end, tzinfo=local.tzinfo)
    if ends <= local:
        ends = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=local.tzinfo)
    return ends.astimezone(UTC)


def decide(prefs: Preferences, level: int, now: datetime) -> Decision:
    """Digest-only holds everything; priority-instant holds all but level 1; quiet hours wait."""
    if prefs.mode == "digest" or (prefs.mode == "priority" and level > 1):
        return Decision("digest")
    until = quiet_until(prefs, now)
    return Decision("later", until) if until else Decision("send")


def held_again(prefs: Preferences, state: str, now: datetime) -> tuple[str, datetime]:
    """(state, due) for an alert held as `state` ("quiet" or "digest") once the chat's
    settings changed: held by the settings as they are now, not as they were. Only the
    deliver job knows an alert's level, so one held for the digest under a mode that sends
    some alerts at once is due now ("pending"), and that job decides again."""
    if prefs.mode == "digest":
        return "digest", now
    until = quiet_until(prefs, now) if state == "quiet" else None
    return ("quiet", until) if until else ("pending", now)


def digest_moment(prefs: Preferences, now: datetime) -> datetime:
    """The most recent scheduled digest time at or before `now` (UTC)."""
    local = now.astimezone(zone(prefs.timezone))
    moment = datetime.combine(local.date(), _clock(prefs.digest_time), tzinfo=local.tzinfo)
    if moment > local:
        moment = datetime.combine(local.date() - timedelta(days=1), _clock(prefs.digest_time),
                                  tzinfo=local.tzinfo)
    return moment.astimezone(UTC)


def digest_due(prefs: Preferences, last_digest_at: datetime | None, now: datetime) -> bool:
    """Whether a scheduled digest has come round since the last one was sent."""
    return last_digest_at is None or last_digest_at < digest_moment(prefs, now)


def weekly_moment(*, day: int, clock: str, timezone: str, now: datetime) -> datetime:
    """The most recent weekly time (ISO weekday `day`, 1 = Monday, at `clock` local) at or
    before `now`, in UTC."""
    local = now.astimezone(zone(timezone))
    back = (local.isoweekday() - day) % 7
    moment = datetime.combine(local.date() - timedelta(days=back), _clock(clock),
                              tzinfo=local.tzinfo)
    if moment > local:
        moment = datetime.combine(moment.date() - timedelta(days=7), _clock(clock),
                                  tzinfo=local.tzinfo)
    return moment.astimezone(UTC)


def weekly_due(moment: datetime, last_at: datetime | None) -> bool:
    """Whether the chat's weekly time has come round since its last weekly brief went out
    (or since the setting was made: it stores the minute it was made, a second early)."""
    return last_at is None or last_at < moment


def weekly_start(now: datetime) -> datetime:
    """What a new weekly setting stores as its last brief: one second before this minute
    began, so a time set for the current minute is due at once and an earlier one next week."""
    return now.replace(second=0, microsecond=0) - timedelta(seconds=1)


WEEK = timedelta(days=7)


def iso_week(moment: datetime) -> str:
    """The ISO week a weekly brief due at `moment` tells: the one its seven days mostly fall
    in (their middle, in UTC), so chats whose times differ share one storyline per week."""
    year, week, _ = (moment - WEEK / 2).astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"
