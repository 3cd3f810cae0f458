"""Following a topic, by its words or by its meaning: one cap on a chat's topics, and one
answer for a topic the chat already follows (a `!` on it pins it)."""

from __future__ import annotations

from sqlmodel import Session
from telegram import Update

from handlers.common import Context, reply, services, thread_of
from news import following
from news.semantic import topic_label
from storage import subscriptions
from storage.db import db


async def follow(update: Update, context: Context, language: str, query: str,
                 pinned: bool) -> tuple[int, str] | None:
    """The new subscription's id and its query; None once the reader has been told why not
    (the chat is at its cap, or follows the topic already)."""
    chat = update.effective_chat
    assert chat is not None
    svc = services(context)
    outcome, subscription_id, query = await db(
        svc.engine, _follow, chat_id=chat.id, query=query, thread_id=thread_of(update),
        cap=svc.max_topics_per_chat, pinned=pinned)
    if outcome == "full":
        await reply(update, context, language, "subscribe.full", max=svc.max_topics_per_chat)
        return None
    if subscription_id is None:
        await reply(update, context, language, "topics.pinned_done" if pinned
                    else "subscribe.exists", query=topic_label(query))
        return None
    return subscription_id, query


def _follow(
    *, session: Session, chat_id: int, query: str, thread_id: int, cap: int, pinned: bool
) -> tuple[str, int | None, str]:
    """("done", id, query), ("exists", None, query) or ("full", None, query): only new topics
    count against the cap; a query matching alike (SoftBank, softbank) is the topic the chat
    already follows, and `!` on it pins it."""
    existing = following.same(session=session, chat_id=chat_id, query=query,
                              thread_id=thread_id)
    if existing is None and cap and subscriptions.count(session=session, chat_id=chat_id) >= cap:
        return "full", None, query
    row = None if existing else subscriptions.add(
        session=session, chat_id=chat_id, query=query, thread_id=thread_id, pinned=pinned)
    if row is not None:
        return "done", row.id, query
    if pinned and existing is not None:
        subscriptions.set_pinned(session=session, subscription=existing, pinned=True)
    return "exists", None, existing.query if existing else query
