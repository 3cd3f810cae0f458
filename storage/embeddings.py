"""Story and meaning embeddings: float32 bytes in a plain column, searched with numpy.

PostgreSQL servers often lack pgvector, and SQLite has no vector type at all, so one storage
serves both: a story's vector is read back only for stories of a recent window (7 days for a
new topic's preview and for /ask), a scan numpy does in milliseconds at tens of thousands of
stories. The matcher never searches here: it compares each new story with the topics'
vectors in memory (news.semantic.SemanticMatcher).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.db import database_now, session_scope
from storage.models import Item, MeaningEmbedding, Story, StoryEmbedding, Subscription

Vector = npt.NDArray[np.float32]
PENDING_FOR = timedelta(hours=6)  # a new story not embedded by then is embedded, not alerted
_IDS_PER_QUERY = 5000


def normalized(vectors: npt.ArrayLike) -> Vector:
    """Rows scaled to length 1, so a dot product is the cosine similarity (news.semantic's
    matcher and the window searched here)."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def to_bytes(vector: Vector) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(raw: bytes) -> Vector:
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def queue(*, session: Session, story_ids: Iterable[int]) -> None:
    """New stories wait for their embedding, to be matched against semantic topics once it
    comes (news.semantic_round)."""
    now = database_now(session)
    for story_id in story_ids:
        session.add(StoryEmbedding(story_id=story_id, created_at=now))


def waiting(*, session: Session, limit: int, recent: timedelta = timedelta(days=1)
            ) -> list[tuple[int, str, bool]]:
    """Stories to embed now, as (id, text, alert): those queued by an ingest (alerted once
    embedded, unless they waited past PENDING_FOR) first, then recent stories stored without
    an alert (a new source's first entries), which previews and /ask search too."""
    now = database_now(session)
    queued = session.exec(
        select(StoryEmbedding.story_id, StoryEmbedding.created_at)
        .where(col(StoryEmbedding.vector).is_(None))
        .order_by(col(StoryEmbedding.story_id)).limit(limit)).all()
    chosen = [(story_id, created >= now - PENDING_FOR) for story_id, created in queued]
    if len(chosen) < limit:
        unqueued = session.exec(
            select(Story.id)
            .where(col(Story.created_at) >= now - recent,
                   ~col(Story.id).in_(select(StoryEmbedding.story_id)))
            .order_by(col(Story.id).desc()).limit(limit - len(chosen))).all()
        chosen += [(story_id, False) for story_id in unqueued if story_id is not None]
    texts = texts_of(session=session, story_ids=[story_id for story_id, _ in chosen])
    return [(story_id, texts[story_id], alert) for story_id, alert in chosen
            if story_id in texts]


def texts_of(*, session: Session, story_ids: Collection[int]) -> dict[int, str]:
    """What is embedded of each story: its first report's headline and text."""
    found: dict[int, str] = {}
    ids = sorted(story_ids)
    for start in range(0, len(ids), _IDS_PER_QUERY):
        rows = session.exec(
            select(Item.story_id, Item.title, Item.summary)
            .where(col(Item.story_id).in_(ids[start:start + _IDS_PER_QUERY]))
            .order_by(col(Item.id))).all()
        for story_id, title, summary in rows:
            found.setdefault(story_id, f"{title}\n{summary}")
    return found


def save(*, session: Session, model: str, vectors: Mapping[int, Vector]) -> list[int]:
    """Each story's vector, written once: the ids this call wrote (another replica may have
    embedded one first; only the writer alerts it)."""
    written = []
    now = database_now(session)
    for story_id, vector in vectors.items():
        row = session.get(StoryEmbedding, story_id)
        if row is not None and row.vector is not None:
            continue
        if row is None:
            try:
                with session.begin_nested():
                    session.add(StoryEmbedding(story_id=story_id, model=model, dims=len(vector),
                                               vector=to_bytes(vector), created_at=now))
            except IntegrityError:  # another replica, or the story is gone
                continue
        else:
            row.model, row.dims, row.vector = model, len(vector), to_bytes(vector)
        written.append(story_id)
    return written


