"""The topic query language of SPEC §4: parse once, match items many times."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

MAX_QUERY_CHARS = 300
_TOKEN = re.compile(r'"([^"]*)"|(\()|(\))|(\S+?)(?=[\s()"]|$)')
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\u3040-\u30ff\u0e00-\u0e7f]")
_INVISIBLE = dict.fromkeys(
    cp for cp in range(0x2000, 0x2070) if unicodedata.category(chr(cp)) == "Cf"
) | {0xFEFF: None, 0x00AD: None}
_KANA_VOICING = "\u3099\u309a"  # dakuten and handakuten: ガ is not カ


def _combining_marks() -> re.Pattern[str]:
    """A character class of every combining mark (canonical class > 0) but kana voicing."""
    marks = [chr(cp) for cp in range(0x300, 0x20000)
             if unicodedata.combining(chr(cp)) and chr(cp) not in _KANA_VOICING]
    return re.compile("[" + "".join(re.escape(mark) for mark in marks) + "]")


_MARKS = _combining_marks()
_SYNTAX = frozenset(' ()"')


def unspaced(text: str) -> bool:
    """Scripts written without spaces between words (CJK, Thai): terms match as substrings."""
    return _CJK.search(text) is not None


class QueryError(ValueError):
    """A query we cannot read; `code` keys the explanation in the catalogue."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def fold(text: str) -> str:
    """Case- and accent-insensitive form: NFKD, combining marks dropped (not kana's), casefolded.

    Every item is folded for matching and for its story signature: ASCII needs only lower(),
    and the marks go in one regex pass rather than a Python loop over every character.
    """
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.translate(_INVISIBLE))
    return unicodedata.normalize("NFC", _MARKS.sub("", decomposed)).casefold()


@dataclass(frozen=True)
class Term:
    """A word or phrase; whole-word in spaced scripts, substring in CJK and Thai."""

    text: str

    def matches(self, folded: str) -> bool:
        needle, pattern = _compiled_term(self.text)
        if pattern is None:
            return needle in folded
        return _whole_word(pattern, folded)

    @property
    def needle(self) -> str:
        """The folded text an automaton looks for (words joined by single spaces)."""
        return _needle(self.text)


@dataclass(frozen=True)
class Not:
    node: Node

    def matches(self, folded: str) -> bool:
        return not self.node.matches(folded)


@dataclass(frozen=True)
class And:
    nodes: tuple[Node, ...]

    def matches(self, folded: str) -> bool:
        return all(node.matches(folded) for node in self.nodes)


@dataclass(frozen=True)
class Or:
    nodes: tuple[Node, ...]

    def matches(self, folded: str) -> bool:
        return any(node.matches(folded) for node in self.nodes)


Node = Term | Not | And | Or


@lru_cache(maxsize=200_000)
def _needle(text: str) -> str:
    """Apart from the pattern: building a matcher needs every term's needle, but only the
    terms of candidate queries need a compiled regex."""
    return " ".join(fold(text).split())


@lru_cache(maxsize=200_000)
def _compiled_term(text: str) -> tuple[str, re.Pattern[str] | None]:
    """Folded needle, and the whole-word pattern (None where substrings are the rule: CJK, Thai)."""
    needle = _needle(text)
    if _CJK.search(needle):
        return needle, None
    words = r"\s+".join(map(re.escape, needle.split()))
    return needle, re.compile(r"(?<!\w)" + words + r"(?!\w)")


def _is_mark(text: str, index: int) -> bool:
    """Whether text[index] is a combining mark (a Devanagari vowel sign is part of its word)."""
    return 0 <= index < len(text) and unicodedata.category(text[index]).startswith("M")


def _whole_word(pattern: re.Pattern[str], folded: str) -> bool:
    """A match not glued to a combining mark on either side, which a regex word class misses."""
    position = 0
    while (found := pattern.search(folded, position)) is not None:
        if not _is_mark(folded, found.start() - 1) and not _is_mark(folded, found.end()):
            return True
        position = found.start() + 1
    return False


