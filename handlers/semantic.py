"""`/subscribe ~meaning`: a topic followed by meaning, tested on the week's stories before the
first alert, with buttons that tighten or loosen its threshold and show what that changes."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from sqlalchemy import Engine
from sqlmodel import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from handlers.common import (
    Context,
    answer_button,
    chat_language,
    edit_message,
    reply,
    services,
    text,
)
from handlers.following import follow
from locales import Safe
from news.embeddings import EmbeddingError
from news.matching import Topic, searchable
from news.render import headline_link
from news.semantic import (
    STEP,
    Semantic,
    Vector,
    chosen_threshold,
    parse_semantic,
    readable,
    topic_label,
)
from news.semantic_round import meanings
from news.text import TITLE_CHARS, clip
from news.topics import QueryError
from storage import embeddings, items, subscriptions, usage
from storage.db import database_now, db, in_thread, session_scope

PREVIEW_DAYS = 7
SHOWN = 8  # nearest stories listed


@dataclass(frozen=True)
class Scored:
    """A story of the week, its similarity to the meaning, and whether the topic's terms and
    exclusions let it through."""

    story_id: int
    similarity: float
    title: str
    link: str
    allowed: bool


def week(engine: Engine, vector: Vector, model: str, semantic: Semantic,
         hint: float = 0.5) -> list[Scored]:
    """Every story of the last 7 days with a stored vector, nearest first; the headline and
    the terms' verdict only for those near enough to matter (the shown ones, and those a
    step below the threshold)."""
    with session_scope(engine) as session:
        since = database_now(session) - timedelta(days=PREVIEW_DAYS)
    ranked = embeddings.nearest(engine, vector, since, limit=1_000_000, model=model)
    lowest = (semantic.threshold or hint) - 2 * STEP
    wanted = [story_id for n, (story_id, score) in enumerate(ranked)
              if n < SHOWN or score >= lowest]
    with session_scope(engine) as session:
        texts = embeddings.texts_of(session=session, story_ids=wanted)
        heads = {story_id: items.of_story(session=session, story_id=story_id)[:1]
                 for story_id in wanted[:SHOWN]}
    out = []
    for story_id, score in ranked:
        first = heads.get(story_id) or []
        found = texts.get(story_id)
        allowed = found is None or semantic.matches_rest(searchable(found))
        out.append(Scored(story_id, score, first[0].title if first else "",
                          first[0].link if first else "", allowed))
    return out


def shown(similarity: float) -> str:
    """Two decimals, cut rather than rounded: a story shown at the threshold is included."""
    return f"{math.floor(similarity * 100 + 1e-6) / 100:.2f}"


def included(scored: list[Scored], threshold: float) -> int:
    return sum(1 for story in scored if story.allowed and story.similarity >= threshold)


def view(context: Context, language: str, query: str, subscription_id: int,
         scored: list[Scored], *, done_key: str = "semantic.done"
         ) -> tuple[str, InlineKeyboardMarkup | None]:
    """The reply: the topic, its threshold, the nearest stories marked in or out, and the
    buttons that move the threshold one STEP, each saying how many stories it adds or drops."""
    semantic = parse_semantic(query)
    threshold = semantic.threshold or 0.5
    lines = []
    for story in scored[:SHOWN]:
        key = "semantic.line_in" if story.allowed and story.similarity >= threshold \
            else "semantic.line_out"
        lines.append(text(context, language, key, similarity=shown(story.similarity),
                          title=Safe(headline_link(clip(story.title, TITLE_CHARS), story.link))))
    count = included(scored, threshold)
    said = text(context, language, done_key, query=topic_label(query), threshold=f"{threshold:.2f}")
    if lines:
        said += "\n" + text(context, language, "semantic.nearest", lines=Safe("\n".join(lines)))
        said += "\n" + text(context, language, "semantic.count", plural=count, count=count)
    else:
        said += "\n" + text(context, language, "semantic.nothing_stored")
    buttons = []
    tighter, looser = round(threshold + STEP, 2), round(threshold - STEP, 2)
    if tighter < 1:
        dropped = count - included(scored, tighter)
        buttons.append(InlineKeyboardButton(html.unescape(
            text(context, language, "semantic.tighten", threshold=f"{tighter:.2f}",
                 count=dropped)), callback_data=f"sem:{subscription_id}:{round(tighter * 100)}"))
    if looser > 0:
        added = included(scored, looser) - count
        buttons.append(InlineKeyboardButton(html.unescape(
            text(context, language, "semantic.loosen", threshold=f"{looser:.2f}", count=added)),
            callback_data=f"sem:{subscription_id}:{round(looser * 100)}"))
    return said, InlineKeyboardMarkup([buttons]) if buttons else None


async def subscribe_semantic(update: Update, context: Context, language: str, raw: str,
                             pinned: bool) -> None:
    """Embed the meaning, score the week's stories against it, choose a threshold, follow."""
    svc = services(context)
    try:
        semantic = parse_semantic(raw)
    except QueryError as error:
        await reply(update, context, language, f"query.error.{error.code}")
        return
    if not svc.embedder.online:
        await reply(update, context, language, "semantic.off")
        return
    if await db(svc.engine, usage.over_budget, budget=svc.daily_token_budget):
        await reply(update, context, language, "semantic.budget")
        return
    try:
        vector = (await meanings(svc.engine, svc.embedder, [semantic.key]))[semantic.key]
    except EmbeddingError:
        await reply(update, context, language, "semantic.failed")
        return
    scored = await in_thread(week, svc.engine, vector, svc.embedder.model, semantic,
                             svc.semantic_threshold)
    if semantic.threshold is None:
        semantic = semantic.with_threshold(chosen_threshold(
            [story.similarity for story in scored], svc.semantic_threshold))
    query = semantic.canonical()
    followed = await follow(update, context, language, query, pinned)
    if followed is None:
        return
    subscription_id, query = followed
    said, markup = view(context, language, query, subscription_id, scored)
    if pinned:
        said += "\n" + text(context, language, "topics.pinned_done", query=topic_label(query))
    message = update.effective_message
    assert message is not None
    await message.reply_text(said, reply_markup=markup)