def vectors_of(*, session: Session, story_ids: Collection[int], model: str
               ) -> dict[int, Vector]:
    ids = sorted(story_ids)
    found: dict[int, Vector] = {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        rows = session.exec(
            select(StoryEmbedding.story_id, StoryEmbedding.vector)
            .where(col(StoryEmbedding.story_id).in_(ids[start:start + _IDS_PER_QUERY]),
                   StoryEmbedding.model == model, col(StoryEmbedding.vector).is_not(None))).all()
        found.update({story_id: from_bytes(raw) for story_id, raw in rows if raw})
    return found


def window(*, session: Session, since: datetime, model: str | None = None, dims: int = 0
           ) -> tuple[list[int], Vector]:
    """The stored vectors of stories created since then: their ids and one matrix."""
    statement = (select(StoryEmbedding.story_id, StoryEmbedding.vector)
                 .join(Story, col(Story.id) == StoryEmbedding.story_id)
                 .where(col(Story.created_at) >= since, col(StoryEmbedding.vector).is_not(None)))
    if model is not None:
        statement = statement.where(StoryEmbedding.model == model)
    if dims:
        statement = statement.where(StoryEmbedding.dims == dims)
    ids: list[int] = []
    rows: list[Vector] = []
    for story_id, raw in session.exec(statement).all():
        if not raw:
            continue
        vector = from_bytes(raw)
        if not rows or len(vector) == len(rows[0]):
            ids.append(story_id)
            rows.append(vector)
    if not rows:
        return [], np.zeros((0, dims), np.float32)
    return ids, normalized(rows)


def nearest(engine: Engine, vector: Vector, since: datetime, limit: int = 10,
            model: str | None = None) -> list[tuple[int, float]]:
    """The stories created since then nearest to the vector, as (story id, cosine similarity),
    most similar first: numpy over the window's stored vectors of the vector's size."""
    with session_scope(engine) as session:
        return nearest_in(session=session, vector=vector, since=since, limit=limit, model=model)


def nearest_in(*, session: Session, vector: Vector, since: datetime, limit: int = 10,
               model: str | None = None) -> list[tuple[int, float]]:
    """nearest() within a session the caller holds (/ask reads its full-text lists in it)."""
    ids, matrix = window(session=session, since=since, model=model, dims=len(vector))
    return ranked(ids, matrix, vector, limit)


def ranked(ids: list[int], matrix: Vector, vector: Vector, limit: int
           ) -> list[tuple[int, float]]:
    if not ids:
        return []
    scores = matrix @ normalized(vector)[0]
    order = np.argsort(-scores, kind="stable")[:limit]
    return [(ids[i], float(scores[i])) for i in order]


def meaning_vectors(*, session: Session, model: str, dims: int,
                    keys: Collection[str] | None = None) -> dict[str, Vector]:
    """The stored meanings' vectors for this model and size, keyed by their folded wording:
    every one, or those of `keys` (read through the unique index, a few at a time)."""
    statement = select(MeaningEmbedding.meaning, MeaningEmbedding.vector).where(
        MeaningEmbedding.model == model)
    if dims:  # 0: the model's own size, whatever it is
        statement = statement.where(MeaningEmbedding.dims == dims)
    if keys is None:
        return {meaning: from_bytes(raw) for meaning, raw in session.exec(statement).all()}
    wanted = sorted(set(keys))
    found: dict[str, Vector] = {}
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = statement.where(col(MeaningEmbedding.meaning).in_(
            wanted[start:start + _IDS_PER_QUERY]))
        found.update({meaning: from_bytes(raw) for meaning, raw in session.exec(chunk).all()})
    return found


def meaning_keys(*, session: Session, model: str, dims: int) -> set[str]:
    statement = select(MeaningEmbedding.meaning).where(MeaningEmbedding.model == model)
    if dims:
        statement = statement.where(MeaningEmbedding.dims == dims)
    return set(session.exec(statement).all())


def semantic_queries(*, session: Session) -> list[str]:
    """The distinct queries of topics followed by meaning (news.semantic: they start with ~)."""
    statement = select(Subscription.query).where(col(Subscription.query).startswith("~"))
    return list(set(session.exec(statement).all()))


def save_meaning(*, session: Session, model: str, dims: int, meaning: str,
                 vector: Vector) -> None:
    exists = session.exec(select(MeaningEmbedding.id).where(
        MeaningEmbedding.model == model, MeaningEmbedding.dims == dims,
        MeaningEmbedding.meaning == meaning)).first()
    if exists is not None:
        return
    try:
        with session.begin_nested():
            session.add(MeaningEmbedding(model=model, dims=dims, meaning=meaning,
                                         vector=to_bytes(vector)))
    except IntegrityError:  # another replica stored it first
        pass


def count(*, session: Session, since: datetime) -> int:
    """Stories embedded since then (/stats)."""
    return session.exec(select(func.count()).select_from(StoryEmbedding).where(
        col(StoryEmbedding.created_at) >= since, col(StoryEmbedding.vector).is_not(None))).one()

