"""Topics followed by meaning (`/subscribe ~AI infrastructure in Europe`): their syntax, and
the matcher that compares story embeddings with theirs.

A semantic topic is stored as one query string, `~"AI infrastructure in Europe"@0.45 -crypto`:
the meaning, the similarity threshold, and what the query language adds around it. Everything
a subscription change goes through (the matcher cache's revision, renames, removal) then
works as for keyword topics, and the keyword matcher skips these queries (news.matching).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from news.topics import Node, QueryError, canonical, fold, parse_filter
from storage.embeddings import Vector, normalized

MARK = "~"
MAX_MEANING_CHARS = 200
STEP = 0.05  # what one tighten/loosen button moves the threshold by


@dataclass(frozen=True)
class Semantic:
    """A parsed semantic topic: its meaning, its threshold (None: not chosen yet) and the
    terms and exclusions that also apply (news.topics)."""

    meaning: str
    threshold: float | None = None
    rest: Node | None = None
    rest_text: str = ""

    @property
    def key(self) -> str:
        """The meaning as its embedding is stored: case, accents and spacing folded."""
        return meaning_key(self.meaning)

    def matches_rest(self, folded: str) -> bool:
        return self.rest is None or self.rest.matches(folded)

    def canonical(self) -> str:
        """The query as stored: `~"meaning"@0.45 rest`."""
        said = f'{MARK}"{self.meaning}"'
        if self.threshold is not None:
            said += f"@{self.threshold:.2f}"
        return f"{said} {self.rest_text}" if self.rest_text else said

    def with_threshold(self, threshold: float) -> Semantic:
        return Semantic(self.meaning, round(min(max(threshold, STEP), 0.99), 2), self.rest,
                        self.rest_text)


def meaning_key(meaning: str) -> str:
    return " ".join(fold(meaning).split())


def is_semantic(query: str) -> bool:
    return query.lstrip().startswith(MARK)


def parse_semantic(query: str) -> Semantic:
    """`~words`, `~"words" rest` or `~"words"@0.4 rest`; unquoted, the meaning runs to the
    first exclusion or threshold. Raises QueryError for what it cannot read."""
    body = query.strip().removeprefix(MARK).strip()
    if body.startswith('"'):
        end = body.find('"', 1)
        if end < 0:
            raise QueryError("unbalanced_quote")
        meaning, tail = body[1:end], body[end + 1:]
    else:
        words = body.split()
        cut = next((n for n, word in enumerate(words) if word.startswith(("-", "@"))),
                   len(words))
        meaning = " ".join(words[:cut])
        if "@" in meaning:  # `~words@0.4`
            meaning, _, glued = meaning.partition("@")
            words[cut:cut] = ["@" + glued]
        tail = " ".join(words[cut:])
    meaning = " ".join(meaning.split())
    if not any(ch.isalnum() for ch in meaning):
        raise QueryError("semantic_empty")
    if len(meaning) > MAX_MEANING_CHARS or '"' in meaning:
        raise QueryError("too_long")
    tail = tail.strip()
    threshold = None
    if tail.startswith("@"):
        number, _, tail = tail[1:].partition(" ")
        try:
            threshold = float(number)
        except ValueError:
            raise QueryError("threshold") from None
        if not 0 < threshold < 1:
            raise QueryError("threshold")
        threshold = round(threshold, 2)
    rest = parse_filter(tail)
    return Semantic(meaning, threshold, rest, canonical_rest(rest))


def canonical_rest(rest: Node | None) -> str:
    return "" if rest is None else canonical(rest)


def readable(query: str) -> Semantic | None:
    """The semantic topic a stored query holds; None for keyword topics and unreadable ones."""
    if not is_semantic(query):
        return None
    try:
        return parse_semantic(query)
    except QueryError:
        return None


def topic_label(query: str) -> str:
    """A topic as readers see it (/topics, alerts, digests, weekly briefs, /why, answers to
    presses): a keyword query as stored, a semantic one as `~ data centers -crypto`, not in
    its stored syntax (`~"data centers"@0.50 -crypto`): the threshold is left out (the reply
    to /subscribe and /why say it). The label is itself a query for the same topic, so a
    reader may copy it into /unsubscribe; quotes stay only where the meaning needs them."""
    found = readable(query)
    if found is None:
        return query
    meaning = found.meaning if _reads_back(found.meaning) else f'"{found.meaning}"'
    return " ".join(part for part in (MARK, meaning, found.rest_text) if part)


def _reads_back(meaning: str) -> bool:
    """Whether `~ meaning`, unquoted, is read as this meaning (no `-word` or `@` in it)."""
    try:
        return parse_semantic(f"{MARK} {meaning}").meaning == meaning
    except QueryError:
        return False


def similarity(a: Vector, b: Vector) -> float:
    return float(normalized(a)[0] @ normalized(b)[0])


@dataclass(frozen=True)
class SemanticTopic:
    """A subscription as the semantic matcher sees it."""

    id: int
    semantic: Semantic


@dataclass(frozen=True)
class SemanticHit:
    topic_id: int
    similarity: float


class SemanticMatcher:
    """A matrix of the distinct meanings' vectors; a batch of story vectors is compared with
    all of them in one product, and only meanings above their lowest threshold are looked at.

    Topics whose meaning has no stored vector yet (just subscribed, or the model changed) are
    left out until it has one."""

    def __init__(self, topics: Iterable[tuple[int, str]], vectors: dict[str, Vector]) -> None:
        by_key: dict[str, list[SemanticTopic]] = defaultdict(list)
        for topic_id, query in topics:
            found = readable(query)
            if found is not None and found.threshold is not None and found.key in vectors:
                by_key[found.key].append(SemanticTopic(topic_id, found))
        self.keys = sorted(by_key)
        self.groups = [by_key[key] for key in self.keys]
        self.dims = len(next(iter(vectors.values()))) if vectors else 0
        rows = [vectors[key] for key in self.keys]
        self.matrix = normalized(rows) if rows else np.zeros((0, self.dims), np.float32)
        self.columns = np.ascontiguousarray(self.matrix.T)  # one meaning a column: BLAS's best
        self.floor = np.array([min(t.semantic.threshold or 1.0 for t in group)
                               for group in self.groups], dtype=np.float32)
        self.size = sum(len(group) for group in self.groups)

    def match(self, stories: Vector, texts: Sequence[str]) -> list[list[SemanticHit]]:
        """For each story (a row of vectors, its text alongside), the topics it satisfies:
        similarity at or above the topic's threshold, and the topic's terms and exclusions."""
        if not self.keys or len(stories) == 0 or stories.shape[1] != self.matrix.shape[1]:
            return [[] for _ in texts]
        scores = normalized(stories) @ self.columns
        out: list[list[SemanticHit]] = [[] for _ in texts]
        folded: dict[int, str] = {}
        # the (story, meaning) pairs above the meaning's lowest threshold: few, so the stories
        # that have one are found first (np.nonzero over the whole batch costs more)
        above = scores >= self.floor
        pairs = ((int(story), int(index)) for story in np.flatnonzero(above.any(axis=1))
                 for index in np.flatnonzero(above[story]))
        for story, index in pairs:
            score = float(scores[story, index])
            for topic in self.groups[index]:
                if score < (topic.semantic.threshold or 1.0):
                    continue
                if topic.semantic.rest is not None:
                    if story not in folded:
                        folded[story] = " ".join(fold(texts[story]).split())
                    if not topic.semantic.matches_rest(folded[story]):
                        continue
                out[story].append(SemanticHit(topic.id, score))
        return out


def chosen_threshold(similarities: Sequence[float], default: float, share: float = 0.02
                     ) -> float:
    """The threshold a new topic starts with: the configured default, raised to a STEP above
    which at most `share` of the week's stories lie, so a broad meaning does not flood the
    chat before the reader tunes it."""
    threshold = default
    if len(similarities) >= 1 / share:
        top = float(np.quantile(np.asarray(similarities, dtype=np.float32), 1 - share))
        threshold = max(threshold, top)
    steps = np.ceil(round(threshold / STEP, 6))
    return round(min(float(steps) * STEP, 0.95), 2)