def positive_terms(node: Node) -> list[Term]:
    """Terms that are looked for (not excluded): what a prefilter can search for."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Not):
        return []
    return [term for child in node.nodes for term in positive_terms(child)]


@dataclass(frozen=True)
class Prefilter:
    """What a matcher needs of a stored query before any item arrives."""

    needles: set[str]  # found as whole words, they make the query a candidate
    always: bool = False  # it can match with none of them: checked on every item
    any_of: bool = False  # it matches exactly when one of them is found (`a`, `a OR "b c"`)


def prefilter(query: str) -> Prefilter:
    """A superset of the needles a stored query needs is enough, since only queries found by
    them run the exact check. A query without exclusions is only tokenized, not parsed:
    building the matcher for a million subscriptions was mostly parsing."""
    if "-" not in query and query.isprintable():  # no Not anywhere: every term is positive
        try:
            tokens = _tokens(query)
        except QueryError:
            return Prefilter(set())
        texts = [token[1:-1] if token.startswith('"') else token for token in tokens
                 if token not in ("OR", "(", ")")]
        if not all(map(_has_word, texts)):  # the parser refuses a term with no word (`~`)
            return Prefilter(set())
        needles = {needle for text in texts if (needle := _needle(text))}
        return Prefilter(needles, any_of=_disjunction(tokens, query))
    try:
        node = parse(query)
    except QueryError:
        return Prefilter(set())
    return Prefilter({term.needle for term in positive_terms(node)}, not needs_a_term(node),
                     _any_of(node))


def _disjunction(tokens: list[str], query: str) -> bool:
    """Whether these tokens parse, and as terms joined by OR alone (parentheses allowed):
    a conservative reading; anything else is left to the parser."""
    if len(query.strip()) > MAX_QUERY_CHARS:
        return False
    depth, want_term = 0, True
    for token in tokens:
        if token == "(":
            if not want_term:
                return False  # `a (b)`: an AND
            depth += 1
        elif token == ")":
            depth -= 1
            if want_term or depth < 0:  # `()`, `a OR )`, `a)`
                return False
        elif token == "OR":
            if want_term:
                return False
            want_term = True
        elif want_term:
            want_term = False
        else:
            return False  # two terms in a row: an AND
    return depth == 0 and not want_term


def _any_of(node: Node) -> bool:
    if isinstance(node, Term):
        return True
    return isinstance(node, Or) and all(_any_of(child) for child in node.nodes)


def needs_a_term(node: Node) -> bool:
    """Whether every match contains at least one positive term (false for `a OR -b`)."""
    if isinstance(node, Term):
        return True
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(needs_a_term(child) for child in node.nodes)
    return all(needs_a_term(child) for child in node.nodes)


def _tokens(query: str) -> list[str]:
    if query.count('"') % 2:
        raise QueryError("unbalanced_quote")
    tokens: list[str] = []
    for phrase, opening, closing, word in _TOKEN.findall(query):
        if opening or closing:
            tokens.append(opening or closing)
        elif word:
            tokens.append(word)
        elif phrase.strip():
            tokens.append('"' + " ".join(phrase.split()) + '"')
    return tokens


class _Parser:
    """Recursive descent as in web search: OR binds tighter than the implicit AND."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.has_words = any(_has_word(token) for token in tokens)

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse_and(self) -> Node:
        parts: list[Node] = []
        while self.peek() not in (None, ")"):
            parts.append(self.parse_or())
        if not parts:
            raise QueryError("empty")
        if all(isinstance(part, Not) for part in parts):
            raise QueryError("only_exclusions")
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_or(self) -> Node:
        options = [self.parse_unary()]
        while self.peek() == "OR":
            self.take()
            if self.peek() in (None, ")", "OR"):
                raise QueryError("dangling_or")
            options.append(self.parse_unary())
        return options[0] if len(options) == 1 else Or(tuple(options))

    def parse_unary(self) -> Node:
        token = self.take()
        if token == "OR":
            raise QueryError("dangling_or")
        if token == "(":
            inner = self.parse_and()
            if self.peek() != ")":
                raise QueryError("unbalanced_paren")
            self.take()
            return inner
        if token == "-" and self.peek() not in (None, ")", "OR"):
            return Not(self.parse_unary())
        if token.startswith("-") and len(token) > 1:
            return Not(self.parse_atom(token[1:]))
        return self.parse_atom(token)

    def parse_atom(self, token: str) -> Node:
        text = token[1:-1] if token.startswith('"') else token
        if not _has_word(text) and self.has_words:  # one of its terms: `AT & T`
            raise QueryError("lone_symbol")
        if not _has_word(text):
            raise QueryError("no_words")
        return Term(text)


@lru_cache(maxsize=100_000)
def _has_word(text: str) -> bool:
    return any(ch.isalnum() for ch in fold(text))


