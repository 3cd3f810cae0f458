"""Which subscriptions an item matches, at a cost that does not grow with their number.

An Aho-Corasick automaton (pyahocorasick) over every positive term of every query finds the
few candidate queries whose terms occur in the text; only those run the exact check, once per
distinct query however many chats follow it.

The matcher changes in place (`add`, `remove`): a subscription change costs a few list and
array updates, and a term no query had before goes into a small second automaton until
`compaction` folds it into the big one, off the ingest path (news.matcher).
"""

from __future__ import annotations

import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

import ahocorasick

from news.topics import And, Node, Not, Or, QueryError, Term, fold, parse, prefilter, unspaced
from news.types import Topic


def _glued(ch: str) -> bool:
    """Whether a term next to this character is part of a longer word: a letter, digit or
    underscore (what a regex calls a word character), or a combining mark."""
    return ch.isalnum() or ch == "_" or (not ch.isascii() and unicodedata.category(ch)[0] == "M")


_FOLDED_WORDS: dict[str, str] = {}
_FOLDED_WORDS_MAX = 200_000  # distinct words kept; news text repeats a small vocabulary


def _folded_word(word: str) -> str:
    folded = _FOLDED_WORDS.get(word)
    if folded is None:
        if len(_FOLDED_WORDS) >= _FOLDED_WORDS_MAX:
            _FOLDED_WORDS.clear()
        folded = _FOLDED_WORDS[word] = " ".join(fold(word).split())
    return folded


def searchable(text: str) -> str:
    """Folded, with whitespace collapsed so phrases are found as single-spaced needles.

    Folding works character by character and never joins across whitespace, so the text is
    folded word by word through a cache: folding whole non-ASCII items (NFKD, a regex pass over
    every character for combining marks, NFC) was most of the cost of matching one."""
    if text.isascii():
        return " ".join(text.lower().split())
    words = text.split()
    folded = list(map(_FOLDED_WORDS.get, words))
    if None in folded:
        folded = [_folded_word(word) if done is None else done
                  for word, done in zip(words, folded, strict=True)]
    return " ".join(filter(None, folded))


@lru_cache(maxsize=100_000)
def _parsed(query: str) -> Node | None:
    """The query's tree, None if unreadable; only candidate queries need it after the build,
    so the trees of a million subscriptions are not all kept."""
    try:
        return parse(query)
    except QueryError:
        return None


def _automaton(needles: Iterable[tuple[str, int]]) -> ahocorasick.Automaton | None:
    automaton = ahocorasick.Automaton()
    for needle, slot in needles:
        spaced = not unspaced(needle)  # whole words only where words have spaces
        automaton.add_word(needle, (slot, len(needle), spaced))
    if not len(automaton):
        return None
    automaton.make_automaton()
    return automaton


@dataclass(frozen=True)
class Compacted:
    """A new big automaton over every live term, built from a snapshot (Matcher.compaction)."""

    automaton: ahocorasick.Automaton | None


class _Topics(Mapping[int, Topic]):
    """The subscriptions by id, as Topic values made when asked for."""

    def __init__(self, matcher: Matcher) -> None:
        self._matcher = matcher

    def __getitem__(self, topic_id: int) -> Topic:
        topic = self._matcher.topic(topic_id)
        if topic is None:
            raise KeyError(topic_id)
        return topic

    def __iter__(self) -> Iterator[Topic]:  # type: ignore[override]
        """The Topics themselves, in id order (what iterating the old list gave)."""
        slots = self._matcher._query_of
        return (self[topic_id] for topic_id in range(len(slots)) if slots[topic_id] >= 0)

    def __len__(self) -> int:
        return self._matcher.size


