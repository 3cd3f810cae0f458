"""Chats: created on first contact, language set once and then only by /lang."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from storage import subscriptions
from storage.db import database_now
from storage.models import Chat, Delivery, Subscription


def ensure_chat(
    *, session: Session, chat_id: int, chat_type: str, title: str | None, language: str
) -> Chat:
    """The chat's row, created with `language` if new; an existing chat keeps its language.

    Two updates of a new chat can be handled at once (a refused command's notice does not wait
    in its chat's lane; another replica may take the next update), so the insert is one that
    does nothing when the other got there first, and both then read the one row."""
    chat = session.get(Chat, chat_id)
    if chat is None:
        new = Chat(id=chat_id, type=chat_type, title=title, language=language,
                   created_at=database_now(session))  # a digest is due by it (jobs.digest)
        values = new.model_dump()
        dialect = session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        session.execute(insert(Chat).values(**values).on_conflict_do_nothing(
            index_elements=["id"]))
        chat = session.get(Chat, chat_id)
        assert chat is not None, "inserted, or inserted by the other"
    elif not chat.active or chat.title != title:
        chat.active = True
        chat.title = title
    return chat


def set_language(*, session: Session, chat_id: int, language: str) -> None:
    chat = session.get(Chat, chat_id)
    if chat is not None:
        chat.language = language


def deactivate(*, session: Session, chat_id: int) -> None:
    """A chat that blocked or removed the bot receives nothing until it talks to us again."""
    chat = session.get(Chat, chat_id)
    if chat is not None:
        chat.active = False


def count_active(*, session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Chat).where(Chat.active)).one())


def inactive_ids(*, session: Session) -> set[int]:
    return set(session.exec(select(Chat.id).where(col(Chat.active).is_(False))).all())


def get(*, session: Session, chat_id: int) -> Chat | None:
    return session.get(Chat, chat_id)


_SETTINGS = {"mode", "digest_time", "timezone", "quiet_start", "quiet_end"}


def update_settings(*, session: Session, chat_id: int, **fields: str | None) -> str | None:
    """Change /settings fields; anything else is refused loudly (a programming error). The
    chat's mode before the change; None when there is no such chat. What the chat holds is
    rescheduled by the caller, in the same transaction (news.holding.update_settings)."""
    unknown = set(fields) - _SETTINGS
    if unknown:
        raise ValueError(f"not a setting: {sorted(unknown)}")
    chat = session.get(Chat, chat_id)
    if chat is None:
        return None
    before = chat.mode
    for name, value in fields.items():
        setattr(chat, name, value)
    return before


def migrate(*, session: Session, old_id: int, new_id: int) -> bool:
    """A group became a supergroup: its subscriptions and settings move to the new id.
    False when there was nothing to move (Telegram announces a migration twice)."""
    old = session.get(Chat, old_id)
    if old is None or old_id == new_id:
        return False
    if session.get(Chat, new_id) is None:  # the foreign keys cascade the new id
        session.execute(update(Chat).where(col(Chat.id) == old_id).values(id=new_id))
        subscriptions.moved(session=session, old_chat_id=old_id, new_chat_id=new_id)
        return True
    taken_queries = select(Subscription.query).where(Subscription.chat_id == new_id)
    session.execute(
        update(Subscription)
        .where(col(Subscription.chat_id) == old_id, col(Subscription.query).not_in(taken_queries))
        .values(chat_id=new_id)
    )
    subscriptions.moved(session=session, old_chat_id=old_id, new_chat_id=new_id)
    taken_stories = select(Delivery.story_id).where(Delivery.chat_id == new_id)
    session.execute(
        update(Delivery)
        .where(col(Delivery.chat_id) == old_id, col(Delivery.story_id).not_in(taken_stories))
        .values(chat_id=new_id)
    )
    session.delete(old)
    return True


def claim_digest(
    *, session: Session, chat_id: int, seen: datetime | None, at: datetime
) -> bool:
    """Take the chat's scheduled digest: `last_digest_at` moves from `seen` (what this replica
    read when it found the digest due) to `at` for exactly one replica; False for the others."""
    last = col(Chat.last_digest_at)
    result = session.execute(
        update(Chat)
        .where(col(Chat.id) == chat_id, last.is_(None) if seen is None else last == seen)
        .values(last_digest_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def release_digest(
    *, session: Session, chat_id: int, at: datetime, previous: datetime | None
) -> None:
    """The claimed digest could not be sent: due again, for whichever replica comes next."""
    session.execute(
        update(Chat)
        .where(col(Chat.id) == chat_id, col(Chat.last_digest_at) == at)
        .values(last_digest_at=previous)
    )


def mark_digest(*, session: Session, chat_id: int, at: datetime) -> None:
    chat = session.get(Chat, chat_id)
    if chat is not None:
        chat.last_digest_at = at
