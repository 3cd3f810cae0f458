"""HTML to plain text and sentence splitting, shared by items, briefs and render."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from difflib import SequenceMatcher
from html.parser import HTMLParser
from itertools import islice

from news.types import clip

_BLOCKS = {"p", "br", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote"}
_SKIP = {"script", "style", "noscript", "template"}
_SPACES = re.compile(r"  +")  # a lone space stays: replacing it with itself costs a match
_OTHER_SPACE = re.compile(r"[^\S\n ]+")  # whitespace that is neither a line break nor a space
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")
_CJK_PUNCTUATION = re.compile(r"[\u3000-\u303f\uff01-\uff0f\uff1a-\uff1f\uff5b-\uff65]")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self.skipping:
            self.skipping -= 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Feed summaries are HTML fragments; the brief and the matcher want their words only."""
    if "<" not in markup:
        return clean_spaces(html.unescape(markup))
    collector = _TextCollector()
    collector.feed(markup)
    collector.close()
    return clean_spaces("".join(collector.parts))


def clean_spaces(text: str) -> str:
    """Collapse runs of spaces, keep paragraph breaks, drop control characters.

    Every feed entry passes here, so the common case stays inside the regex engine: only text
    that still holds an unprintable character after spacing is walked character by character.
    """
    text = _OTHER_SPACE.sub(" ", text)
    if not text.replace("\n", "").isprintable():
        text = "".join(ch for ch in text if ch == "\n" or ch.isprintable())
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _sentences(text: str) -> Iterator[str]:
    """Sentences one at a time: every entry of every poll asks for its first sentence (the
    story signature) and whether it has three (a snippet), and neither needs the rest split."""
    for block in text.split("\n"):
        start = 0
        for end in _SENTENCE_END.finditer(block):
            if piece := block[start:end.start()].strip():
                yield piece
            start = end.end()
        if piece := block[start:].strip():
            yield piece


def sentences(text: str) -> list[str]:
    """Split on sentence ends in Latin and CJK punctuation; good enough for a lead."""
    return list(_sentences(text))


def first_sentence(text: str) -> str:
    """sentences(text)[0], or "" when there is none."""
    return next(_sentences(text), "")


def first_sentences(text: str, count: int) -> list[str]:
    """sentences(text)[:count], splitting no further."""
    return list(islice(_sentences(text), count))


def has_sentences(text: str, count: int) -> bool:
    """len(sentences(text)) >= count, stopping at the count."""
    return count <= 0 or next(islice(_sentences(text), count - 1, None), None) is not None


def join_sentences(parts: list[str]) -> str:
    """Sentences joined as the script writes them: no space after 。！？ in CJK text."""
    pieces: list[str] = []
    for part in filter(None, parts):
        if pieces and not _CJK_PUNCTUATION.match(pieces[-1][-1]):
            pieces.append(" ")
        pieces.append(part)
    return "".join(pieces)


def lead(text: str, *, max_sentences: int = 3, max_chars: int = 600) -> str:
    """The first sentences of an article, the classic extractive summary of news."""
    chosen: list[str] = []
    for sentence in sentences(text):
        if chosen and len(join_sentences([*chosen, sentence])) > max_chars:
            break
        chosen.append(sentence)
        if len(chosen) == max_sentences:
            break
    joined = join_sentences(chosen)
    return joined if len(joined) <= max_chars else joined[: max_chars - 1].rstrip() + "…"


TITLE_CHARS = 300  # an item's headline as stored: room for any real headline

def excerpt(text: str, limit: int = 40) -> str:
    """A reader's argument echoed back: short, so no reply can pass Telegram's 4096."""
    return clip(" ".join(text.split()), limit)


_WORDS = re.compile(r"\w+")
HEADLINE_LIKENESS = 0.9  # a copy of the headline with a changed quote, dash or word still is one


def _words(text: str) -> str:
    return " ".join(_WORDS.findall(unicodedata.normalize("NFKC", text).casefold()))


def _is_headline(candidate: str, headline: str) -> bool:
    """Whether a line or sentence is the headline again, to within punctuation and a typo."""
    a, b = _words(candidate), _words(headline)
    return bool(a) and bool(b) and (
        a == b or SequenceMatcher(None, a, b, autojunk=False).ratio() >= HEADLINE_LIKENESS)


def without_headline(text: str, headline: str) -> str:
    """The text without a leading copy of its headline: an article page opens with its <h1>,
    and some feeds open their text with the title, so a summary would open with it twice.
    Text that is only the headline stays as it is."""
    first_line, _, rest = text.partition("\n")
    if rest.strip() and _is_headline(first_line, headline):
        return rest.strip()
    sentence = first_sentence(text)
    if sentence and text.startswith(sentence) and _is_headline(sentence, headline):
        remainder = text[len(sentence):].strip()
        return remainder or text
    return text
