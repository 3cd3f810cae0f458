"""Plain data that the steps and storage share: items, stories, topics, briefs, preferences.

storage/ imports nothing else from news/ (tests/test_layers.py holds it to that), so what a
query returns or takes is defined here, beside the few pure normalisations (a clipped name, a
link without tracking parameters, a typed number) that values get wherever they are stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, Field, model_validator

# --- values as they are stored --------------------------------------------------------------

NAME_CHARS = 100  # a source's name as stored: it is repeated in the footer of every alert
MAX_ROW_ID = 2**63 - 1  # BIGINT, SQLite's INTEGER: a larger id names no row, and overflows
_ASCII_NUMBER = re.compile(r"0*([0-9]{1,19})")
_TRACKING_PREFIXES = ("utm_", "mc_", "_hs")
_TRACKING_KEYS = {"fbclid", "gclid", "yclid", "igshid", "ref", "cmpid", "ocid"}


def whole_number(raw: str, low: int = 1, high: int = MAX_ROW_ID) -> int | None:
    """`raw` as a number from `low` to `high`, else None. Only ASCII digits: `str.isdigit`
    also accepts "²" (which int() refuses) and other scripts' digits, and a 5,000-digit
    argument would exceed int()'s limit; at most 19 digits, so no database id overflows."""
    match = _ASCII_NUMBER.fullmatch(raw.strip())
    if match is None:
        return None
    number = int(match[1])
    return number if low <= number <= high else None


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary with an ellipsis, so that one
    publisher's 5,000-character title cannot push every message past Telegram's 4096."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def clean_link(link: str) -> str:
    """Drop tracking parameters so one article has one link; the fragment stays, since posts
    of a day's page (`…/24.html#a100632`) are told apart by it alone."""
    parts = urlsplit(link.strip())
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in _TRACKING_KEYS and not key.lower().startswith(_TRACKING_PREFIXES)
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


# --- items and stories ----------------------------------------------------------------------

class Draft(Protocol):
    """An entry before it has a row, as storage reads it: news.items.ItemDraft, whose derived
    values (content hash, story signature) news computes."""

    @property
    def guid(self) -> str: ...
    @property
    def link(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def published_at(self) -> datetime | None: ...
    @property
    def publisher(self) -> str: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def signature(self) -> str: ...


D = TypeVar("D", bound=Draft)
StoredStory = tuple[int, str, datetime, int | None, datetime | None]


@dataclass
class Placement(Generic[D]):
    """Where each new draft of one ingest goes: into a recent story, or into a new story that
    later drafts of the same batch may join (one feed often repeats an event)."""

    joins: list[tuple[D, int]] = field(default_factory=list)
    groups: list[list[D]] = field(default_factory=list)  # the first draft leads
    keys: list[int] = field(default_factory=list)  # each group's key in the story index


# --- topics ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Topic:
    """One subscription as the matcher sees it."""

    id: int
    chat_id: int
    thread_id: int
    query: str


@dataclass(frozen=True)
class TopicFacts:
    """One of the chat's topics as it stands now."""

    query: str
    created_at: datetime
    updated_at: datetime
    muted: frozenset[int] = frozenset()  # source ids muted for this topic


@dataclass(frozen=True)
class StoryFacts:
    """A stored story: its first report (what the matcher read) and who reported it."""

    created_at: datetime
    headline: str
    text: str
    source_ids: tuple[int | None, ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Choice:
    """A choice offered under 👎, as its button shows it."""

    id: int
    kind: str  # "less" | "mute" | "irrelevant"
    text: str
    applied: bool


# --- briefs ---------------------------------------------------------------------------------

Level = Literal[1, 2, 3]


class Player(BaseModel):
    """Someone the story is about, named for the reader and as the source spells it."""

    name: str = Field(min_length=1, max_length=120, description=(
        "The name as a reader of the brief's language knows it; the source's spelling when "
        "there is no usual form in that language."))
    name_in_source: str = Field(min_length=1, max_length=120, description=(
        "The name exactly as the article spells it, copied from the article."))
    role: str = Field(max_length=300, description=(
        "One line on who they are, in the brief's language."))

    @model_validator(mode="before")
    @classmethod
    def _spelled_as_named(cls, data: Any) -> Any:
        """One name only (briefs stored before there were two, json_object endpoints that omit
        it): that name is the one checked against the source."""
        if isinstance(data, dict) and "name_in_source" not in data and "name" in data:
            return {**data, "name_in_source": data["name"]}
        return data


class Impact(BaseModel):
    """A sector the story affects, how much, and why."""

    sector: str = Field(min_length=1, max_length=120, description="The sector's name.")
    level: Literal["high", "medium", "low"] = Field(description="How strongly it is affected.")
    why: str = Field(max_length=400, description="One line why.")


class Brief(BaseModel):
    """The sections of SPEC §5 that the writer fills; flag, topics and sources come from data."""

    headline: str = Field(min_length=1, max_length=300, description="The headline.")
    core_point: str = Field(min_length=1, max_length=1200, description=(
        "Two or three sentences: what happened and why it matters."))
    key_players: list[Player] = Field(default_factory=list, max_length=8, description=(
        "Up to 8 people or organisations the article names."))
    industry_impact: list[Impact] = Field(default_factory=list, max_length=6, description=(
        "Up to 6 sectors the story affects."))
    tracking_level: Level = Field(description=(
        "1 = track closely, 2 = keep watching, 3 = for information."))
    tracking_reason: str = Field(default="", max_length=400, description=(
        "One line why that level."))


@dataclass(frozen=True)
class Written:
    """A brief and where it came from ("llm" or "offline"), with what it cost."""

    brief: Brief
    origin: str
    tokens_in: int = 0
    tokens_out: int = 0
    calls: int = 0
    failures: int = 0


# --- preferences ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Preferences:
    """A chat's /settings."""

    mode: str = "instant"  # instant | priority | digest
    digest_time: str = "08:00"
    timezone: str = "UTC"
    quiet_start: str | None = None
    quiet_end: str | None = None


# --- /ask -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Terms:
    """What the stories are searched for: words (spaced scripts) and CJK character pairs."""

    words: tuple[str, ...]
    pairs: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.words or self.pairs)


@dataclass(frozen=True)
class Report:
    """One source's report of a story, as stored."""

    title: str
    summary: str
    link: str
    source: str
    published: datetime | None


@dataclass(frozen=True)
class Found:
    """A stored story the question may be answered from, with its reports, first one first."""

    story_id: int
    reports: tuple[Report, ...]

    @property
    def first(self) -> Report:
        return self.reports[0]
