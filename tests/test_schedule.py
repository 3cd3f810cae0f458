"""Delivery modes, quiet hours and digest times across time zones and day boundaries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from news.schedule import (
    Preferences,
    decide,
    digest_due,
    digest_moment,
    held_again,
    quiet_until,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("mode", "level", "action"), [
    ("instant", 1, "send"), ("instant", 3, "send"),
    ("priority", 1, "send"), ("priority", 2, "digest"), ("priority", 3, "digest"),
    ("digest", 1, "digest"), ("digest", 3, "digest"),
])
def test_modes(mode: str, level: int, action: str) -> None:
    assert decide(Preferences(mode=mode), level, at("2026-11-24 12:00")).action == action


@pytest.mark.parametrize(("now", "until"), [
    ("2026-11-24 13:59", None),                     # 21:59 in Shanghai: not yet quiet
    ("2026-11-24 14:00", "2026-11-24 23:00"),       # 22:00 local: quiet until 07:00 local
    ("2026-11-24 16:30", "2026-11-24 23:00"),       # 00:30 local, after midnight
    ("2026-11-24 22:59", "2026-11-24 23:00"),
    ("2026-11-24 23:00", None),                     # 07:00 local: over
])
def test_quiet_hours_across_midnight_in_a_time_zone(now: str, until: str | None) -> None:
    prefs = Preferences(timezone="Asia/Shanghai", quiet_start="22:00", quiet_end="07:00")
    assert quiet_until(prefs, at(now)) == (at(until) if until else None)
    decision = decide(prefs, 1, at(now))
    assert decision.action == ("later" if until else "send")
    assert decision.until == (at(until) if until else None)


def test_quiet_hours_within_a_day_and_digest_mode_wins() -> None:
    prefs = Preferences(quiet_start="12:00", quiet_end="14:00")
    assert quiet_until(prefs, at("2026-11-24 13:00")) == at("2026-11-24 14:00")
    assert quiet_until(prefs, at("2026-11-24 14:00")) is None
    assert decide(Preferences(mode="digest", quiet_start="12:00", quiet_end="14:00"), 1,
                  at("2026-11-24 13:00")).action == "digest"


def test_digest_time_follows_the_chat_time_zone_and_daylight_saving() -> None:
    paris = Preferences(timezone="Europe/Paris", digest_time="08:00")
    assert digest_moment(paris, at("2026-07-01 07:00")) == at("2026-07-01 06:00")  # CEST
    assert digest_moment(paris, at("2026-12-01 07:00")) == at("2026-12-01 07:00")  # CET
    assert digest_moment(paris, at("2026-12-01 06:59")) == at("2026-11-30 07:00")  # yesterday's


def test_digest_is_due_once_per_day_across_the_day_boundary() -> None:
    tokyo = Preferences(timezone="Asia/Tokyo", digest_time="00:30")
    sent = at("2026-11-23 15:31")  # 00:31 on the 24th in Tokyo
    assert not digest_due(tokyo, sent, at("2026-11-24 15:29"))
    assert digest_due(tokyo, sent, at("2026-11-24 15:30"))
    assert digest_due(tokyo, None, at("2026-11-24 15:29")), "never sent: due at once"


def test_an_unknown_time_zone_falls_back_to_utc() -> None:
    prefs = Preferences(timezone="Mars/Olympus", quiet_start="10:00", quiet_end="11:00")
    assert quiet_until(prefs, at("2026-11-24 10:30")) == at("2026-11-24 11:00")


NIGHT = Preferences(quiet_start="22:00", quiet_end="07:00")


@pytest.mark.parametrize(("prefs", "state", "expected"), [
    (NIGHT, "quiet", ("quiet", "2026-11-25 07:00")),
    (Preferences(quiet_start="22:00", quiet_end="05:00"), "quiet",
     ("quiet", "2026-11-25 05:00")),                                # shortened: ends earlier
    (Preferences(quiet_start="22:00", quiet_end="23:00"), "quiet",
     ("pending", "2026-11-24 23:30")),                              # over already: due now
    (Preferences(), "quiet", ("pending", "2026-11-24 23:30")),      # quiet hours off
    (Preferences(timezone="Asia/Tokyo", quiet_start="22:00", quiet_end="07:00"), "quiet",
     ("pending", "2026-11-24 23:30")),                              # 08:30 in Tokyo
    (Preferences(mode="digest", quiet_start="22:00", quiet_end="07:00"), "quiet",
     ("digest", "2026-11-24 23:30")),                               # now digest-only
    (Preferences(mode="digest"), "digest", ("digest", "2026-11-24 23:30")),
    (NIGHT, "digest", ("pending", "2026-11-24 23:30")),  # instant again: deliver decides anew
    (Preferences(mode="priority"), "digest", ("pending", "2026-11-24 23:30")),
])
def test_held_alerts_are_due_by_the_settings_as_they_are_now(
    prefs: Preferences, state: str, expected: tuple[str, str]
) -> None:
    assert held_again(prefs, state, at("2026-11-24 23:30")) == (expected[0], at(expected[1]))
