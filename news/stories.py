"""items -> stories: the same event reported by several sources becomes one story.

Near-duplicate detection on the normalized headline and lead: each is reduced to a set of
tokens (words in spaced scripts, character bigrams in CJK and Thai, numbers whole, a headline's
numbers also marked as such) and two items are the same story when `similarity`, the overlap
coefficient |A ∩ B| / min(|A|, |B|), reaches `THRESHOLD`, or `SAME_SOURCE_THRESHOLD` when both
come from one source. Numbers count against a merge: when each side has one the other lacks
("After Hours 9" and "After Hours 1", v201605 and v201603) the similarity is 0. Within one
source, so do the proper names of the headlines (capitalized words, "@kent"): one publisher's
template filled in for two counties, clubs or people is two events ("What's on in Kent County"
and "What's on in Ottawa County"). Across sources names are not weighed: outlets name one
event differently ("FAA" and "US regulators"). The lead is the
first sentence that is not boilerplate, and a headline's kicker is dropped when it is: what
recurs across one feed's entries ("Comments", "Show HN:") says nothing about the event. Items
published further apart than `WINDOW` never merge. Feedly merges at about 85% content overlap
over whole articles; headlines and leads are short and rephrased by each outlet, so the bar
across sources is lower (0.6); one source reports one event twice only when it aggregates, so
within a source it is higher. Signatures of fewer than `MIN_TOKENS` tokens never merge. It
works within one language (or across languages that share names and numbers); cross-language
pairs need a translation step. tests/fixtures/story_pairs.json holds the labelled pairs these
rules are held to (README, "One story per event").
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import TYPE_CHECKING

import numpy as np

from news.text import first_sentence, first_sentences
from news.topics import fold, unspaced
from news.types import Placement, StoredStory

if TYPE_CHECKING:  # news.items derives each draft's signature from this module
    from news.items import ItemDraft

THRESHOLD = 0.6  # items of two sources
SAME_SOURCE_THRESHOLD = 0.8  # items of one source, which must also agree on every number
MIN_TOKENS = 5
WINDOW = timedelta(hours=48)  # stories this old leave the index; items this far apart never merge
WINDOW_HOURS = WINDOW // timedelta(hours=1)
MIN_SHARED = ceil(THRESHOLD * MIN_TOKENS)  # fewer shared tokens never reach the threshold
HEADLINE = "^"  # marks a headline's numbers, which are also tokens as they are
NAME = "@"  # marks a headline's proper names; not counted by similarity(), only weighed
_LETTERS = re.compile(r"[^\W\d_]+")
LEAD_SENTENCES = 3  # the lead is the first of these that is not boilerplate
_WORD = re.compile(r"\w+")
_IN_NUMBER = re.compile(r"(?<=\d)[.,](?=\d)")  # "1,500" and "5.25" are one token each
_DIGITS = re.compile(r"\d+|\D+")
_KICKER = re.compile(r":\s|\s[-–—|]\s")
# Numbers written out, read as numbers in headlines ("Day Two", "Part Deux"); not in leads,
# where "one of" is no count.
_NUMBER_WORDS = {word: str(value) for words in (
    "zero one two three four five six seven eight nine ten eleven twelve",
    "zéro un deux trois quatre cinq six sept huit neuf dix onze douze",
) for value, word in enumerate(words.split())}
del _NUMBER_WORDS["un"]  # French for "a"
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was "
    "were will with de la le les des du et en un une el los las y del der die das und von zu "
    "mit im il di che по на и в с".split()
)


def _key(sentence: str) -> str:
    return fold(sentence)


def boilerplate(texts: Iterable[str], titles: Iterable[str] = ()) -> frozenset[str]:
    """Leading sentences and headline prefixes that recur across one feed's entries (folded):
    a link text such as "Comments", a show's tagline, "Show HN:". They say nothing about the
    event, so signatures skip them."""
    seen: Counter[str] = Counter()
    for text in texts:
        seen.update({_key(s) for s in first_sentences(text, LEAD_SENTENCES)})
    seen.update(_key(prefix) for title in titles if (prefix := _prefix(title)))
    return frozenset(key for key, count in seen.items() if count > 1)


def _prefix(title: str) -> str:
    """A headline's kicker: the text before its first ": ", " - ", " – " or " | "."""
    match = _KICKER.search(title)
    return title[:match.start()] if match else ""


