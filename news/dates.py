"""Dates feedparser misreads, read right: registered as feedparser date handlers on import.

feedparser's W3C-DTF reader takes `2020/1/10 14:33:00` (a Chinese forum's feed) for the 1st of
the current month, and `2020-01-10 14:33 GMT` for midnight. These numeric forms, with `/` or
`-`, a time with or without seconds, and an optional zone (`Z`, `UTC`, `GMT`, `+08:00`,
`+0800`), are read here first; anything else falls through to feedparser's own readers.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

import feedparser

_NUMERIC = re.compile(
    r"^\s*(?P<year>\d{4})(?P<sep>[/-])(?P<month>\d{1,2})(?P=sep)(?P<day>\d{1,2})"
    r"(?:[ T]+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?"
    r"\s*(?P<zone>Z|UTC|GMT|UT|[+-]\d{2}:?\d{2})?\s*$",
    re.IGNORECASE,
)


def parse_numeric(value: str) -> time.struct_time | None:
    """`YYYY/M/D H:M:S`, `YYYY-MM-DD HH:MM` and the like as a UTC struct_time (feedparser's
    form); no zone means UTC, as feedparser assumes; None for anything else."""
    match = _NUMERIC.match(value)
    if match is None:
        return None
    zone = (match["zone"] or "Z").upper()
    offset = timedelta(0)
    if zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        offset = -offset if zone[0] == "-" else offset
    try:
        moment = datetime(int(match["year"]), int(match["month"]), int(match["day"]),
                          int(match["hour"] or 0), int(match["minute"] or 0),
                          int(match["second"] or 0), tzinfo=timezone(offset))
        return moment.astimezone(UTC).utctimetuple()
    except (ValueError, OverflowError):  # 2020/13/45, or an offset of 99 hours
        return None


feedparser.registerDateHandler(parse_numeric)