def parse(query: str) -> Node:
    """Parse a query or raise QueryError saying why not."""
    if not query.isprintable():  # a matcher parses every stored query: skip the usual case
        spaced = (" " if ch.isspace() else ch for ch in query)
        query = "".join(ch for ch in spaced if ch.isprintable() or ch == " ")
    query = query.strip()
    if not query:
        raise QueryError("empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError("too_long")
    if _SYNTAX.isdisjoint(query) and query[0] != "-" and query != "OR":
        if not _has_word(query):  # one bare word, what most queries are: no parser needed
            raise QueryError("no_words")
        return Term(query)
    parser = _Parser(_tokens(query))
    node = parser.parse_and()
    if parser.peek() is not None:
        raise QueryError("unbalanced_paren")
    return node


def canonical(node: Node) -> str:
    """The query re-written in its own syntax, so equal queries are stored alike."""
    if isinstance(node, Term):
        return f'"{node.text}"' if _looks_like_syntax(node.text) else node.text
    if isinstance(node, Not):
        inner = canonical(node.node)
        if isinstance(node.node, Not):  # `--x` would read as the word `-x`; `-(-x)` is refused
            return "- " + inner
        return f"-({inner})" if isinstance(node.node, And | Or) else "-" + inner
    if isinstance(node, And):  # OR binds first, but a reader expects it grouped as written
        return " ".join(f"({canonical(part)})" if isinstance(part, Or) else canonical(part)
                        for part in node.nodes)
    return " OR ".join(_option(part) for part in node.nodes)


def same_topic(query: str) -> str:
    """What two queries share when they match alike: parsed, with every term folded (case,
    accents, spacing), written canonically; the query itself folded when it cannot be read."""
    try:
        return canonical(_folded(parse(query)))
    except QueryError:
        return fold(query)


def _folded(node: Node) -> Node:
    if isinstance(node, Term):
        return Term(node.needle)
    if isinstance(node, Not):
        return Not(_folded(node.node))
    return type(node)(tuple(_folded(child) for child in node.nodes))


def _looks_like_syntax(text: str) -> bool:
    """Whether a term written bare would re-parse as something else: it needs its quotes."""
    return (
        text == "OR"
        or text.startswith("-")
        or any(ch in _SYNTAX or ch.isspace() for ch in text)
    )


def _option(node: Node) -> str:
    return f"({canonical(node)})" if isinstance(node, And) else canonical(node)


@dataclass(frozen=True)
class Wording:
    """How one language reads a query back: format templates from the catalogue (query.*)."""

    term: str = "«{term}»"
    group: str = "({node})"
    both: str = "{left} AND {right}"
    either: str = "{left} OR {right}"
    without: str = "{left} AND NOT {right}"
    negated: str = "NOT {node}"


def describe(node: Node, wording: Wording = Wording()) -> str:
    """The query as the user should read it back: `«SoftBank» AND NOT «Hawks»`.

    Exclusions come last, after what is looked for, so each language can say "X without Y".
    """
    if isinstance(node, Term):
        return wording.term.format(term=node.text)
    if isinstance(node, Not):
        return wording.negated.format(node=_operand(node.node, wording))
    if isinstance(node, Or):
        return _joined(wording.either, [_operand(part, wording) for part in node.nodes])
    wanted = [_operand(part, wording) for part in node.nodes if not isinstance(part, Not)]
    excluded = [part.node for part in node.nodes if isinstance(part, Not)]
    if not wanted:  # `-a -b` is refused by parse(); said plainly should one be built by hand
        return _joined(wording.both, [describe(Not(part), wording) for part in excluded])
    said = _joined(wording.both, wanted)
    if excluded:
        shunned = excluded[0] if len(excluded) == 1 else Or(tuple(excluded))
        said = wording.without.format(left=said, right=_operand(shunned, wording))
    return said


def _operand(node: Node, wording: Wording) -> str:
    """A part of a larger query, in parentheses when it is itself a combination."""
    said = describe(node, wording)
    return wording.group.format(node=said) if isinstance(node, And | Or) else said


def _joined(template: str, parts: list[str]) -> str:
    said = parts[0]
    for part in parts[1:]:
        said = template.format(left=said, right=part)
    return said


def matches(node: Node, text: str) -> bool:
    """Whether an item's text (title, summary, extracted text) satisfies the query."""
    return node.matches(fold(text))


def parse_filter(text: str) -> Node | None:
    """What may follow a semantic topic's meaning (news.semantic): terms and exclusions in
    this language, where exclusions alone are allowed (`~"AI in Europe" -crypto`); None when
    nothing follows."""
    spaced = " ".join("".join(" " if ch.isspace() else ch for ch in text
                              if ch.isprintable() or ch.isspace()).split())
    if not spaced:
        return None
    parser = _Parser(_tokens(spaced))
    parts: list[Node] = []
    while parser.peek() is not None:
        if parser.peek() == ")":
            raise QueryError("unbalanced_paren")
        parts.append(parser.parse_or())
    return parts[0] if len(parts) == 1 else And(tuple(parts))
