"""Topics followed by meaning (`/subscribe ~AI infrastructure in Europe`): their syntax, and
the matcher that compares story embeddings with theirs.

A semantic topic is stored as one query string, `~"AI infrastructure in Europe"@0.45 -crypto`:
the meaning, the similarity threshold, and what the query language adds around it. Everything
a subscription change goes through (the matcher cache's revision, renames, removal) then
works as for keyword topics, and the keyword matcher skips these queries (news.matching).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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

    Changed in place (add, remove, learn), so a subscription change costs its own topic, not a
    rebuild: each meaning has a column of a matrix with room to grow, a freed column is taken
    by the next new meaning, and a free column's floor is infinite, so it never matches. What
    it answers is what a fresh build from the same topics and vectors answers, hits in topic
    id order.

    Topics whose meaning has no stored vector yet (just subscribed, or the model changed) wait
    in `waiting` until `learn` gives it one."""

    def __init__(self, topics: Iterable[tuple[int, str]], vectors: Mapping[str, Vector]) -> None:
        self.dims = 0
        self.size = 0  # topics matched (not those waiting)
        self.groups: list[dict[int, SemanticTopic]] = []  # column -> its topics by id
        self.waiting: dict[str, dict[int, SemanticTopic]] = {}  # meaning key -> its topics
        self._columns = np.zeros((0, 0), np.float32)  # dims x capacity: BLAS's best layout
        self._floor = np.zeros(0, np.float32)  # column -> its topics' lowest threshold
        self._key_of: list[str | None] = []  # column -> its meaning key (None: free)
        self._column_of: dict[str, int] = {}
        self._free: list[int] = []
        self._used = 0  # columns handed out, free ones among them
        self._meaning_of: dict[int, str] = {}  # topic id -> its meaning key, matched or waiting
        for topic_id, query in topics:  # all wait, then every meaning is learnt at once
            found = _matchable(query)
            if found is not None:
                self.waiting.setdefault(found.key, {})[topic_id] = SemanticTopic(topic_id, found)
                self._meaning_of[topic_id] = found.key
        self.learn(vectors)

    @property
    def keys(self) -> list[str]:
        """The meanings matched (with a vector and a topic)."""
        return sorted(self._column_of)

    # --- changes ---------------------------------------------------------------------------

    def add(self, topic_id: int, query: str, vectors: Mapping[str, Vector]) -> None:
        """Match a subscription, or take its new query if already matched; any query can come
        (a keyword one is only removed). `vectors`: its meaning's, if not matched yet."""
        self.remove(topic_id)
        found = _matchable(query)
        if found is None:
            return
        key = found.key
        self._meaning_of[topic_id] = key
        topic = SemanticTopic(topic_id, found)
        column = self._column_of.get(key)
        if column is not None:
            self.groups[column][topic_id] = topic
            self._floor[column] = min(self._floor[column], _threshold(topic))
            self.size += 1
        else:
            self.waiting.setdefault(key, {})[topic_id] = topic
            if key in vectors:
                self.learn({key: vectors[key]})

    def remove(self, topic_id: int) -> None:
        """Stop matching a subscription; nothing happens if it is not matched."""
        key = self._meaning_of.pop(topic_id, None)
        if key is None:
            return
        column = self._column_of.get(key)
        if column is None:
            waiting = self.waiting[key]
            del waiting[topic_id]
            if not waiting:
                del self.waiting[key]
            return
        group = self.groups[column]
        topic = group.pop(topic_id)
        self.size -= 1
        if not group:
            self._release(column)
        elif np.float32(_threshold(topic)) <= self._floor[column]:  # it was the lowest
            self._floor[column] = min(_threshold(other) for other in group.values())

    def learn(self, vectors: Mapping[str, Vector]) -> None:
        """Meanings' vectors: the topics waiting for them are matched from now on. All in one
        go (one normalisation, the matrix grown once): a full build learns every meaning."""
        keys = sorted(key for key in vectors if key in self.waiting)
        if not keys:
            return
        if not self.dims:
            self.dims = len(vectors[keys[0]])
            self._columns = np.zeros((self.dims, len(self._key_of)), np.float32)
        keys = [key for key in keys if len(vectors[key]) == self.dims]  # a wrong size waits
        room = len(self._free) + len(self._key_of) - self._used
        if len(keys) > room:  # a full build's exact size; later, twice the size
            self._grow(max(len(keys) - room, len(self._key_of), 16))
        units = normalized([vectors[key] for key in keys]).reshape(len(keys), self.dims)
        for key, unit in zip(keys, units, strict=True):
            column = self._take()
            self._columns[:, column] = unit
            self._install(key, self.waiting.pop(key), column)

    def apply(self, removed: Iterable[int], changed: Iterable[tuple[int, str]],
              vectors: Mapping[str, Vector]) -> None:
        for topic_id in removed:
            self.remove(topic_id)
        for topic_id, query in changed:
            self.add(topic_id, query, vectors)

    def lacking(self, queries: Iterable[str]) -> set[str]:
        """The meanings of these queries that have no column yet: the vectors `add` needs."""
        return {found.key for query in queries
                if (found := _matchable(query)) is not None and found.key not in self._column_of}

    def _install(self, key: str, group: dict[int, SemanticTopic], column: int) -> None:
        self._column_of[key] = column
        self._key_of[column] = key
        self.groups[column] = group
        self._floor[column] = min(_threshold(topic) for topic in group.values())
        self.size += len(group)

    def _take(self) -> int:
        """A free column (learn made room)."""
        if self._free:
            return self._free.pop()
        self._used += 1
        return self._used - 1

    def _release(self, column: int) -> None:
        key = self._key_of[column]
        assert key is not None
        del self._column_of[key]
        self._key_of[column] = None
        self.groups[column] = {}
        self._floor[column] = np.inf
        self._columns[:, column] = 0
        self._free.append(column)

    def _grow(self, more: int) -> None:
        """Room for `more` columns: the matrix is copied once per doubling, not per meaning."""
        capacity = len(self._key_of) + more
        columns = np.zeros((self.dims, capacity), np.float32)
        if self._used:
            columns[:, :self._used] = self._columns[:, :self._used]
        self._columns = columns
        self._floor = np.concatenate(
            [self._floor, np.full(more, np.inf, np.float32)]).astype(np.float32)
        self._key_of.extend([None] * more)
        self.groups.extend({} for _ in range(more))

    # --- matching --------------------------------------------------------------------------

    def match(self, stories: Vector, texts: Sequence[str]) -> list[list[SemanticHit]]:
        """For each story (a row of vectors, its text alongside), the topics it satisfies:
        similarity at or above the topic's threshold, and the topic's terms and exclusions."""
        if not self._column_of or len(stories) == 0 or stories.shape[1] != self.dims:
            return [[] for _ in texts]
        used = self._used
        scores = normalized(stories) @ self._columns[:, :used]
        out: list[list[SemanticHit]] = [[] for _ in texts]
        folded: dict[int, str] = {}
        # the (story, meaning) pairs above the meaning's lowest threshold: few, so the stories
        # that have one are found first (np.nonzero over the whole batch costs more)
        above = scores >= self._floor[:used]
        pairs = ((int(story), int(index)) for story in np.flatnonzero(above.any(axis=1))
                 for index in np.flatnonzero(above[story]))
        for story, index in pairs:
            score = float(scores[story, index])
            for topic in self.groups[index].values():
                if score < _threshold(topic):
                    continue
                if topic.semantic.rest is not None:
                    if story not in folded:
                        folded[story] = " ".join(fold(texts[story]).split())
                    if not topic.semantic.matches_rest(folded[story]):
                        continue
                out[story].append(SemanticHit(topic.id, score))
        for hits in out:
            hits.sort(key=lambda hit: hit.topic_id)
        return out


def _matchable(query: str) -> Semantic | None:
    """The semantic topic a query holds, if it can be matched (a threshold chosen)."""
    found = readable(query)
    return found if found is not None and found.threshold is not None else None


def _threshold(topic: SemanticTopic) -> float:
    return topic.semantic.threshold or 1.0


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
