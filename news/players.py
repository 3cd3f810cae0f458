"""Names a story is about, found without a model: the offline brief's key players.

Only names that can be told apart from ordinary words are taken, and only those the headline
and the text both carry, in the text's spelling: several capitalized words in a row (Xavier
Bertrand), a capitalized compound (Hauts-de-France), a word capitalized inside (SoftBank), and
the chat topics' own terms (软银) where the source writes them. Acronyms (AMD, AI) are never
taken: nothing tells a company's from a field's. Nothing else is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import pairwise

from news.text import sentences
from news.topics import QueryError, Term, fold, parse, positive_terms, unspaced

MAX_PLAYERS = 8
MAX_CHARS = 120  # a player's name in the brief; a longer run is not a name
# A word with its inner hyphens and apostrophes (Hauts-de-France, O'Neill), digits excluded.
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_POSSESSIVE = re.compile(r"['’]s$")
# Lowercase words that join the parts of a name: Banque de France, Bank of America.
_JOINERS = {"de", "du", "des", "la", "le", "di", "da", "del", "della", "von", "van", "der", "den",
            "of", "y", "&"}
# Capitalized only because a sentence starts with them, or names of times rather than players.
_NOT_NAMES = {
    "a", "an", "the", "this", "that", "these", "those", "in", "on", "at", "for", "by", "with",
    "from", "to", "as", "but", "and", "or", "if", "while", "when", "after", "before", "since",
    "however", "meanwhile", "also", "still", "yet", "now", "then", "so", "for now", "its", "his",
    "her", "their", "our", "we", "they", "he", "she", "it", "i", "le", "la", "les", "un", "une",
    "des", "en", "dans", "pour", "par", "mais", "et", "der", "die", "das", "ein", "eine", "el",
    "los", "las", "una", "con", "para",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche", "janvier", "février",
    "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre",
    "décembre",
}


def named_players(title: str, text: str, topics: Iterable[str] = ()) -> list[str]:
    """Names the headline and the text both carry, in the text's spelling, in its order."""
    headline = fold(title)
    found: dict[str, str] = {}
    for name in [*_topic_names(text, topics), *_capitalized_names(text)]:
        key = fold(name)
        if key not in found and len(name) <= MAX_CHARS and Term(name).matches(headline):
            found[key] = name
    return list(found.values())[:MAX_PLAYERS]


def _capitalized_names(text: str) -> list[str]:
    """Runs of capitalized words that read as names, sentence by sentence."""
    split = sentences(text)
    # Words capitalized where no sentence starts: names, not just first words.
    mid = {m.group() for sentence in split for n, m in enumerate(_WORD.finditer(sentence))
           if n and m.group()[0].isupper()}
    names: list[str] = []
    for sentence in split:
        run: list[str] = []
        starts = False  # whether the run opens the sentence
        end = 0
        for index, match in enumerate(_WORD.finditer(sentence)):
            word = match.group()
            if run and sentence[end:match.start()].strip():  # punctuation between: it ends
                names.extend(_name_of(run, starts, mid))
                run = []
            end = match.end()
            if not (word[0].isupper() or (run and word in _JOINERS)):
                names.extend(_name_of(run, starts, mid))
                run = []
                continue
            if not run:
                starts = index == 0
            run.append(_POSSESSIVE.sub("", word))
            if _POSSESSIVE.search(word):  # SoftBank’s Vision Fund: two names
                names.extend(_name_of(run, starts, mid))
                run = []
        names.extend(_name_of(run, starts, mid))
    return names


def _name_of(run: list[str], starts: bool, mid: set[str]) -> list[str]:
    """The name a run of capitalized words makes, if it makes one."""
    words = list(run)
    if starts and words and not is_name_word(words[0]) and words[0] not in mid:
        words.pop(0)  # capitalized only because it opens the sentence: "Competing European hubs"
    while words and (_not_part(words[0]) or words[0] in _JOINERS):
        words.pop(0)
    while words and (_not_part(words[-1]) or words[-1] in _JOINERS):
        words.pop()
    capitalized = [word for word in words if word[0].isupper() and not _acronym(word)]
    if len(capitalized) >= 2:
        return [" ".join(words)]
    if len(words) == 1 and is_name_word(words[0]):
        return [words[0]]
    return []


def _not_part(word: str) -> bool:
    """A word a name neither starts nor ends with: "The", "Monday", an acronym ("French AI")."""
    return word.lower() in _NOT_NAMES or _acronym(word)


def _acronym(word: str) -> bool:
    """AMD, AI, US: capitals only, which a company and a field or country share."""
    return len(word) >= 2 and word.isupper()


def is_name_word(word: str) -> bool:
    """One word that is a name by its shape: Hauts-de-France, Paris-Saclay, SoftBank, OpenAI."""
    parts = re.split(r"[-'’]", word)
    if len(parts) >= 2 and parts[0][:1].isupper() and parts[-1][:1].isupper():
        return True
    return any(a.islower() and b.isupper() for a, b in pairwise(word))


def _topic_names(text: str, topics: Iterable[str]) -> list[str]:
    """The topics' terms as the text writes them: CJK as is; a term the chat wrote capitalized
    (Nvidia) in that spelling, even opening a sentence; others capitalized mid-sentence."""
    names = []
    for topic in topics:
        try:
            terms = positive_terms(parse(topic))
        except QueryError:
            continue
        for term in terms:
            if _acronym(term.text):
                continue
            if unspaced(term.text):
                if term.text in text:
                    names.append(term.text)
            elif spelled := _spelling_in(text, term.text):
                names.append(spelled)
    return names


def _spelling_in(text: str, term: str) -> str | None:
    """The text's spelling of a term where it is capitalized and does not start a sentence;
    a term written capitalized (the chat's own word that it is a name) may start one."""
    named = term[:1].isupper()
    pattern = re.compile(rf"(?<![\w-]){re.escape(term)}(?![\w-])",
                         0 if named else re.IGNORECASE)
    for sentence in sentences(text):
        for match in pattern.finditer(sentence):
            if (match.start() > 0 or named) and match.group()[0].isupper():
                return match.group()
    return None
