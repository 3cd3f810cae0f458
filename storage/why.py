"""What /why needs to know: a story by its link, its reports, the chat's topics and mutes."""

from __future__ import annotations

from sqlmodel import Session, col, select

from news.types import StoryFacts, TopicFacts, clean_link
from storage import feedback, items, subscriptions
from storage.models import Delivery, Item, Story


def story_by_link(*, session: Session, link: str) -> int | None:
    """The story an article link belongs to, as given or without its tracking parameters."""
    links = {link, clean_link(link)}
    statement = (select(Item.story_id).where(col(Item.link).in_(links))
                 .order_by(col(Item.id)).limit(1))
    return session.exec(statement).first()


def story_facts(*, session: Session, story_id: int) -> StoryFacts | None:
    story = session.get(Story, story_id)
    reports = items.of_story(session=session, story_id=story_id)
    if story is None or not reports:
        return None
    first = reports[0]
    return StoryFacts(story.created_at, first.title, first.summary,
                      tuple(item.source_id for item in reports),
                      tuple(dict.fromkeys(item.source_name for item in reports)))


def topic_facts(*, session: Session, chat_id: int, thread_id: int) -> list[TopicFacts]:
    rows = subscriptions.for_chat(session=session, chat_id=chat_id, thread_id=thread_id)
    muted = feedback.muted_sources(session=session, subscription_ids=[r.id or 0 for r in rows])
    return [TopicFacts(row.query, row.created_at, row.updated_at,
                       frozenset(muted.get(row.id or 0, set()))) for row in rows]


def delivery_of(*, session: Session, chat_id: int, thread_id: int,
                story_id: int) -> Delivery | None:
    statement = select(Delivery).where(Delivery.chat_id == chat_id,
                                       Delivery.thread_id == thread_id,
                                       Delivery.story_id == story_id)
    return session.exec(statement).first()
