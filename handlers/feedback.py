"""👍 and 👎 under alerts, the choices 👎 offers, and lifting a mute from /topics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlmodel import Session
from telegram import InlineKeyboardButton, Update

from handlers.common import (
    Context,
    answer_button,
    chat_language,
    edit_message,
    keyboard_without,
    services,
    text,
)
from jobs.deliver import alert_keyboard, markup
from jobs.recording import until_recorded
from news import choices
from news.feedback import MAX_SOURCES, less_about
from news.semantic import topic_label
from news.text import clip
from storage import briefs, feedback, items
from storage.db import database_now, db
from storage.models import Delivery

RECENT = timedelta(days=7)  # the votes /topics counts, as it counts matches
RECORD_WAIT = 10.0  # seconds a press, or /why as a reply, waits for its alert's send to be
# recorded (PTB's timeouts end a send sooner; Telegram wants a press answered within 15)
RECORD_POLL = 0.5  # seconds between looks at a send another replica records


async def alert_recorded(context: Context, delivery_id: int, chat_id: int) -> None:
    """A press can come as soon as the alert shows, before the send's answer is recorded:
    wait (a while at most) for the record, so the press never finds its alert unknown."""
    engine = services(context).engine

    async def look() -> tuple[None, list[int]]:
        return None, await db(engine, feedback.being_sent, chat_id=chat_id,
                              delivery_ids=[delivery_id])

    await until_recorded(context.bot_data, look, wait=RECORD_WAIT, poll=RECORD_POLL)


async def press_up(update: Update, context: Context, delivery_id: int) -> None:
    await _vote(update, context, delivery_id, "up")


async def press_down(update: Update, context: Context, delivery_id: int) -> None:
    await _vote(update, context, delivery_id, "down")


async def _vote(update: Update, context: Context, delivery_id: int, value: str) -> None:
    """Anyone's vote, once per person (pressed again, withdrawn); 👎 also offers choices."""
    language = await chat_language(update, context)
    chat, user = update.effective_chat, update.effective_user
    assert chat is not None
    if user is None:
        await answer_button(update, context, language, "button.stale")
        return
    await alert_recorded(context, delivery_id, chat.id)
    outcome = await db(services(context).engine, _record_vote, delivery_id=delivery_id,
                       chat_id=chat.id, user_id=user.id, value=value, language=language)
    if outcome is None:
        await answer_button(update, context, language, "button.stale")
        return
    key = "feedback.vote_removed" if outcome == "removed" else f"feedback.{value}_done"
    await answer_button(update, context, language, key)
    await refresh(update, context, delivery_id, language)


def _record_vote(*, session: Session, delivery_id: int, chat_id: int, user_id: int, value: str,
                 language: str) -> str | None:
    """The vote's outcome, or None where the alert is not this chat's (stale or forged)."""
    delivery = feedback.delivery_in(session=session, delivery_id=delivery_id, chat_id=chat_id)
    if delivery is None:
        return None
    outcome = feedback.vote(session=session, delivery=delivery, user_id=user_id, value=value)
    if value == "down" and outcome != "removed":
        _offer(session, delivery, language)
    return outcome


def _offer(session: Session, delivery: Delivery, language: str) -> None:
    """Store the 👎 choices: terms of the story its topics do not ask for, its sources."""
    stored = briefs.get(session=session, story_id=delivery.story_id, language=language)
    players = [player.name_in_source.strip() or player.name.strip()
               for player in (stored[0].key_players if stored else [])]
    headlines = [item.title for item in items.of_story(session=session,
                                                       story_id=delivery.story_id)]
    terms = less_about(json.loads(delivery.topics), players, headlines)
    feedback.offer(session=session, delivery=delivery, terms=terms, max_sources=MAX_SOURCES)


async def refresh(update: Update, context: Context, delivery_id: int, language: str) -> None:
    """Redraw the alert's keyboard: counts and choices as they now stand."""
    message = update.effective_message
    if message is None:
        return
    t = partial(services(context).catalog.text, language)
    rows = await db(services(context).engine, alert_keyboard, delivery_id=delivery_id, t=t)
    await edit_message(message, markup=markup(rows))


async def press_choice(update: Update, context: Context, choice_id: int) -> None:
    """Apply a 👎 choice to the alert's topic, or undo it when pressed again; an alert that
    came for several topics first asks which (a button per topic, in place of the choice)."""
    await _choose(update, context, choice_id, None)


async def press_choice_for(update: Update, context: Context, ids: tuple[int, int]) -> None:
    """The topic picked for a choice (press_choice's question)."""
    await _choose(update, context, *ids)


