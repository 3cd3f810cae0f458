"""Briefs: one per story and language, stored as the validated JSON the writer produced."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from news.briefs import Brief as BriefContent
from news.briefs import Written
from storage.models import Brief


def get(*, session: Session, story_id: int, language: str) -> tuple[BriefContent, str] | None:
    """The stored brief and its origin ("llm" or "offline"), if written."""
    row = session.exec(
        select(Brief).where(Brief.story_id == story_id, Brief.language == language)
    ).first()
    if row is None:
        return None
    return BriefContent.model_validate_json(row.payload), row.origin


def save(*, session: Session, story_id: int, language: str, written: Written) -> bool:
    """Store a brief; False if another worker stored one first (theirs is kept)."""
    try:
        with session.begin_nested():
            session.add(Brief(
                story_id=story_id, language=language, origin=written.origin,
                payload=written.brief.model_dump_json(),
                tokens_in=written.tokens_in, tokens_out=written.tokens_out,
            ))
    except IntegrityError:
        return False
    return True
