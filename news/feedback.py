"""Feedback under alerts, pure: which terms to offer, how a topic's query changes, the keyboard.

Feedback changes a topic only through its query language (`-term`) or an explicit mute, so a
reader can always see, and undo, why something is filtered (issue 15).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from news.players import is_name_word
from news.semantic import readable
from news.topics import (
    MAX_QUERY_CHARS,
    And,
    Node,
    Not,
    QueryError,
    Term,
    canonical,
    fold,
    parse,
    unspaced,
)
from news.types import Choice

MAX_TERMS = 2  # "less about" buttons under one alert
MAX_SOURCES = 2  # "mute" buttons under one alert
MAX_LABEL = 32  # characters of a term or source name on a button
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
# Headline words too common to say what a story is about (the offline fallback's stop list).
_COMMON = {
    "about", "after", "again", "against", "amid", "also", "been", "before", "being", "between",
    "could", "down", "during", "first", "from", "have", "here", "into", "just", "last", "like",
    "more", "most", "much", "news", "only", "other", "over", "said", "says", "some", "than",
    "that", "their", "them", "then", "there", "these", "they", "this", "those", "through",
    "under", "until", "upon", "very", "were", "what", "when", "where", "which", "while", "will",
    "with", "would", "year", "years", "your", "avec", "dans", "pour", "sans", "sont", "mais",
    "nach", "über", "eine", "einer", "sich", "nicht", "para", "como", "pero", "sobre", "desde",
}

Translate = Callable[[str], str]
Rows = list[list[tuple[str, str]]]  # keyboard rows of (label, callback data)


def _asked(node: Node) -> list[Term]:
    """Every term the query names, looked for or excluded."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Not):
        return _asked(node.node)
    return [term for child in node.nodes for term in _asked(child)]


def _usable(term: str) -> bool:
    """A term the query language can hold as one quoted or bare word."""
    return '"' not in term and any(ch.isalnum() for ch in fold(term)) and len(term) <= 60


def _named_by(query_terms: Sequence[Term], candidate: str) -> bool:
    """Whether the topic already names the candidate (or the candidate contains a topic term)."""
    folded = " ".join(fold(candidate).split())
    return any(term.matches(folded) or Term(candidate).matches(term.needle)
               for term in query_terms)


def headline_words(headlines: Sequence[str]) -> list[str]:
    """Distinctive words of the story's headlines, those most headlines carry first (ties:
    first seen first): words several headlines share, and names (news.players' shapes, or
    capitalized inside a headline not written in title case). A lone ordinary word ("build",
    "northern") says nothing of what the story is about."""
    carried: Counter[str] = Counter()
    spelled: dict[str, str] = {}
    named: set[str] = set()
    for headline in headlines:
        if unspaced(headline):
            continue  # no word boundaries to cut CJK or Thai headlines at
        words = _WORD.findall(headline)
        long = [word for word in words if len(word) >= 4]
        title_case = len(long) >= 3 and all(word[0].isupper() for word in long)
        for index, word in enumerate(words):
            key = fold(word)
            if len(key) < 4 or key in _COMMON:
                continue
            if is_name_word(word) or (index and word[0].isupper() and not title_case):
                named.add(key)
            spelled.setdefault(key, word)
        carried.update({fold(word) for word in words})
    order = {key: n for n, key in enumerate(spelled)}
    wanted = [key for key in spelled if key in named or carried[key] >= 2]
    return [spelled[key] for key in sorted(wanted, key=lambda k: (-carried[k], order[k]))]


def less_about(
    queries: Sequence[str], players: Sequence[str], headlines: Sequence[str],
    limit: int = MAX_TERMS,
) -> list[str]:
    """Terms of the story that none of its topics asks for: the brief's key players, or
    (none usable) the headlines' frequent words."""
    named: list[Term] = []
    for query in queries:
        try:
            named += _asked(parse(query))
        except QueryError:
            continue
    chosen: list[str] = []
    for pool in (players, headline_words(headlines)):
        for candidate in pool:
            candidate = " ".join(candidate.split())
            if (_usable(candidate) and not _named_by(named, candidate)
                    and fold(candidate) not in {fold(c) for c in chosen}):
                chosen.append(candidate)
            if len(chosen) >= limit:
                return chosen
        if chosen:
            return chosen
    return chosen


def with_exclusion(query: str, term: str) -> str | None:
    """The query with `-term` added; None when it already leaves the term out or would grow
    past what a query may hold. A semantic topic (news.semantic) gets it after its meaning."""
    semantic = readable(query)
    if semantic is not None:
        rest = semantic.rest
        kept = () if rest is None else rest.nodes if isinstance(rest, And) else (rest,)
        if Not(Term(term)) in kept:
            return None
        grown = And((*kept, Not(Term(term))))
        changed = replace(semantic, rest=grown, rest_text=canonical(grown)).canonical()
        return changed if len(changed) <= MAX_QUERY_CHARS else None
    node = parse(query)
    parts = node.nodes if isinstance(node, And) else (node,)
    if Not(Term(term)) in parts:
        return None
    changed = canonical(And((*parts, Not(Term(term)))))
    return changed if len(changed) <= MAX_QUERY_CHARS else None


def without_exclusion(query: str, term: str) -> str | None:
    """The query with the `-term` that feedback added taken out again; None if it is not there."""
    semantic = readable(query)
    if semantic is not None:
        rest = semantic.rest
        parts = () if rest is None else rest.nodes if isinstance(rest, And) else (rest,)
        left = tuple(part for part in parts if part != Not(Term(term)))
        if len(left) == len(parts):
            return None
        node = None if not left else left[0] if len(left) == 1 else And(left)
        return replace(semantic, rest=node,
                       rest_text="" if node is None else canonical(node)).canonical()
    node = parse(query)
    parts = node.nodes if isinstance(node, And) else (node,)
    kept = tuple(part for part in parts if part != Not(Term(term)))
    if len(kept) == len(parts) or not kept:
        return None
    return canonical(kept[0] if len(kept) == 1 else And(kept))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1].rstrip() + "…"


def _count(label: str, n: int) -> str:
    return f"{label} {n}" if n else label


def keyboard(delivery_id: int, up: int, down: int, choices: Sequence[Choice],
             t: Translate) -> Rows:
    """👍 👎 Why? on every alert; under them the 👎 choices, each an undo once applied.
    Labels are plain text (buttons are not HTML), so values are put in after the catalogue."""
    rows: Rows = [[(_count("👍", up), f"up:{delivery_id}"),
                   (_count("👎", down), f"down:{delivery_id}"),
                   (t("feedback.why_button"), f"why:{delivery_id}")]]
    for choice in choices:
        key = f"feedback.{'undo_' if choice.applied else ''}{choice.kind}"
        label = t(key).replace("{term}", _clip(choice.text)).replace("{source}",
                                                                     _clip(choice.text))
        rows.append([(label, f"fb:{choice.id}")])
    return rows