class Matcher:
    """Every subscription's query, by distinct query and by term; changed in place.

    Memory is what a million subscriptions need and no more: per subscription an array slot
    (its query's number, chat and thread, indexed by id: ids are the table's dense keys); per
    distinct query its text and followers; per distinct term one automaton entry. Query trees
    are parsed again (cached) for the candidates only."""

    def __init__(self, topics: Iterable[Topic] = ()) -> None:
        self._queries: list[str | None] = []  # query slot -> text (None: free slot)
        self._slot_of: dict[str, int] = {}
        # Arrays, not lists: no int object per entry, and nothing the garbage collector walks.
        self._followers: list[array[int]] = []  # query slot -> subscription ids
        self._free: list[int] = []
        self.always: set[int] = set()  # query slots like `a OR -b`: can match with no term
        self._any_of = bytearray()  # query slot -> 1 when finding one of its terms is a match
        self._needle_of: dict[str, int] = {}  # every term ever seen -> its needle slot
        self._needle_queries: list[array[int]] = []  # needle slot -> query slots
        self.automaton: ahocorasick.Automaton | None = None  # the big one, rebuilt rarely
        self.fresh: dict[str, int] = {}  # live terms the big automaton may lack
        self._fresh_automaton: ahocorasick.Automaton | None = None
        self._fresh_dirty = False
        self._compacting = False
        self._query_of = array("l")  # subscription id -> query slot, -1 when none
        self._chat = array("q")
        self._thread = array("q")
        self.size = 0
        for topic in topics:
            self.add(topic)
        self.install(Compacted(_automaton(self._live_needles())))

    @property
    def topics(self) -> Mapping[int, Topic]:
        return _Topics(self)

    def topic(self, topic_id: int) -> Topic | None:
        if not 0 <= topic_id < len(self._query_of) or self._query_of[topic_id] < 0:
            return None
        query = self._queries[self._query_of[topic_id]]
        assert query is not None
        return Topic(topic_id, self._chat[topic_id], self._thread[topic_id], query)

    # --- changes ---------------------------------------------------------------------------

    def add(self, topic: Topic) -> None:
        """Follow a subscription, or take its new query, chat or thread if already followed."""
        self.remove(topic.id)
        slot = self._slot_of.get(topic.query)
        if slot is None:
            slot = self._new_query(topic.query)
        self._followers[slot].append(topic.id)
        if topic.id >= len(self._query_of):
            grow = topic.id + 1 - len(self._query_of) + len(self._query_of) // 4
            self._query_of.extend([-1] * grow)
            self._chat.extend([0] * grow)
            self._thread.extend([0] * grow)
        self._query_of[topic.id] = slot
        self._chat[topic.id] = topic.chat_id
        self._thread[topic.id] = topic.thread_id
        self.size += 1

    def remove(self, topic_id: int) -> None:
        """Stop following a subscription; nothing happens if it is not followed."""
        if not 0 <= topic_id < len(self._query_of) or self._query_of[topic_id] < 0:
            return
        slot = self._query_of[topic_id]
        self._query_of[topic_id] = -1
        followers = self._followers[slot]
        followers.remove(topic_id)
        self.size -= 1
        if not followers:
            self._drop_query(slot)

    def apply(self, removed: Iterable[int], changed: Iterable[Topic]) -> None:
        for topic_id in removed:
            self.remove(topic_id)
        for topic in changed:
            self.add(topic)

    def _new_query(self, query: str) -> int:
        if self._free:
            slot = self._free.pop()
            self._queries[slot] = query
        else:
            slot = len(self._queries)
            self._queries.append(query)
            self._followers.append(array("l"))
            self._any_of.append(0)
        self._slot_of[query] = slot
        plan = prefilter(query)
        if plan.always:
            self.always.add(slot)
        self._any_of[slot] = plan.any_of
        for needle in plan.needles:
            needle_slot = self._needle_of.get(needle)
            if needle_slot is None:
                needle_slot = self._needle_of[needle] = len(self._needle_queries)
                self._needle_queries.append(array("l"))
            queries = self._needle_queries[needle_slot]
            if not queries and (self._compacting or self.automaton is None
                                or needle not in self.automaton):
                self.fresh[needle] = needle_slot  # new, or back after compaction dropped it
                self._fresh_dirty = True
            queries.append(slot)
        return slot

    def _drop_query(self, slot: int) -> None:
        query = self._queries[slot]
        assert query is not None
        del self._slot_of[query]
        self._queries[slot] = None
        self._free.append(slot)
        self.always.discard(slot)
        for needle in prefilter(query).needles:
            self._needle_queries[self._needle_of[needle]].remove(slot)

    # --- compaction ------------------------------------------------------------------------

    def _live_needles(self) -> list[tuple[str, int]]:
        queries = self._needle_queries
        return [(needle, slot) for needle, slot in self._needle_of.items() if queries[slot]]

    def compaction(self) -> Callable[[], Compacted]:
        """A build of the big automaton over a snapshot of the live terms, to run in any
        thread while this matcher keeps changing; `install` its result."""
        snapshot = self._live_needles()
        self._compacting = True
        return lambda: Compacted(_automaton(snapshot))

    def install(self, compacted: Compacted) -> None:
        """Swap in a compacted automaton; terms added since its snapshot stay fresh."""
        self.automaton = compacted.automaton
        self._compacting = False
        built = self.automaton
        self.fresh = {needle: slot for needle, slot in self.fresh.items()
                      if built is None or needle not in built}
        self._fresh_dirty = True

    # --- matching --------------------------------------------------------------------------

    def found(self, folded: str) -> set[str]:
        """The live terms that occur in the text as the query language wants them: anywhere in
        unspaced scripts, elsewhere as whole words (not glued to a letter, digit or combining
        mark), so a term's presence is looked up here instead of searched for again."""
        found: set[str] = set()
        if self._fresh_dirty:
            self._fresh_automaton = _automaton(self.fresh.items())
            self._fresh_dirty = False
        last = len(folded) - 1
        for automaton in (self.automaton, self._fresh_automaton):
            if automaton is None:
                continue
            for end, (_, length, spaced) in automaton.iter(folded):
                start = end - length + 1
                if spaced and ((start > 0 and _glued(folded[start - 1]))
                               or (end < last and _glued(folded[end + 1]))):
                    continue  # "ion" inside "union"
                found.add(folded[start:end + 1])
        return found

    def candidate_queries(self, folded: str, found: set[str] | None = None) -> set[int]:
        """Query slots with a term in the text, and those that can match with none."""
        candidates = set(self.always)
        needle_of, needle_queries = self._needle_of, self._needle_queries
        for needle in self.found(folded) if found is None else found:
            candidates.update(needle_queries[needle_of[needle]])
        return candidates

    def _holds(self, node: Node, found: set[str], folded: str) -> bool:
        """node.matches(folded), with every live term's presence read from `found`: only a
        term no query looks for (one that is only ever excluded) is searched for in the text."""
        if isinstance(node, Term):
            needle = node.needle
            if needle in found:
                return True
            slot = self._needle_of.get(needle)
            if slot is not None and self._needle_queries[slot]:
                return False  # live, so the automata would have found it
            return node.matches(folded)
        if isinstance(node, Not):
            return not self._holds(node.node, found, folded)
        if isinstance(node, And):
            return all(self._holds(child, found, folded) for child in node.nodes)
        assert isinstance(node, Or)
        return any(self._holds(child, found, folded) for child in node.nodes)

    def candidates(self, folded: str) -> set[int]:
        """Subscriptions (ids) with a term in the text."""
        return {topic_id for slot in self.candidate_queries(folded)
                for topic_id in self._followers[slot]}

    def match_ids(self, text: str) -> list[int]:
        """The ids of the subscriptions whose query the text satisfies, in order."""
        if not self.size:  # no subscriptions yet: nothing to fold the text for
            return []
        folded = searchable(text)
        found = self.found(folded)
        hits: list[int] = []
        queries, followers, any_of = self._queries, self._followers, self._any_of
        for slot in self.candidate_queries(folded, found):
            if any_of[slot]:  # a candidate by one of its terms, all joined by OR: a match
                hits.extend(followers[slot])
                continue
            query = queries[slot]
            assert query is not None
            node = _parsed(query)
            if node is not None and self._holds(node, found, folded):
                hits.extend(followers[slot])
        hits.sort()
        return hits

    def match(self, text: str) -> list[Topic]:
        """The subscriptions whose query the text satisfies, in id order."""
        topic = self.topic
        return [found for topic_id in self.match_ids(text) if (found := topic(topic_id))]
