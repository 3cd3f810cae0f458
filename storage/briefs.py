"""Briefs: one per story and language, stored as the validated JSON the writer produced."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from news.types import Brief as BriefContent
from news.types import Written
from storage.db import database_now
from storage.models import Brief, BriefClaim


def get(*, session: Session, story_id: int, language: str) -> tuple[BriefContent, str] | None:
    """The stored brief and its origin ("llm" or "offline"), if written."""
    row = session.exec(
        select(Brief).where(Brief.story_id == story_id, Brief.language == language)
    ).first()
    if row is None:
        return None
    return BriefContent.model_validate_json(row.payload), row.origin


def claim(
    *, session: Session, story_id: int, language: str, lease: timedelta,
    now: datetime | None = None,
) -> bool:
    """Take a brief to write, as deliveries are claimed: True for one writer across every
    replica, until `lease` ends (then another takes it: the first one died). The claim row is
    inserted first, or taken over once expired; a brief already written is not claimed."""
    now = now or database_now(session)  # every replica's clock
    until = now + lease
    insert = (postgresql_insert if session.get_bind().dialect.name == "postgresql"
              else sqlite_insert)
    statement = insert(BriefClaim).values(story_id=story_id, language=language,
                                          claimed_until=until)
    upsert = statement.on_conflict_do_update(
        index_elements=["story_id", "language"], set_={"claimed_until": until},
        where=col(BriefClaim.claimed_until) <= now,
    ).returning(col(BriefClaim.story_id))
    if session.execute(upsert).first() is None:
        return False
    if get(session=session, story_id=story_id, language=language) is not None:
        release(session=session, story_id=story_id, language=language)
        return False  # written, and its claim dropped, since this round looked
    return True


def release(*, session: Session, story_id: int, language: str) -> None:
    """Drop the claim: the brief is written, or its writer gave up and another may try."""
    session.execute(delete(BriefClaim).where(col(BriefClaim.story_id) == story_id,
                                             col(BriefClaim.language) == language))


def save(*, session: Session, story_id: int, language: str, written: Written) -> bool:
    """Store a brief and drop its claim; False if another worker stored one first (theirs is
    kept)."""
    release(session=session, story_id=story_id, language=language)
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
