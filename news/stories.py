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
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from news.items import ItemDraft
from news.text import sentences
from news.topics import fold, unspaced

THRESHOLD = 0.6
MIN_TOKENS = 5
_WORD = re.compile(r"\w+")
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was "
    "were will with de la le les des du et en un une el los las y del der die das und von zu "
    "mit im il di che по на и в с".split()
)


def signature(title: str, text: str) -> frozenset[str]:
    """Tokens of the headline and the first sentence of the text."""
    first = sentences(text)[:1]
    folded = fold(" ".join([title, *first]))
    tokens: set[str] = set()
    for word in _WORD.findall(folded):
        if unspaced(word):
            tokens.update(word[i:i + 2] for i in range(max(1, len(word) - 1)))
        elif word not in _STOP and len(word) > 1:
            tokens.add(word)
    return frozenset(tokens)


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    if len(a) < MIN_TOKENS or len(b) < MIN_TOKENS:
        return 0.0
    return len(a & b) / min(len(a), len(b))


class StoryIndex:
    """Recent stories by token, so a new item is compared only with stories sharing a token."""

    def __init__(self) -> None:
        self.signatures: dict[int, frozenset[str]] = {}
        self.by_token: dict[str, set[int]] = defaultdict(set)

    def add(self, story_id: int, tokens: frozenset[str]) -> None:
        self.signatures[story_id] = tokens
        for token in tokens:
            self.by_token[token].add(story_id)

    def forget(self, story_ids: Iterable[int]) -> None:
        for story_id in story_ids:
            for token in self.signatures.pop(story_id, frozenset()):
                self.by_token[token].discard(story_id)

    def same_story(self, tokens: frozenset[str]) -> int | None:
        """The most similar recent story at or above the threshold, if any."""
        if len(tokens) < MIN_TOKENS:
            return None
        counts: dict[int, int] = defaultdict(int)
        for token in tokens:
            for story_id in self.by_token.get(token, ()):
                counts[story_id] += 1
        best, best_score = None, THRESHOLD
        for story_id, shared in counts.items():
            size = len(self.signatures[story_id])
            if size < MIN_TOKENS:
                continue
            score = shared / min(len(tokens), size)  # overlap(), from counts already made
            if score >= best_score:
                best, best_score = story_id, score
        return best


class Clusters:
    """The story index of the last `window`, kept in memory and topped up from the database."""

    def __init__(self, window: timedelta = timedelta(hours=48)) -> None:
        self.window = window
        self.reset()

    def reset(self) -> None:
        self.index = StoryIndex()
        self.created: dict[int, datetime] = {}
        self.last_id = 0

    def load(self, rows: Iterable[tuple[int, str, datetime]], now: datetime) -> None:
        """Add stories stored since the last load (by any process) and forget expired ones."""
        for story_id, text, created in rows:
            self.remember(story_id, text, created)
        expired = [sid for sid, created in self.created.items() if created < now - self.window]
        self.index.forget(expired)
        for story_id in expired:
            del self.created[story_id]

    def same_story(self, draft: ItemDraft) -> int | None:
        return self.index.same_story(signature(draft.title, draft.summary))

    def signature(self, draft: ItemDraft) -> str:
        return " ".join(sorted(signature(draft.title, draft.summary)))

    def alike(self, signature: str, other: str) -> bool:
        """Whether two stored signatures are the same story (for drafts of one batch)."""
        return overlap(frozenset(signature.split()), frozenset(other.split())) >= THRESHOLD

    def remember(self, story_id: int, text: str, created: datetime | None = None) -> None:
        self.index.add(story_id, frozenset(text.split()))
        self.created[story_id] = created or datetime.now(UTC)
        self.last_id = max(self.last_id, story_id)
