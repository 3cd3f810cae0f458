"""/why and the "Why?" button: why an alert came, or why a story (by its link) did not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlmodel import Session
from telegram import Message, Update

from handlers.common import (
    Context,
    answer_button,
    answer_privately,
    argument_text,
    chat_language,
    reply,
    services,
    text,
    thread_of,
)
from handlers.feedback import RECORD_POLL, RECORD_WAIT, alert_recorded
from handlers.semantic import shown
from jobs.recording import until_recorded
from locales import Safe
from news.render import FLAGS
from news.schedule import Preferences, zone
from news.semantic import readable, topic_label
from news.semantic_round import similarities
from news.why import Explanation, explain, hits, level_why
from storage import briefs, chats, deliveries, feedback, items, why
from storage.db import database_now, db
from storage.models import Delivery


def _level(context: Context, language: str, level: int) -> str:
    return f"{FLAGS[level]} {text(context, language, f'level.{level}')}"


def delivered(*, session: Session, context: Context, language: str, delivery: Delivery
              ) -> str:
    """Which topic matched and where, which sources reported it, why it got its level."""
    facts = why.story_facts(session=session, story_id=delivery.story_id)
    stored = briefs.get(session=session, story_id=delivery.story_id, language=language)
    reports = items.of_story(session=session, story_id=delivery.story_id)
    topics: list[str] = json.loads(delivery.topics)
    near = similarities(session=session, story_id=delivery.story_id, queries=topics,
                        model=services(context).embedder.model)
    lines = [text(context, language, "why.header")]
    for query in topics:
        semantic = readable(query)
        if semantic is not None:  # matched by meaning: how near, against which threshold
            score = near.get(query)
            lines.append(text(context, language, "why.semantic", query=topic_label(query),
                              similarity="—" if score is None else shown(score),
                              threshold=f"{semantic.threshold or 0:.2f}"))
            continue
        found = hits(query, facts.headline, facts.text) if facts else []
        said = ", ".join(text(context, language, f"why.in.{hit.where}", term=hit.term)
                         for hit in found)
        lines.append(text(context, language, "why.topic", query=query, hits=Safe(said or "—")))
    if facts is not None:
        lines.append(text(context, language, "why.sources", sources=", ".join(facts.sources)))
    if stored is not None and reports:
        brief, origin = stored
        first = reports[0]
        reason = level_why(brief, origin, topics, len({r.source_name for r in reports}),
                           first.published_at, first.fetched_at)
        level = _level(context, language, reason.level)
        if reason.offline:
            said = text(context, language, "why.level_rule", level=level, count=reason.sources)
            if reason.lowered:
                said += text(context, language, "why.level_lowered")
            if reason.raised:
                said += text(context, language, "why.level_raised")
        else:
            said = text(context, language, "why.level_reason", level=level,
                        reason=reason.reason or "—")
        lines.append(said)
    return "\n".join(lines)


def _when(moment: datetime | None, prefs: Preferences) -> str:
    if moment is None:
        return "—"
    local = moment.astimezone(zone(prefs.timezone))
    return f"{local:%Y-%m-%d %H:%M} ({prefs.timezone})"


def not_delivered(*, session: Session, context: Context, language: str, chat_id: int,
                  thread_id: int, link: str) -> str:
    """Why a story the reader names by its link did (not) reach this chat."""
    story_id = why.story_by_link(session=session, link=link)
    facts = why.story_facts(session=session, story_id=story_id) if story_id else None
    delivery = (why.delivery_of(session=session, chat_id=chat_id, thread_id=thread_id,
                                story_id=story_id) if story_id else None)
    topics = why.topic_facts(session=session, chat_id=chat_id, thread_id=thread_id)
    chat = chats.get(session=session, chat_id=chat_id)
    prefs = deliveries.preferences(chat) if chat is not None else Preferences()
    now = database_now(session)  # the digest job's clock, whichever replica answers
    keep = services(context).delivery_retention
    if facts is not None and delivery is None and keep is not None \
            and facts.created_at < now - keep:  # whether it came was deleted with its record
        return text(context, language, "why.forgotten_link", days=keep.days)
    near = similarities(
        session=session, story_id=story_id, queries=[topic.query for topic in topics],
        model=services(context).embedder.model) if story_id else {}
    found: Explanation = explain(facts, topics, delivery.state if delivery else None,
                                 delivery.next_attempt_at if delivery else None, prefs, now,
                                 near)
    if found.kind == "sent" and delivery is not None:
        return delivered(session=session, context=context, language=language,
                         delivery=delivery)
    if found.kind == "held":
        return text(context, language, f"why.held.{found.state}", when=_when(found.until, prefs))
    if found.kind != "topics":
        return text(context, language, f"why.{found.kind}")
    assert facts is not None
    lines = [text(context, language, "why.not_header", title=facts.headline)]
    lines += [text(context, language, f"why.not.{verdict.reason}", query=topic_label(verdict.query),
                   term=verdict.term) for verdict in found.verdicts]
    return "\n".join(lines)


async def why_command(update: Update, context: Context) -> None:
    """`/why` as a reply to an alert, or `/why URL` for a story this chat did not get."""
    language = await chat_language(update, context)
    chat, message = update.effective_chat, update.effective_message
    assert chat is not None and message is not None
    link = argument_text(update)
    replied = message.reply_to_message
    if replied is not None and not link:
        delivery = await replied_alert(context, chat.id, replied)
        if delivery is not None:
            await _answer(update, await db(services(context).engine, delivered,
                                           context=context, language=language,
                                           delivery=delivery))
            return
        keep = services(context).delivery_retention
        if keep is not None and forgotten(replied, keep, datetime.now(UTC)):
            await reply(update, context, language, "why.forgotten", days=keep.days)
            return
    if not link.startswith(("http://", "https://")):
        await reply(update, context, language, "why.usage")
        return
    await _answer(update, await db(services(context).engine, not_delivered, context=context,
                                   language=language, chat_id=chat.id,
                                   thread_id=thread_of(update), link=link))


async def replied_alert(context: Context, chat_id: int, replied: Message) -> Delivery | None:
    """The alert /why replies to. Telegram shows an alert before the bot has its answer to the
    send, and sends are recorded together (jobs.pacing's record_gather): a reply that quick
    finds no record yet, so it waits for one (RECORD_WAIT at most), as a press does: for the
    alert the message's "Why?" button names or, where the reply carries no button, for this
    chat's alerts being sent, if the bot wrote the message."""
    engine = services(context).engine
    named = _named_alerts(replied)
    if named is None and not _maybe_the_bots(context, replied):
        return await db(engine, feedback.delivery_of_message, chat_id=chat_id,
                        message_id=replied.message_id)
    look = partial(db, engine, feedback.replied_alert, chat_id=chat_id,
                   message_id=replied.message_id, delivery_ids=named)
    return await until_recorded(context.bot_data, look, wait=RECORD_WAIT, poll=RECORD_POLL)


def forgotten(message: Message, keep: timedelta, now: datetime) -> bool:
    """Whether a message /why replies to, whose record is not found, is an alert of ours
    (its "Why?" button says so) sent before the retention period: its record was deleted.
    A younger one's record is missing for another reason, and /why says how to use it."""
    return _named_alerts(message) is not None and message.date < now - keep


def _named_alerts(message: Message) -> list[int] | None:
    """The alert a message's "Why?" button (`why:12`, on every alert) names; None where the
    message has no such button."""
    rows = message.reply_markup.inline_keyboard if message.reply_markup else ()
    found = [int(data[4:]) for row in rows for button in row
             if isinstance(data := button.callback_data, str) and data.startswith("why:")
             and data[4:].isdigit()]
    return found or None


def _maybe_the_bots(context: Context, message: Message) -> bool:
    """Whether the bot may have written the message (in a channel no author is given)."""
    return message.from_user is None or message.from_user.id == context.bot.id


async def _answer(update: Update, said: str, *, quote: bool = False) -> None:
    """The explanation, already HTML from the catalogue."""
    message = update.effective_message
    assert message is not None
    await message.reply_text(said, do_quote=quote)


async def press_why(update: Update, context: Context, delivery_id: int) -> None:
    """The "Why?" button: in a private chat a reply to the alert; in channels and groups,
    where anyone may press, a box only the presser sees (never a post in the chat)."""
    language = await chat_language(update, context)
    chat, message = update.effective_chat, update.effective_message
    assert chat is not None
    await alert_recorded(context, delivery_id, chat.id)
    delivery = await db(services(context).engine, feedback.delivery_in,
                        delivery_id=delivery_id, chat_id=chat.id)
    if delivery is None or message is None:
        await answer_button(update, context, language, "button.stale")
        return
    said = await db(services(context).engine, delivered, context=context, language=language,
                    delivery=delivery)
    if chat.type != "private":
        await answer_privately(update, said)
        return
    await answer_button(update, context, language, "why.answered")
    await _answer(update, said, quote=True)
