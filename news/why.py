"""Why a story reached a chat, or why it did not: pure functions of facts storage gathers.

The matcher's own parser and terms (news.topics) decide, so the answer is what the matcher did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from news.briefs import STALE_AFTER, Brief, adjusted_level
from news.matching import searchable
from news.schedule import Preferences, digest_moment
from news.semantic import readable
from news.topics import And, Node, Not, Or, QueryError, Term, parse, positive_terms
from news.types import StoryFacts, TopicFacts


@dataclass(frozen=True)
class Hit:
    """A topic's term found in the story, and where: "headline" or "text"."""

    term: str
    where: str


def hits(query: str, headline: str, text: str) -> list[Hit]:
    """Each wanted term of the query that the story carries, headline first."""
    try:
        node = parse(query)
    except QueryError:
        return []
    head, body = searchable(headline), searchable(text)
    found: list[Hit] = []
    for term in positive_terms(node):
        if any(hit.term == term.text for hit in found):
            continue
        if term.matches(head):
            found.append(Hit(term.text, "headline"))
        elif term.matches(body):
            found.append(Hit(term.text, "text"))
    return found


@dataclass(frozen=True)
class Miss:
    """Why a query does not match: a wanted term is "missing", or an "excluded" one present."""

    kind: str
    term: str


def miss(node: Node, folded: str) -> Miss | None:
    """The first reason the query fails on the (folded) text; None when it matches."""
    if isinstance(node, Term):
        return None if node.matches(folded) else Miss("missing", node.text)
    if isinstance(node, Not):
        if not node.node.matches(folded):
            return None
        present = [term for term in positive_terms(node.node) if term.matches(folded)]
        return Miss("excluded", present[0].text if present else _first_text(node.node))
    if isinstance(node, And):
        for child in node.nodes:
            found = miss(child, folded)
            if found is not None:
                return found
        return None
    if any(child.matches(folded) for child in node.nodes):
        return None
    return miss(node.nodes[0], folded)


def _first_text(node: Node) -> str:
    if isinstance(node, Term):
        return node.text
    if isinstance(node, Not):
        return _first_text(node.node)
    assert isinstance(node, And | Or)
    return _first_text(node.nodes[0])


@dataclass(frozen=True)
class Verdict:
    """Why one topic did not bring the story: "missing" or "excluded" (a term), "far" (a
    semantic topic's similarity, in `term`, below its threshold), "unembedded", "before" (the
    topic is newer than the story), "muted" (by feedback), "changed" (the query was edited
    after the story came), or "matches" (it matches, and nothing here held it back)."""

    query: str
    reason: str
    term: str = ""


def verdict(topic: TopicFacts, story: StoryFacts, similarity: float | None = None) -> Verdict:
    """A semantic topic (news.semantic) is judged by the story's similarity to its meaning
    (None: the story has no embedding), then by its terms like any other."""
    semantic = readable(topic.query)
    node: Node | None
    if semantic is not None:
        if similarity is None:
            return Verdict(topic.query, "unembedded")
        if similarity < (semantic.threshold or 1.0):
            cut = math.floor(similarity * 100 + 1e-6) / 100  # never shown at the threshold
            return Verdict(topic.query, "far", f"{cut:.2f}")
        node = semantic.rest
    else:
        try:
            node = parse(topic.query)
        except QueryError:
            return Verdict(topic.query, "missing", topic.query)
    found = None if node is None else miss(node, searchable(f"{story.headline}\n{story.text}"))
    if found is not None:
        return Verdict(topic.query, found.kind, found.term)
    if story.created_at < topic.created_at:
        return Verdict(topic.query, "before")
    reporters = {source for source in story.source_ids if source is not None}
    if reporters and reporters <= topic.muted:
        return Verdict(topic.query, "muted")
    if story.created_at < topic.updated_at:
        return Verdict(topic.query, "changed")
    return Verdict(topic.query, "matches")


@dataclass(frozen=True)
class Explanation:
    """The answer to `/why URL`: the story's fate in this chat, and each topic's verdict."""

    kind: str  # "unknown" | "no_topics" | "held" | "sent" | "pending" | "failed" | "topics"
    state: str = ""  # a held delivery's: "digest" or "quiet"
    until: datetime | None = None
    verdicts: list[Verdict] = field(default_factory=list)


def explain(
    story: StoryFacts | None, topics: Sequence[TopicFacts], delivery_state: str | None,
    next_attempt_at: datetime | None, prefs: Preferences, now: datetime,
    similarities: Mapping[str, float] | None = None,
) -> Explanation:
    """Why the chat did (not) get a story it asks about by link."""
    if story is None:
        return Explanation("unknown")
    if delivery_state in ("digest", "quiet"):
        return Explanation("held", delivery_state, held_until(delivery_state, next_attempt_at,
                                                               prefs, now))
    if delivery_state in ("sent", "digested"):
        return Explanation("sent")
    if delivery_state in ("pending", "failed"):
        return Explanation(delivery_state)
    if not topics:
        return Explanation("no_topics")
    near = similarities or {}
    return Explanation("topics", verdicts=[verdict(topic, story, near.get(topic.query))
                                           for topic in topics])


def held_until(state: str, next_attempt_at: datetime | None, prefs: Preferences,
               now: datetime) -> datetime | None:
    """When a held alert comes: the next scheduled digest, or the end of quiet hours."""
    if state == "digest":
        return digest_moment(prefs, now) + timedelta(days=1)
    return next_attempt_at


@dataclass(frozen=True)
class LevelWhy:
    """Why an alert got its level: the brief's reason, or the rule used without a model."""

    level: int
    reason: str = ""  # the model's tracking reason
    offline: bool = False
    sources: int = 0
    lowered: bool = False  # published long before it was fetched
    raised: bool = False  # the headline names the topic


def level_why(brief: Brief, origin: str, topics: list[str], sources: int,
              published: datetime | None, fetched: datetime | None) -> LevelWhy:
    level = adjusted_level(brief, origin, topics)
    if origin != "offline":
        return LevelWhy(level, brief.tracking_reason.strip())
    stale = published is not None and fetched is not None and fetched - published > STALE_AFTER
    base = 1 if sources >= 3 else 2 if sources == 2 else 3  # as news.briefs.offline_brief
    return LevelWhy(level, offline=True, sources=sources,
                    lowered=stale and brief.tracking_level > base,
                    raised=level < brief.tracking_level)
