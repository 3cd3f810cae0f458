"""HTML to plain text and sentence splitting, shared by items, briefs and render."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from itertools import islice

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
NAME_CHARS = 100  # a source's name as stored: it is repeated in the footer of every alert


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary with an ellipsis, so that one
    publisher's 5,000-character title cannot push every message past Telegram's 4096."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"
