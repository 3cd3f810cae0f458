"""A chat's settings changed: the alerts it holds follow them, in the same transaction, so
quiet hours ended or shortened release their alerts at once (news.schedule.held_again)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from news.schedule import held_again
from storage import chats, deliveries
from storage.db import database_now


def update_settings(*, session: Session, chat_id: int, **fields: str | None) -> None:
    """Change /settings fields (storage.chats.update_settings) and reschedule what the chat
    holds by the new ones."""
    before = chats.update_settings(session=session, chat_id=chat_id, **fields)
    if before is None:
        return
    # Rows held for the digest wait on the mode alone: released on every change, they could
    # miss a digest being put together while the deliver job holds them again.
    held = deliveries.HELD if fields.get("mode", before) != before else ("quiet",)
    reschedule_held(session=session, chat_id=chat_id, now=database_now(session), states=held)


def reschedule_held(
    *, session: Session, chat_id: int, now: datetime,
    states: tuple[str, ...] = deliveries.HELD,
) -> None:
    """What the chat holds (in `states`) is due by its settings as they are now."""
    chat = chats.get(session=session, chat_id=chat_id)
    if chat is None:
        return
    prefs = deliveries.preferences(chat)
    deliveries.reschedule_held(session=session, chat_id=chat_id,
                               moves={state: held_again(prefs, state, now) for state in states})
