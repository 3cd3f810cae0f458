"""Full-text search over stored items (migrations 0017, 0024): SQLite FTS5, PostgreSQL text
search, both folding case and accents.

Each search returns story ids, best first: one ranked list for news.ask.fuse to merge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import text
from sqlmodel import Session, col, select

from news.types import Found, Report, Terms
from storage.models import Item

SEARCHED_ITEMS = 300  # best-ranked items read per search: enough for a few dozen stories
SCANNED_ITEMS = 5000  # SQLite's CJK search reads the newest items this far back (no index)


def ranked(*, session: Session, terms: Terms, limit: int = SEARCHED_ITEMS) -> list[list[int]]:
    """The stories whose items carry the terms, best first: one list per way of searching."""
    if session.get_bind().dialect.name == "postgresql":
        return [_postgresql(session, terms, limit)] if terms else []
    lists = []
    if terms.words:
        lists.append(_sqlite_words(session, terms.words, limit))
    if terms.pairs:
        lists.append(_sqlite_pairs(session, terms.pairs, limit))
    return lists


def _distinct(story_ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(story_ids))


def _sqlite_words(session: Session, words: Sequence[str], limit: int) -> list[int]:
    """FTS5's bm25 (rarer words weigh more; a title hit three times a summary hit)."""
    query = " OR ".join('"' + word.replace('"', '""') + '"' for word in words)
    rows = session.execute(text(
        "SELECT items.story_id FROM (SELECT rowid, bm25(item_search, 3.0, 1.0) AS score "
        "FROM item_search WHERE item_search MATCH :query ORDER BY score LIMIT :limit) AS best "
        "JOIN items ON items.id = best.rowid ORDER BY best.score"),
        {"query": query, "limit": limit}).all()
    return _distinct([row[0] for row in rows])


def _sqlite_pairs(session: Session, pairs: Sequence[str], limit: int) -> list[int]:
    """Text written without spaces has no words for FTS5's tokenizer: the newest items are
    read and ranked by how many of the question's character pairs they contain."""
    rows = session.execute(
        select(col(Item.story_id), col(Item.title), col(Item.summary))
        .order_by(col(Item.id).desc()).limit(SCANNED_ITEMS)).all()
    scored = []
    for story_id, title, summary in rows:
        found = sum(2 * (pair in title) + (pair in summary) for pair in pairs)
        if found:
            scored.append((-found, story_id))
    scored.sort(key=lambda pair: pair[0])  # stable: newest first among equals
    return _distinct([story_id for _, story_id in scored])[:limit]


def tsquery(terms: Terms) -> str:
    """`'word' | ('软' <-> '银')`: every term optional, a CJK pair as a phrase of its two
    characters (as the index spaces them)."""
    def quoted(word: str) -> str:
        return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"

    parts = [quoted(word) for word in terms.words]
    parts += ["(" + " <-> ".join(quoted(ch) for ch in pair) + ")" for pair in terms.pairs]
    return " | ".join(parts)


def _postgresql(session: Session, terms: Terms, limit: int) -> list[int]:
    """ts_rank over the GIN-indexed `search_vector` (migration 0017): the more of the terms,
    and the more often, the higher; newest first among equals. The query's accents are folded
    as the stored text's are (tidings_fold, migration 0024): `societe` finds `Société`, as
    SQLite's index does."""
    rows = session.execute(text(
        "SELECT story_id FROM items, to_tsquery('simple', tidings_fold(:query)) AS q "
        "WHERE search_vector @@ q ORDER BY ts_rank(search_vector, q) DESC, items.id DESC "
        "LIMIT :limit"), {"query": tsquery(terms), "limit": limit}).all()
    return _distinct([row[0] for row in rows])


def stories(*, session: Session, story_ids: Sequence[int]) -> list[Found]:
    """The stories with their reports (first reported first), in the order asked."""
    if not story_ids:
        return []
    rows = session.exec(select(Item).where(col(Item.story_id).in_(list(story_ids)))
                        .order_by(col(Item.id))).all()
    reports: dict[int, list[Report]] = defaultdict(list)
    for item in rows:
        reports[item.story_id].append(Report(item.title, item.summary, item.link,
                                             item.source_name, item.published_at))
    return [Found(story_id, tuple(reports[story_id])) for story_id in story_ids
            if reports.get(story_id)]
