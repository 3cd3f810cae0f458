"""Matched stories -> digest messages: grouped by topic, level 1 first, split at 4096."""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from news.render import FLAGS, LIMIT, visible_length
from news.semantic import topic_label
from news.text import TITLE_CHARS, clip

PIN = "📌 "  # before a topic the chat tracks closely


@dataclass(frozen=True)
class Entry:
    """One story in a digest, under the first topic it matched (the first pinned one, if any)."""

    topic: str
    level: int
    headline: str
    link: str
    at: datetime
    pinned: bool = False  # the chat tracks its topic closely (📌): first among level 1


def _line(entry: Entry) -> str:
    headline = html.escape(clip(entry.headline, TITLE_CHARS), quote=False)
    if entry.link.startswith(("http://", "https://")):
        headline = f'<a href="{html.escape(entry.link, quote=True)}">{headline}</a>'
    return f"{FLAGS.get(entry.level, '⚪')} {headline}"


def render_digest(entries: list[Entry], header: str) -> list[str]:
    """Messages of whole lines; a topic's heading is repeated when it spills into the next one.
    Level 1 comes first, and within it the topics the chat tracks closely (📌)."""
    groups: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        groups[entry.topic].append(entry)
    for group in groups.values():
        group.sort(key=lambda e: (e.level, not e.pinned, -e.at.timestamp()))
    ordered = sorted(groups.items(), key=lambda item: (item[1][0].level, not item[1][0].pinned,
                                                       topic_label(item[0]).casefold()))
    messages: list[str] = []
    current = header
    for topic, group in ordered:
        pin = PIN if group[0].pinned else ""
        heading = f"\n\n<b>{pin}{html.escape(topic_label(topic), quote=False)}</b>"
        current += heading
        for entry in group:
            line = "\n" + _line(entry)
            if visible_length(current + line) > LIMIT:
                messages.append(current)
                current = heading.lstrip("\n") + line
            else:
                current += line
    messages.append(current)
    return messages
