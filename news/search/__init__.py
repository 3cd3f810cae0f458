"""Topics find their own news: news-search providers asked about followed queries (SPEC §2).

A provider says a query in its own syntax as a superset of ours: what it cannot say (a short
word, a nested group, an exclusion of a group) is left out, never guessed, since every result
is matched locally with the full query like any feed item. Queries that are one word, one
phrase or one OR of them are packed into one request where the provider's syntax allows.
What a provider answers becomes drafts, exactly like a feed's entries."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from news.fetch import Fetched, FetchError
from news.items import ItemDraft
from news.parsing import FeedReader
from news.topics import And, Node, Not, Or, QueryError, Term, parse


class SearchRefused(FetchError):
    """A provider answered with something other than results: a plain-text refusal (GDELT's
    rate limit), an HTML error page, a body that does not parse."""

    def __init__(self, detail: str) -> None:
        super().__init__("search_refused", detail)


class QueryRefused(SearchRefused):
    """The provider refused the query it was asked (GDELT: "The specified phrase is too
    short."): the request's fault, not the provider's."""


@dataclass(frozen=True)
class Translation:
    """A query in a provider's syntax: `alone` when asked by itself; `options` the words or
    phrases it can share an OR with others by (empty: it must be asked alone)."""

    alone: str
    options: tuple[str, ...] = ()


class Provider(Protocol):
    """One news-search API: kind (its SEARCH_PROVIDERS name), its name in /sources, its
    endpoint, and the least time between two of its requests."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def endpoint(self) -> str: ...

    @property
    def spacing_seconds(self) -> int: ...

    def translate(self, query: str) -> Translation | None: ...

    def combine(self, options: Sequence[str]) -> str | None: ...

    def url(self, query: str, since: timedelta | None) -> str: ...

    async def drafts(self, fetched: Fetched, reader: FeedReader) -> list[ItemDraft]: ...

    def article_link(self, draft: ItemDraft) -> bool: ...


@dataclass(frozen=True)
class Request:
    """One request: the provider's query text and the followed queries it asks about."""

    text: str
    queries: tuple[str, ...]


def pack(provider: Provider, queries: Sequence[str], alone: Collection[str] = ()
         ) -> tuple[Request | None, list[str]]:
    """The first searchable query, with as many of the following as fit one request; and the
    queries passed over because the provider cannot ask them at all (they are marked searched,
    so they wait their turn like the others instead of blocking the line). Queries in `alone`
    share no request (one of them made the provider refuse a request they shared)."""
    skipped: list[str] = []
    first: tuple[str, Translation] | None = None
    rest: list[tuple[str, Translation]] = []
    for query in queries:
        translation = provider.translate(query)
        if translation is not None and query in alone:
            translation = Translation(translation.alone)
        if translation is None:
            skipped.append(query)
        elif first is None:
            first = (query, translation)
        else:
            rest.append((query, translation))
    if first is None:
        return None, skipped
    if not first[1].options:
        return Request(first[1].alone, (first[0],)), skipped
    taken, options = [first[0]], list(first[1].options)
    for query, translation in rest:
        if not translation.options:
            continue
        wider = options + [o for o in translation.options if o not in options]
        if provider.combine(wider) is None:
            break
        taken.append(query)
        options = wider
    if len(taken) == 1:
        return Request(first[1].alone, (first[0],)), skipped
    text = provider.combine(options)
    assert text is not None
    return Request(text, tuple(taken)), skipped


Token = Callable[[Term], str | None]  # a word or phrase in the provider's syntax, or None


def translate(query: str, token: Token, group: Callable[[Sequence[str]], str]
              ) -> Translation | None:
    """Our query as AND-ed parts and exclusions in a provider's syntax, each part a token or an
    OR of tokens (`group`), which is what GDELT's syntax and Google's share. A part the
    provider cannot say is dropped from an AND (a wider search), and makes a query that needs
    it unsearchable; an exclusion it cannot say is dropped."""
    try:
        node = parse(query)
    except QueryError:
        return None
    required: list[tuple[str, ...]] = []
    excluded: list[str] = []
    for part in node.nodes if isinstance(node, And) else (node,):
        if isinstance(part, Not):
            if isinstance(part.node, Term) and (said := token(part.node)) is not None:
                excluded.append("-" + said)
            continue
        options = _options(part, token)
        if options is None and not isinstance(node, And):
            return None
        if options is not None:
            required.append(options)
    if not required:
        return None
    parts = [options[0] if len(options) == 1 else group(options) for options in required]
    alone = " ".join(parts + excluded)
    return Translation(alone, required[0] if len(required) == 1 else ())


def _options(node: Node, token: Token) -> tuple[str, ...] | None:
    """A word, or an OR of words and phrases, as tokens; None for anything else."""
    terms = [node] if isinstance(node, Term) else list(node.nodes) if isinstance(node, Or) else []
    said = [token(term) if isinstance(term, Term) else None for term in terms]
    if not said or any(one is None for one in said):
        return None
    return tuple(one for one in said if one is not None)