def headline(title: str, skip: frozenset[str] = frozenset()) -> str:
    """The headline without a kicker that recurs across the feed."""
    match = _KICKER.search(title) if skip else None
    if match and _key(title[:match.start()]) in skip:
        return title[match.end():]
    return title


def lead_of(text: str, skip: frozenset[str] = frozenset()) -> str:
    """The first sentence that is not boilerplate, among the first `LEAD_SENTENCES`."""
    if not skip:
        return first_sentence(text)
    for sentence in first_sentences(text, LEAD_SENTENCES):
        if _key(sentence) not in skip:
            return sentence
    return ""


def signature(title: str, text: str, skip: frozenset[str] = frozenset()) -> frozenset[str]:
    """Tokens of the headline and the lead, the first sentence of the text not in `skip`.
    The headline's numbers also count as such ("^2"): a number in one headline and another
    in the other is a disagreement even when a lead mentions both."""
    tokens: set[str] = set()
    title, lead = headline(title, skip), lead_of(text, skip)
    _tokens(fold(title), tokens, HEADLINE)
    _tokens(fold(lead), tokens, "")
    tokens.update(NAME + name for name in proper_names(title, lead))
    return frozenset(tokens)


def proper_names(title: str, lead: str) -> set[str]:
    """The headline's capitalized words, folded: places, organisations, people. Its first word
    only when written in capitals or capitalized again past the lead's first word; in a title
    case headline not the words the lead writes in lower case. Scripts without case: none."""
    words, in_lead = _LETTERS.findall(title), _LETTERS.findall(lead)
    capitalized = {word for word in in_lead[1:] if word[0].isupper()}
    names = [word for word in words[1:] if word[0].isupper()]
    if words and (words[0].isupper() or words[0] in capitalized):
        names.append(words[0])
    longer = [word for word in words[1:] if len(word) > 3]
    if len(longer) >= 3 and sum(word[0].isupper() for word in longer) >= 0.7 * len(longer):
        lowered = {word for word in in_lead if word.islower()}
        names = [word for word in names if word in capitalized or word.lower() not in lowered]
    return {folded for word in names
            if len(word) > 1 and (folded := fold(word)) not in _STOP}


def _tokens(folded: str, tokens: set[str], number_mark: str) -> None:
    words = _WORD.findall(_IN_NUMBER.sub("", folded))
    if not unspaced(folded):  # the common case, kept to one pass in C
        tokens.update(w for w in words if w.isalpha() and len(w) > 1 and w not in _STOP
                      and not (number_mark and w in _NUMBER_WORDS))
        words = [w for w in words if not w.isalpha() or (number_mark and w in _NUMBER_WORDS)]
    for word in words:
        if unspaced(word):  # digits apart, the rest in bigrams
            for piece in _DIGITS.findall(word):
                if piece[0].isdigit():
                    _number(piece, tokens, number_mark)
                else:
                    tokens.update(piece[i:i + 2] for i in range(max(1, len(piece) - 1)))
        elif number_mark and word in _NUMBER_WORDS:
            _number(_NUMBER_WORDS[word], tokens, number_mark)
        elif not word.isalpha():  # a number, or a name with one: "v201605", "e3"
            _number(word, tokens, number_mark)
        elif word not in _STOP and len(word) > 1:
            tokens.add(word)


def _number(number: str, tokens: set[str], number_mark: str) -> None:
    tokens.add(number)
    if number_mark:
        tokens.add(number_mark + number)


def signature_text(tokens: frozenset[str]) -> str:
    """A signature as stories store it (storage.models.Story.signature)."""
    return " ".join(sorted(tokens))


def marked(token: str) -> bool:
    """A number (an amount, a version, an episode, a date), or a headline's number."""
    return not token.isalpha() and not token.startswith(NAME)