async def _choose(update: Update, context: Context, choice_id: int,
                  subscription_id: int | None) -> None:
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    applied = await db(services(context).engine, _apply_choice, choice_id=choice_id,
                       chat_id=chat.id, subscription_id=subscription_id)
    if applied is None:
        await answer_button(update, context, language, "button.stale")
        return
    if isinstance(applied, Pick):
        await answer_button(update, context, language, "feedback.pick_topic")
        await _ask_topic(update, context, language, applied)
        return
    key, queries, kind, said, delivery_id = applied
    await answer_button(update, context, language, key, term=said, source=said,
                        queries=", ".join(clip(topic_label(query), 60) for query in queries))
    if kind != "irrelevant" or key != "feedback.unchanged":
        await refresh(update, context, delivery_id, language)


@dataclass(frozen=True)
class Pick:
    """A choice waiting for its topic: the alert's topics as (id, query)."""

    choice_id: int
    delivery_id: int
    topics: list[tuple[int, str]]


async def _ask_topic(update: Update, context: Context, language: str, pick: Pick) -> None:
    """The alert's keyboard with the choice's button replaced by one button per topic."""
    message = update.effective_message
    if message is None:
        return
    t = partial(services(context).catalog.text, language)
    rows = await db(services(context).engine, alert_keyboard, delivery_id=pick.delivery_id, t=t)
    for_topic = t("feedback.for_topic")
    asked = [[(for_topic.replace("{query}", clip(topic_label(query), 40)),
               f"fbt:{pick.choice_id}:{sub_id}")]
             for sub_id, query in pick.topics]
    choice = f"fb:{pick.choice_id}"
    keyboard = [new for row in rows
                for new in (asked if any(data == choice for _, data in row) else [row])]
    await edit_message(message, markup=markup(keyboard))


Applied = tuple[str, list[str], str, str, int]  # answer key, queries, kind, text, alert id


def _apply_choice(*, session: Session, choice_id: int, chat_id: int,
                  subscription_id: int | None) -> Applied | Pick | None:
    """Apply or undo the choice: (answer key, queries changed, kind, its text, alert id); the
    topics to pick from when the alert came for several and none is picked yet; None where
    the choice (or the topic picked) is not this chat's (stale or forged)."""
    choice = feedback.get_choice(session=session, choice_id=choice_id)
    delivery = (feedback.delivery_in(session=session, delivery_id=choice.delivery_id,
                                     chat_id=chat_id) if choice is not None else None)
    if choice is None or delivery is None:
        return None
    if choice.applied and subscription_id is not None:
        return None  # a topic button left over from before the choice was applied
    if choice.applied:
        choices.undo(session=session, choice=choice)
        return "feedback.undone", [], choice.kind, choice.text, delivery.id or 0
    topics = feedback.topic_subscriptions(session=session, delivery=delivery)
    if subscription_id is not None:
        topics = [row for row in topics if row.id == subscription_id]
        if not topics:
            return None
    elif len(topics) > 1 and choice.kind != "irrelevant":
        return Pick(choice_id, delivery.id or 0, [(row.id or 0, row.query) for row in topics])
    queries = choices.apply(session=session, choice=choice, delivery=delivery, topics=topics)
    key = f"feedback.{choice.kind}_done" if choice.applied else "feedback.unchanged"
    return key, queries, choice.kind, choice.text, delivery.id or 0


async def press_unmute(update: Update, context: Context, mute_id: int) -> None:
    """/topics' 🔊 button lifts a mute; the button goes, the other buttons stay."""
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    lifted = await db(services(context).engine, feedback.unmute, mute_id=mute_id,
                      chat_id=chat.id)
    if lifted is None:
        await answer_button(update, context, language, "button.stale")
        return
    source, query = lifted
    await answer_button(update, context, language, "feedback.unmuted", source=source,
                        query=topic_label(query))
    message = update.effective_message
    if message is None or message.reply_markup is None:
        return
    await edit_message(message, markup=keyboard_without(message, f"unmute:{mute_id}"))


def topic_feedback(
    *, session: Session, context: Context, language: str, subscription_ids: list[int]
) -> tuple[dict[int, str], list[list[InlineKeyboardButton]]]:
    """For /topics: each topic's recent votes and mutes (text after its line), and a 🔊
    button per mute to lift it."""
    votes = feedback.topic_votes(session=session, subscription_ids=subscription_ids,
                                 since=database_now(session) - RECENT)
    mutes = feedback.mutes_for(session=session, subscription_ids=subscription_ids)
    extra: dict[int, str] = {}
    buttons: list[list[InlineKeyboardButton]] = []
    label = services(context).catalog.text(language, "topics.unmute_button")
    for number, sub_id in enumerate(subscription_ids, start=1):
        up, down = votes.get(sub_id, (0, 0))
        said = text(context, language, "topics.votes", up=up, down=down) if up or down else ""
        muted = [mute for mute in mutes if mute.subscription_id == sub_id]
        if muted:
            said += "\n" + text(context, language, "topics.muted",
                                sources=", ".join(mute.source for mute in muted))
        extra[sub_id] = said
        buttons += [[InlineKeyboardButton(
            label.replace("{source}", mute.source[:32]).replace("{number}", str(number)),
            callback_data=f"unmute:{mute.id}")] for mute in muted]
    return extra, buttons
