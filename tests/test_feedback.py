"""Feedback: the terms 👎 offers, query edits and their undo, votes, choices and mutes."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from handlers.common import answer_button
from locales import catalog
from news import choices
from news.feedback import Choice, keyboard, less_about, with_exclusion, without_exclusion
from news.ingest import ingest
from news.newsroom import Newsroom
from news.topics import MAX_QUERY_CHARS
from services import KEY
from storage import feedback, subscriptions
from storage.db import session_scope
from storage.models import Delivery, Mute, Subscription
from storage.sources import DueSource
from tests.harness import draft, make_chat, make_source


@pytest.mark.parametrize(
    ("queries", "players", "headlines", "expected"),
    [
        (["SoftBank"], ["SoftBank", "Hauts-de-France", "Xavier Bertrand"], [],
         ["Hauts-de-France", "Xavier Bertrand"]),
        (["softbank -Bertrand"], ["SoftBank", "Xavier Bertrand", "Arm"], [], ["Arm"]),
        (["SoftBank OR Arm"], ["Arm Holdings"], [], []),  # contains a topic term
        # offline, distinctive words only: what several headlines share, or names
        (["SoftBank"], [], ["SoftBank buys robots, robots everywhere", "Robots: SoftBank bets"],
         ["robots"]),
        (["SoftBank"], ['Say "hi"'], ["Weather in Paris"], ["Paris"]),  # unusable player
        (["AI"], [], ["Northern towns build AI hubs as Leeds bids"], ["Leeds"]),
        (["SoftBank"], [], ["Northern Towns Build New Hubs For SoftBank"], []),  # title case
        (["AI"], [], ["New Hubs Build Up In Hauts-de-France"], ["Hauts-de-France"]),
        (["软银"], [], ["软银承诺巨额投资"], []),  # no words to cut a CJK headline into
    ],
)
def test_less_about_offers_terms_the_topic_does_not_ask_for(
    queries: list[str], players: list[str], headlines: list[str], expected: list[str]
) -> None:
    assert less_about(queries, players, headlines) == expected


@pytest.mark.parametrize(
    ("query", "term", "added"),
    [
        ("SoftBank", "Hauts-de-France", "SoftBank -Hauts-de-France"),
        ("SoftBank OR 软银", "Xavier Bertrand", '(SoftBank OR 软银) -"Xavier Bertrand"'),
        ("SoftBank -Arm", "Arm", None),
        ("SoftBank " + "x" * (MAX_QUERY_CHARS - 12), "Arm", None),
    ],
)
def test_exclusion_is_added_through_the_query_language_and_taken_back(
    query: str, term: str, added: str | None
) -> None:
    assert with_exclusion(query, term) == added
    if added is not None:
        assert without_exclusion(added, term) == query
    assert without_exclusion("SoftBank", term) is None


def test_keyboard_shows_counts_choices_and_undos() -> None:
    def t(key: str) -> str:
        return {"feedback.why_button": "Why?", "feedback.less": "Less {term}",
                "feedback.undo_mute": "Undo mute {source}"}.get(key, key)

    rows = keyboard(7, 2, 0, [Choice(3, "less", "Hauts-de-France", False),
                              Choice(4, "mute", "Test News", True)], t)
    assert rows == [[("👍 2", "up:7"), ("👎", "down:7"), ("Why?", "why:7")],
                    [("Less Hauts-de-France", "fb:3")], [("Undo mute Test News", "fb:4")]]
    assert all(len(data.encode()) <= 64 for row in rows for _, data in row)


def alert(engine: Engine, query: str = "SoftBank") -> tuple[Delivery, int]:
    """A chat following `query`, and its delivery of one SoftBank story from source A."""
    make_chat(engine, 1)
    source = make_source(engine)
    with session_scope(engine) as session:
        subscriptions.add(session=session, chat_id=1, query=query)
    ingest(Newsroom(engine), source, [draft("g1", "SoftBank pledges billions for Hauts-de-France")])
    with session_scope(engine) as session:
        delivery = session.exec(select(Delivery)).one()
        delivery.message_id, delivery.state = 50, "sent"
        session.add(delivery)
        session.flush()
        session.expunge(delivery)
    return delivery, source.id


def test_each_person_counts_once_and_pressing_again_withdraws(engine: Engine) -> None:
    delivery, _ = alert(engine)
    with session_scope(engine) as session:
        assert feedback.vote(session=session, delivery=delivery, user_id=5, value="up") == "added"
        assert feedback.vote(session=session, delivery=delivery, user_id=6, value="up") == "added"
        assert feedback.vote(session=session, delivery=delivery, user_id=5, value="down") \
            == "changed"
    with session_scope(engine) as session:
        assert feedback.tally(session=session, delivery_id=delivery.id or 0) == (1, 1)
        assert feedback.vote(session=session, delivery=delivery, user_id=5, value="down") \
            == "removed"
    with session_scope(engine) as session:
        assert feedback.tally(session=session, delivery_id=delivery.id or 0) == (1, 0)
        sub = session.exec(select(Subscription)).one()
        since = delivery.created_at.replace(year=2000)
        assert feedback.topic_votes(session=session, subscription_ids=[sub.id or 0],
                                    since=since) == {sub.id: (1, 0)}


def test_less_about_changes_the_query_and_undo_restores_it(engine: Engine) -> None:
    delivery, _ = alert(engine)
    with session_scope(engine) as session:
        offered = feedback.offer(session=session, delivery=delivery, terms=["Hauts-de-France"],
                                 max_sources=2)
        assert [(c.kind, c.text) for c in offered] == [
            ("less", "Hauts-de-France"), ("mute", "A"), ("irrelevant", "")]
        less = offered[0]
        assert choices.apply(session=session, choice=less, delivery=delivery) == [
            "SoftBank -Hauts-de-France"]
    with session_scope(engine) as session:
        assert session.exec(select(Subscription.query)).one() == "SoftBank -Hauts-de-France"
        choice = feedback.get_choice(session=session, choice_id=less.id or 0)
        assert choice is not None and choice.applied
        choices.undo(session=session, choice=choice)
    with session_scope(engine) as session:
        assert session.exec(select(Subscription.query)).one() == "SoftBank"


def test_a_mute_stops_new_stories_from_that_source_for_that_topic(engine: Engine) -> None:
    delivery, source_id = alert(engine)
    other = make_source(engine, "http://feeds.test/b.xml", "B")
    with session_scope(engine) as session:
        mute = feedback.offer(session=session, delivery=delivery, terms=[], max_sources=2)[0]
        assert mute.kind == "mute" and mute.source_id == source_id
        choices.apply(session=session, choice=mute, delivery=delivery)
        mute_id = mute.id or 0
    ingest(Newsroom(engine), make_source_due(engine, source_id),
           [draft("g2", "SoftBank opens a lab in Lille")])
    ingest(Newsroom(engine), other, [draft("g3", "SoftBank buys a robot maker")])
    with session_scope(engine) as session:
        stories = [row.story_id for row in session.exec(select(Delivery)).all()]
        assert len(stories) == 2, "the muted source's story was not enqueued, B's was"
        listed = feedback.mutes_for(session=session, subscription_ids=[1])
        assert [m.source for m in listed] == ["A"]
        choice = feedback.get_choice(session=session, choice_id=mute_id)
        assert choice is not None
        choices.undo(session=session, choice=choice)
    with session_scope(engine) as session:
        assert session.exec(select(Mute)).all() == []
    ingest(Newsroom(engine), make_source_due(engine, source_id),
           [draft("g4", "SoftBank names a new chief")])
    with session_scope(engine) as session:
        assert len(session.exec(select(Delivery)).all()) == 3, "unmuted: delivered again"


def make_source_due(engine: Engine, source_id: int) -> DueSource:
    return DueSource(source_id, "http://feeds.test/a.xml", "A", None, None)


def test_a_choice_is_recorded_once_and_topics_follow_the_changed_query(engine: Engine) -> None:
    delivery, _ = alert(engine)
    with session_scope(engine) as session:
        offered = feedback.offer(session=session, delivery=delivery, terms=["Lille"],
                                 max_sources=2)
        again = feedback.offer(session=session, delivery=delivery, terms=["Other"],
                               max_sources=2)
        assert [c.id for c in again] == [c.id for c in offered], "offered once per alert"
        choices.apply(session=session, choice=offered[0], delivery=delivery)
    with session_scope(engine) as session:
        row = session.get(Delivery, delivery.id)
        assert row is not None and json.loads(row.topics) == ["SoftBank"]
        found = feedback.topic_subscriptions(session=session, delivery=row)
        assert [sub.query for sub in found] == ["SoftBank -Lille"], "found via the choice"


def test_a_long_toast_is_cut_at_a_word_within_telegrams_200_characters() -> None:
    """Issue 25 item 5: the toast naming the topics changed was cut mid-word at 190."""
    answered: list[str] = []

    class Query:
        async def answer(self, text: str) -> None:
            answered.append(text)

    update = SimpleNamespace(callback_query=Query())
    context = SimpleNamespace(bot_data={KEY: SimpleNamespace(catalog=catalog)})
    queries = ", ".join(f"SoftBank{n} -Hauts-de-France" for n in range(12))
    asyncio.run(answer_button(update, context, "en",  # type: ignore[arg-type]
                              "feedback.less_done", term="Hauts-de-France", queries=queries))
    full = f"➖ «Hauts-de-France» is now left out. Topic: {queries}"
    [toast] = answered
    assert len(toast) <= 200 and toast.endswith("…")
    kept = toast.removesuffix("…")
    assert full.startswith(kept) and full[len(kept)] in " ,", "cut between words"