def semantic_counts(*, session: Session, model: str, dims: int, topics: list[Topic]
                    ) -> dict[int, int]:
    """Stories of the last 7 days each semantic topic would have alerted (/topics): at or
    above its threshold, its terms and exclusions allowing."""
    wanted = {topic.id: found for topic in topics if (found := readable(topic.query))}
    if not wanted or not model:
        return dict.fromkeys(wanted, 0)
    since = database_now(session) - timedelta(days=PREVIEW_DAYS)
    meanings = embeddings.meaning_vectors(session=session, model=model, dims=dims)
    ids, matrix = embeddings.window(session=session, since=since, model=model)
    counts: dict[int, int] = {}
    for topic_id, semantic in wanted.items():
        vector = meanings.get(semantic.key)
        if vector is None or not ids or len(vector) != matrix.shape[1]:
            counts[topic_id] = 0
            continue
        scores = matrix @ embeddings.normalized(vector)[0]
        near = [ids[n] for n in np.flatnonzero(scores >= (semantic.threshold or 1.0))]
        if semantic.rest is not None and near:
            texts = embeddings.texts_of(session=session, story_ids=near)
            near = [story for story in near
                    if semantic.matches_rest(searchable(texts.get(story, "")))]
        counts[topic_id] = len(near)
    return counts


def semantic_followed(*, session: Session, chat_id: int, thread_id: int, raw: str
                      ) -> str | None:
    """The stored query of the chat's topic with this meaning (`/unsubscribe ~meaning`)."""
    try:
        key = parse_semantic(raw).key
    except QueryError:
        return None
    rows = subscriptions.for_chat(session=session, chat_id=chat_id, thread_id=thread_id)
    return next((row.query for row in rows
                 if (found := readable(row.query)) is not None and found.key == key), None)


def _set_threshold(*, session: Session, subscription_id: int, chat_id: int, percent: int
                   ) -> tuple[str, int, str]:
    """(outcome, id, query): the topic with its new threshold, "stale" when it is gone, not
    this chat's or not semantic, "exists" when the chat follows that query already."""
    row = subscriptions.get(session=session, subscription_id=subscription_id)
    found = readable(row.query) if row is not None else None
    if row is None or found is None or row.chat_id != chat_id or not 0 < percent < 100:
        return "stale", 0, ""
    query = found.with_threshold(percent / 100).canonical()
    if query == row.query:
        return "same", row.id or 0, query
    changed = subscriptions.change_query(session=session, subscription=row, query=query)
    return ("done" if changed else "exists"), row.id or 0, query if changed else row.query


async def press_threshold(update: Update, context: Context, ids: tuple[int, int]) -> None:
    """Tighten or loosen: the topic's threshold moves, and the reply is drawn again with it."""
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    svc = services(context)
    subscription_id, percent = ids
    outcome, _, query = await db(svc.engine, _set_threshold, subscription_id=subscription_id,
                                 chat_id=chat.id, percent=percent)
    if outcome == "stale":
        await answer_button(update, context, language, "button.stale")
        return
    if outcome == "exists":
        await answer_button(update, context, language, "subscribe.exists", query=topic_label(query))
        return
    semantic = parse_semantic(query)
    await answer_button(update, context, language, "semantic.threshold_set",
                        threshold=f"{semantic.threshold or 0:.2f}")
    stored = await db(svc.engine, embeddings.meaning_vectors, model=svc.embedder.model,
                      dims=svc.embedder.dimensions)
    message = update.effective_message
    if message is None or semantic.key not in stored:
        return
    scored = await in_thread(week, svc.engine, stored[semantic.key], svc.embedder.model,
                             semantic)
    said, markup = view(context, language, query, subscription_id, scored)
    await edit_message(message, said, markup=markup)
