"""items -> stories: the same event reported by several sources becomes one story.

Near-duplicate detection on the normalized headline and lead: each is reduced to a set of
tokens (words in spaced scripts, character bigrams in CJK and Thai) and two items are the same
story when the overlap coefficient |A ∩ B| / min(|A|, |B|) of their signatures reaches
`THRESHOLD`. Feedly merges at about 85% content overlap over whole articles; headlines and
leads are short and rephrased by each outlet, so the bar here is lower (0.6), and signatures
of fewer than `MIN_TOKENS` tokens never merge. It works within one language (or across
languages that share names and numbers); cross-language pairs need a translation step.
"""

from __future__ import annotations

import re
from array import array
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import TYPE_CHECKING

import numpy as np

from news.text import first_sentence
from news.topics import fold, unspaced

if TYPE_CHECKING:  # news.items derives each draft's signature from this module
    from news.items import ItemDraft

THRESHOLD = 0.6
MIN_TOKENS = 5
MIN_SHARED = ceil(THRESHOLD * MIN_TOKENS)  # fewer shared tokens never reach the threshold
_WORD = re.compile(r"\w+")
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was "
    "were will with de la le les des du et en un une el los las y del der die das und von zu "
    "mit im il di che по на и в с".split()
)


def signature(title: str, text: str) -> frozenset[str]:
    """Tokens of the headline and the first sentence of the text."""
    folded = fold(f"{title} {first_sentence(text)}")
    tokens: set[str] = set()
    for word in _WORD.findall(folded):
        if unspaced(word):
            tokens.update(word[i:i + 2] for i in range(max(1, len(word) - 1)))
        elif word not in _STOP and len(word) > 1:
            tokens.add(word)
    return frozenset(tokens)


def signature_text(tokens: frozenset[str]) -> str:
    """A signature as stories store it (storage.models.Story.signature)."""
    return " ".join(sorted(tokens))


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    if len(a) < MIN_TOKENS or len(b) < MIN_TOKENS:
        return 0.0
    return len(a & b) / min(len(a), len(b))


class StoryIndex:
    """Recent stories by token, so a new item is compared only with stories sharing a token.

    Every new item asks, against tens of thousands of stories in a busy window (a first poll
    of a thousand feeds makes fifty thousand), and each of its ~30 tokens is shared by dozens
    of them. So stories live in dense slots, each token's postings are an int32 array, and
    the shared tokens are counted by numpy's bincount: four times cheaper than a Counter.
    """

    def __init__(self) -> None:
        self.signatures: dict[int, str] = {}  # by key (story id or provisional), as stored
        self.slot_of: dict[int, int] = {}
        self.key_of: list[int] = []
        self.free: list[int] = []
        self.sizes = np.zeros(1024, dtype=np.int32)  # signature size by slot
        self.by_token: dict[str, array[int]] = {}

    def add(self, key: int, signature: str) -> None:
        tokens = signature.split()
        slot = self.free.pop() if self.free else len(self.key_of)
        if slot == len(self.key_of):
            self.key_of.append(key)
            if slot == len(self.sizes):
                self.sizes = np.concatenate([self.sizes, np.zeros_like(self.sizes)])
        else:
            self.key_of[slot] = key
        self.sizes[slot] = len(tokens)
        self.slot_of[key] = slot
        self.signatures[key] = signature
        for token in tokens:
            postings = self.by_token.get(token)
            if postings is None:
                postings = self.by_token[token] = array("i")
            postings.append(slot)

    def forget(self, keys: Iterable[int]) -> None:
        for key in keys:
            slot = self.slot_of.pop(key, None)
            if slot is None:
                continue
            for token in self.signatures.pop(key).split():
                postings = self.by_token[token]
                postings.remove(slot)
                if not postings:
                    del self.by_token[token]
            self.free.append(slot)

    def same_story(self, signature: str) -> int | None:
        """The most similar recent story at or above the threshold, if any."""
        tokens = signature.split()
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
        scores = counts[candidates] / np.minimum(len(tokens), sizes)  # overlap(), from counts
        scores[sizes < MIN_TOKENS] = 0.0
        best = int(np.argmax(scores))
        return self.key_of[candidates[best]] if scores[best] >= THRESHOLD else None


@dataclass
class Placement:
    """Where each new draft of one ingest goes: into a recent story, or into a new story that
    later drafts of the same batch may join (one feed often repeats an event)."""

    joins: list[tuple[ItemDraft, int]] = field(default_factory=list)
    groups: list[list[ItemDraft]] = field(default_factory=list)  # the first draft leads
    keys: list[int] = field(default_factory=list)  # each group's key in the story index


class Clusters:
    """The story index of the last `window`, kept in memory and topped up from the database."""

    def __init__(self, window: timedelta = timedelta(hours=48)) -> None:
        self.window = window
        self.reset()

    def reset(self) -> None:
        # Keys are story ids, or negative numbers for stories this process made: those enter
        # the index once, when placed, and `story_of` maps them to their ids once stored.
        self.index = StoryIndex()
        self.story_of: dict[int, int] = {}
        self.expiry: deque[tuple[datetime, int]] = deque()  # (created, key), oldest first
        self.last_id = 0
        self.next_key = -1

    def load(self, rows: Iterable[tuple[int, str, datetime]], now: datetime) -> None:
        """Add stories stored since the last load (by any process) and forget expired ones."""
        for story_id, text, created in rows:
            self.remember(story_id, text, created)
        cutoff = now - self.window
        while self.expiry and self.expiry[0][0] < cutoff:
            _, key = self.expiry.popleft()
            self.index.forget([key])
            self.story_of.pop(key, None)

    def same_story(self, draft: ItemDraft) -> int | None:
        key = self.index.same_story(draft.signature)
        return key if key is None or key > 0 else self.story_of.get(key)

    def place(self, drafts: Iterable[ItemDraft], by_link: Mapping[str, int]) -> Placement:
        """Same link or same headline and lead as a recent story joins it; the rest make new
        stories, batch-mates alike sharing one. New stories enter the index at once (under
        keys that `settle` ties to their ids), so batch-mates find them like any other."""
        placement = Placement()
        groups_by_key, groups_by_link = dict[int, int](), dict[str, int]()
        for draft in drafts:
            story_id = by_link.get(draft.link) if draft.link else None
            group = groups_by_link.get(draft.link) if draft.link else None
            if story_id is None and group is None:
                key = self.index.same_story(draft.signature)
                if key is not None and key in groups_by_key:
                    group = groups_by_key[key]
                elif key is not None:
                    story_id = key if key > 0 else self.story_of.get(key)
            if story_id is not None:
                placement.joins.append((draft, story_id))
                continue
            if group is None:
                group, key = len(placement.groups), self.next_key
                self.next_key -= 1
                self.index.add(key, draft.signature)
                groups_by_key[key] = group
                placement.groups.append([])
                placement.keys.append(key)
            placement.groups[group].append(draft)
            if draft.link:
                groups_by_link.setdefault(draft.link, group)
        return placement

    def settle(self, keys: Sequence[int], story_ids: Sequence[int]) -> None:
        """The placed new stories were stored under these ids."""
        now = datetime.now(UTC)
        for key, story_id in zip(keys, story_ids, strict=True):
            self.story_of[key] = story_id
            self.expiry.append((now, key))
            self.last_id = max(self.last_id, story_id)

    def remember(self, story_id: int, signature: str, created: datetime | None = None) -> None:
        """A story stored by another ingest or process, from its stored signature."""
        self.index.add(story_id, signature)
        self.expiry.append((created or datetime.now(UTC), story_id))
        self.last_id = max(self.last_id, story_id)