def named(token: str) -> bool:
    """A headline's proper name ("@kent"), which only one source's entries are weighed by."""
    return token.startswith(NAME)


def _plain(tokens: frozenset[str]) -> frozenset[str]:
    """The tokens similarity() counts: names are weighed apart."""
    return frozenset(token for token in tokens if not named(token))


def name_conflicts(a: frozenset[str], b: frozenset[str]) -> int:
    """Headline names of each side that the other never mentions, paired off: a name on one
    side only is detail; one on each side is another place, club or person."""
    return min(sum(named(token) and token[1:] not in b for token in a),
               sum(named(token) and token[1:] not in a for token in b))


def conflicts(a: frozenset[str], b: frozenset[str]) -> int:
    """Numbers of each side that the other lacks, paired off: a number on one side only is
    detail one outlet gave; one on each side is a disagreement ("After Hours 9" and "After
    Hours 1", v201605 and v201603, a rate of 4% and of 3.75%)."""
    return min(sum(map(marked, a - b)), sum(map(marked, b - a)))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """The overlap coefficient |A ∩ B| / min(|A|, |B|), or 0 when the numbers disagree."""
    a, b = _plain(a), _plain(b)
    if len(a) < MIN_TOKENS or len(b) < MIN_TOKENS or conflicts(a, b):
        return 0.0
    return len(a & b) / min(len(a), len(b))


