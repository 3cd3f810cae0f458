"""Which subscriptions an item matches, at a cost that does not grow with their number.

An Aho-Corasick automaton (pyahocorasick) over every positive term of every query finds the
few candidate subscriptions whose terms occur in the text; only those run the exact check.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import ahocorasick

from news.topics import Node, QueryError, fold, needs_a_term, parse, positive_terms, unspaced
from news.types import Topic


def _wordy(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def searchable(text: str) -> str:
    """Folded, with whitespace collapsed so phrases are found as single-spaced needles."""
    return " ".join(fold(text).split())


class Matcher:
    """Built once per set of subscriptions; `match` is then cheap per item."""

    def __init__(self, topics: Iterable[Topic]) -> None:
        self.topics: list[Topic] = []
        self.nodes: list[Node] = []
        self.always: list[int] = []  # queries like `a OR -b` that can match with no term present
        needles: dict[str, list[int]] = defaultdict(list)
        for topic in topics:
            try:
                node = parse(topic.query)
            except QueryError:
                continue
            index = len(self.topics)
            self.topics.append(topic)
            self.nodes.append(node)
            if not needs_a_term(node):
                self.always.append(index)
            for needle in {term.needle for term in positive_terms(node)}:
                needles[needle].append(index)
        self.automaton = ahocorasick.Automaton()
        for needle, indices in needles.items():
            spaced = not unspaced(needle)  # whole words only where words have spaces
            self.automaton.add_word(needle, (tuple(indices), len(needle), spaced))
        if needles:
            self.automaton.make_automaton()
        self.empty = not needles

    def candidates(self, folded: str) -> set[int]:
        """Subscriptions with a term in the text; word terms must stand as whole words."""
        found: set[int] = set(self.always)
        if self.empty:
            return found
        last = len(folded) - 1
        for end, (indices, length, spaced) in self.automaton.iter(folded):
            start = end - length + 1
            if spaced and ((start > 0 and _wordy(folded[start - 1]))
                           or (end < last and _wordy(folded[end + 1]))):
                continue  # "ion" inside "union": not a candidate
            found.update(indices)
        return found

    def match(self, text: str) -> list[Topic]:
        """The subscriptions whose query the text satisfies, in subscription order."""
        if not self.topics:  # no subscriptions yet: nothing to fold the text for
            return []
        folded = searchable(text)
        hits = sorted(i for i in self.candidates(folded) if self.nodes[i].matches(folded))
        return [self.topics[i] for i in hits]
