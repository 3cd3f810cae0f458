"""Which followed topic a reader means: written any way that matches alike, or its number in
/topics. The query language decides what is alike (news.topics), storage keeps the rows."""

from __future__ import annotations

from sqlmodel import Session

from news.topics import same_topic
from news.types import whole_number
from storage import subscriptions
from storage.models import Subscription


def same(*, session: Session, chat_id: int, query: str, thread_id: int = 0
         ) -> Subscription | None:
    """The topic followed here that matches alike (news.topics.same_topic): SoftBank and
    softbank are one topic."""
    key = same_topic(query)
    topics = subscriptions.for_chat(session=session, chat_id=chat_id, thread_id=thread_id)
    return next((sub for sub in topics if same_topic(sub.query) == key), None)


def find(*, session: Session, chat_id: int, query: str, thread_id: int = 0) -> Subscription | None:
    """A topic given as written (any case or spacing) or as its number in /topics."""
    target = same(session=session, chat_id=chat_id, query=query, thread_id=thread_id)
    if target is None:
        topics = subscriptions.for_chat(session=session, chat_id=chat_id, thread_id=thread_id)
        number = whole_number(query, high=len(topics))
        if number is not None:
            target = topics[number - 1]
    return target


def remove(*, session: Session, chat_id: int, query: str, thread_id: int = 0) -> str | None:
    """Stop following a topic (as written or by number); returns the removed query."""
    target = find(session=session, chat_id=chat_id, query=query, thread_id=thread_id)
    if target is None:
        return None
    subscriptions.delete(session=session, subscription=target)
    return target.query