def same_story(
    a: frozenset[str], b: frozenset[str], same_source: bool = False, apart: timedelta | None = None
) -> bool:
    """Whether two signatures are one event: stricter within one source, and never for items
    published further apart than `WINDOW` (a yearly post that repeats last year's words)."""
    if apart is not None and abs(apart) > WINDOW:
        return False
    if same_source and name_conflicts(a, b):
        return False
    return similarity(a, b) >= (SAME_SOURCE_THRESHOLD if same_source else THRESHOLD)


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """The plain overlap coefficient (the similarity before numbers counted against it)."""
    a, b = _plain(a), _plain(b)
    if len(a) < MIN_TOKENS or len(b) < MIN_TOKENS:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def hours(moment: datetime | None) -> int:
    """A publication time as the index keeps it: whole hours since 1970, 0 when unknown."""
    return max(1, int(moment.timestamp()) // 3600) if moment is not None else 0


class StoryIndex:
    """Recent stories by token, so a new item is compared only with stories sharing a token.

    Every new item asks, against tens of thousands of stories in a busy window (a first poll
    of a thousand feeds makes fifty thousand), and each of its ~30 tokens is shared by dozens
    of them. So stories live in dense slots, each token's postings are an int32 array, and
    the shared tokens are counted by numpy's bincount: four times cheaper than a Counter.
    Each slot also keeps what `same_story` (the function) weighs besides the tokens: how many
    numbers and headline names the signature holds, its source and when its item was
    published. Names ("@kent") have postings too, but are not counted as shared tokens.

    A replica holds every story of the window (200,000 for 10,000 feeds), so a slot holds no
    Python object but its entry in `slot_of`: its key and columns are numpy arrays, and its
    tokens (to take it out of their postings) are token numbers in one int32 pool, compacted
    when a quarter of it is forgotten: about 440 bytes a story with its postings, where a
    signature string, two dict entries and an expiry tuple each made it 950 (bench/memory.py).
    """

    def __init__(self) -> None:
        self.slot_of: dict[int, int] = {}  # by key (story id or provisional), as stored
        self.free: list[int] = []
        self.used = 0  # slots ever handed out; those in `free` are empty
        self.key_of = np.zeros(1024, dtype=np.int64)  # key by slot
        self.sizes = np.zeros(1024, dtype=np.int32)  # signature size by slot
        self.numbers = np.zeros(1024, dtype=np.int32)  # marked tokens by slot
        self.names = np.zeros(1024, dtype=np.int32)  # named tokens by slot
        self.sources = np.zeros(1024, dtype=np.int32)  # source id by slot, 0 when unknown
        self.published = np.zeros(1024, dtype=np.int32)  # hours() by slot
        self.starts = np.zeros(1024, dtype=np.int64)  # where the slot's tokens start in `pool`
        self.lengths = np.zeros(1024, dtype=np.int32)  # how many tokens it has there
        self.pool = array("i")  # token numbers of every slot's signature, slot after slot
        self.dead = 0  # entries of `pool` whose slot was forgotten
        self.by_token: dict[str, array[int]] = {}  # postings: the slots holding a token
        self.number_of: dict[str, int] = {}  # token -> its number in `pool`
        self.tokens: list[str] = []  # token by number ("" once its postings empty)
        self.free_numbers: list[int] = []

    def add(self, key: int, signature: str, source: int = 0, published: int = 0) -> None:
        tokens = signature.split()
        slot = self.free.pop() if self.free else self.used
        if slot == self.used:
            self.used += 1
            if slot == len(self.sizes):
                self._grow()
        names = sum(map(named, tokens))
        self.key_of[slot] = key
        self.sizes[slot] = len(tokens) - names
        self.numbers[slot] = sum(map(marked, tokens))
        self.names[slot] = names
        self.sources[slot] = source
        self.published[slot] = published
        self.starts[slot] = len(self.pool)
        self.lengths[slot] = len(tokens)
        self.slot_of[key] = slot
        for token in tokens:
            postings = self.by_token.get(token)
            if postings is None:
                postings = self.by_token[token] = array("i")
                number = self.free_numbers.pop() if self.free_numbers else len(self.tokens)
                if number == len(self.tokens):
                    self.tokens.append(token)
                else:
                    self.tokens[number] = token
                self.number_of[token] = number
            postings.append(slot)
        self.pool.extend(map(self.number_of.__getitem__, tokens))

    def _grow(self) -> None:
        grow = len(self.sizes)
        for name in ("key_of", "sizes", "numbers", "names", "sources", "published", "starts",
                     "lengths"):
            column = getattr(self, name)
            setattr(self, name, np.concatenate([column, np.zeros(grow, dtype=column.dtype)]))

    def rekey(self, key: int, new: int) -> None:
        """The story held under `key` (provisional) is known as `new` (its id) from now on; a
        story the index still held under that id is gone (SQLite may reuse a deleted id)."""
        self.forget([new])
        slot = self.slot_of.pop(key)
        self.slot_of[new] = slot
        self.key_of[slot] = new

    def signature(self, key: int) -> str:
        """The signature held under `key`, as stored (its tokens, sorted)."""
        return " ".join(sorted(self.tokens[number] for number in self._numbers(key)))

    def _numbers(self, key: int) -> array[int]:
        slot = self.slot_of[key]
        start = int(self.starts[slot])
        return self.pool[start:start + int(self.lengths[slot])]

    def forget(self, keys: Iterable[int]) -> None:
        for key in keys:
            if key not in self.slot_of:
                continue
            numbers = self._numbers(key)
            slot = self.slot_of.pop(key)
            for number in numbers:
                token = self.tokens[number]
                postings = self.by_token[token]
                postings.remove(slot)
                if not postings:
                    del self.by_token[token], self.number_of[token]
                    self.tokens[number] = ""
                    self.free_numbers.append(number)
            self.free.append(slot)
            self.dead += len(numbers)
        if self.dead > 1024 and 4 * self.dead > len(self.pool):
            self._compact()

    def _compact(self) -> None:
        """The pool without the tokens of forgotten slots."""
        slots = np.fromiter(self.slot_of.values(), dtype=np.int64, count=len(self.slot_of))
        lengths = self.lengths[slots].astype(np.int64)
        starts = np.cumsum(lengths) - lengths
        positions = np.repeat(self.starts[slots] - starts, lengths) + np.arange(
            int(lengths.sum()), dtype=np.int64)
        kept = np.frombuffer(self.pool, dtype=np.int32)[positions].tobytes()
        self.pool = array("i")
        self.pool.frombytes(kept)
        self.starts[slots] = starts
        self.dead = 0

    def same_story(self, signature: str, source: int = 0, published: int = 0) -> int | None:
        """The most similar recent story that `same_story` (the function) would merge, if any."""
        tokens = signature.split()
        names = [token[1:] for token in tokens if named(token)]
        if names:
            tokens = [token for token in tokens if not named(token)]
        if len(tokens) < MIN_TOKENS:
            return None
        postings = b"".join(filter(None, map(self.by_token.get, tokens)))  # all in C
        if not postings:
            return None
        slots = np.frombuffer(postings, dtype=np.int32)
        counts = np.bincount(slots)
        # fewer shared tokens never reach the threshold; looked up through the postings, not
        # over every slot, and in slot order so that a tie goes to the oldest slot
        candidates = np.unique(slots[counts[slots] >= MIN_SHARED])
        if not candidates.size:
            return None
        sizes = self.sizes[candidates]
        scores = counts[candidates] / np.minimum(len(tokens), sizes)  # similarity()
        scores[sizes < MIN_TOKENS] = 0.0
        numbers = [token for token in tokens if marked(token)]
        if numbers:  # each side's numbers the other lacks, paired off (conflicts())
            shared = b"".join(filter(None, map(self.by_token.get, numbers)))
            common = np.bincount(np.frombuffer(shared, dtype=np.int32),
                                 minlength=len(counts))[candidates] if shared else 0
            differ = (len(numbers) > common) & (self.numbers[candidates] > common)
            scores[differ] = 0.0
        if source:
            mine = self.sources[candidates] == source
            scores[mine & (scores < SAME_SOURCE_THRESHOLD)] = 0.0
            if names:
                scores[mine & self._names_differ(names, tokens, candidates, len(counts))] = 0.0
        if published:
            when = self.published[candidates]
            scores[(when > 0) & (np.abs(when - published) > WINDOW_HOURS)] = 0.0
        best = int(np.argmax(scores))
        return int(self.key_of[candidates[best]]) if scores[best] >= THRESHOLD else None

    def _names_differ(self, names: list[str], tokens: list[str], candidates: np.ndarray,
                      size: int) -> np.ndarray:
        """For each candidate, whether each side's headline has a name the other never
        mentions (name_conflicts()): counted through the postings, as numbers are."""
        def found(words: Iterable[str]) -> np.ndarray:
            postings = b"".join(filter(None, map(self.by_token.get, words)))
            if not postings:
                return np.zeros(len(candidates), dtype=np.int64)
            return np.bincount(np.frombuffer(postings, dtype=np.int32),
                               minlength=size)[candidates]

        mine_missing = len(names) > found(names)  # my names the candidate lacks
        theirs_missing = self.names[candidates] > found(NAME + token for token in tokens)
        return mine_missing & theirs_missing


# A stored story as the index loads it: id, signature, created, its first item's source and date
class Clusters:
    """The story index of the last `window`, kept in memory and topped up from the database.

    The top-up asks for stories created after `seen_until`, the newest creation time the index
    holds, less an `overlap`: not for ids above the largest it holds, because PostgreSQL hands
    out ids when a transaction inserts, not when it commits, and a story committed late under a
    smaller id would never be loaded. Stories found again in the overlap are known and skipped.
    """

    def __init__(self, window: timedelta = WINDOW) -> None:
        self.window = window
        self.reset()

    def reset(self) -> None:
        # Keys are story ids, or negative numbers for stories this process places: those enter
        # the index when placed, and `settle` re-keys them by their ids once stored.
        self.index = StoryIndex()
        # (created, story id) in the order stories entered, oldest first; as two arrays, not a
        # deque of tuples of objects: they hold every story of the window
        self.expiry_times = array("d")  # created, seconds since 1970 (_stamp)
        self.expiry_keys = array("q")
        self.expired = 0  # entries at the front already expired
        self.seen_until: datetime | None = None
        self.next_key = -1

    def after(self, overlap: timedelta) -> datetime | None:
        """Where the next top-up starts: stories created after this (None: all of the window)."""
        return None if self.seen_until is None else self.seen_until - overlap

    def load(self, rows: Iterable[StoredStory], now: datetime) -> None:
        """Add stories stored since the last load (by any process) and forget expired ones."""
        for story_id, text, created, source, published in rows:
            if story_id not in self.index.slot_of:
                self.remember(story_id, text, created, source, published)
        cutoff = _stamp(now - self.window)
        times, keys, first = self.expiry_times, self.expiry_keys, self.expired
        while first < len(times) and times[first] < cutoff:
            first += 1
        if first > self.expired:
            self.index.forget(keys[self.expired:first])
            self.expired = first
        if self.expired > 1024 and 2 * self.expired > len(times):
            del times[:self.expired], keys[:self.expired]
            self.expired = 0

    def forget(self, story_ids: Iterable[int]) -> None:
        """Stories the database no longer has leave the index (their expiry entry lapses)."""
        self.index.forget(story_ids)

    def unplace(self, placement: Placement[ItemDraft]) -> None:
        """Undo `place` before `settle`: its new stories leave the index."""
        self.index.forget(placement.keys)

    def same_story(self, draft: ItemDraft, source: int = 0) -> int | None:
        key = self.index.same_story(draft.signature, source, hours(draft.published_at))
        return key if key is None or key > 0 else None  # a provisional key: not stored yet

    def place(
        self, drafts: Iterable[ItemDraft], by_link: Mapping[str, int], source: int = 0
    ) -> Placement[ItemDraft]:
        """Same link or same headline and lead as a recent story joins it; the rest make new
        stories, batch-mates alike sharing one. New stories enter the index at once (under
        keys that `settle` ties to their ids), so batch-mates find them like any other.
        `source` is the drafts' source id, against which stories of that source need more."""
        placement: Placement[ItemDraft] = Placement()
        groups_by_key, groups_by_link = dict[int, int](), dict[str, int]()
        for draft in drafts:
            story_id = by_link.get(draft.link) if draft.link else None
            group = groups_by_link.get(draft.link) if draft.link else None
            if story_id is None and group is None:
                published = hours(draft.published_at)
                key = self.index.same_story(draft.signature, source, published)
                if key is not None and key in groups_by_key:
                    group = groups_by_key[key]
                elif key is not None:
                    story_id = key if key > 0 else None  # provisional: not stored yet
            if story_id is not None:
                placement.joins.append((draft, story_id))
                continue
            if group is None:
                group, key = len(placement.groups), self.next_key
                self.next_key -= 1
                self.index.add(key, draft.signature, source, hours(draft.published_at))
                groups_by_key[key] = group
                placement.groups.append([])
                placement.keys.append(key)
            placement.groups[group].append(draft)
            if draft.link:
                groups_by_link.setdefault(draft.link, group)
        return placement

    def settle(
        self, keys: Sequence[int], story_ids: Sequence[int],
        created: Sequence[datetime] | None = None,
    ) -> None:
        """The placed new stories were stored under these ids, created at these times."""
        now = datetime.now(UTC)
        for number, (key, story_id) in enumerate(zip(keys, story_ids, strict=True)):
            when = created[number] if created is not None else now
            self.index.rekey(key, story_id)
            self._expires(when, story_id)

    def remember(
        self, story_id: int, signature: str, created: datetime | None = None,
        source: int | None = None, published: datetime | None = None,
    ) -> None:
        """A story stored by another ingest or process, from its stored signature and its first
        item's source and date."""
        when = created or datetime.now(UTC)
        self.index.add(story_id, signature, source or 0, hours(published))
        self._expires(when, story_id)

    def _expires(self, created: datetime, story_id: int) -> None:
        self.expiry_times.append(_stamp(created))
        self.expiry_keys.append(story_id)
        self._seen(created)

    def _seen(self, created: datetime) -> None:
        if self.seen_until is None or created > self.seen_until:
            self.seen_until = created


def _stamp(moment: datetime) -> float:
    """Seconds since 1970; a naive time is UTC, as the database keeps it."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()
