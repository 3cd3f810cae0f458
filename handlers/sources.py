"""Admin commands for sources: /addsource, /sources, /removesource."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from telegram import Update

from handlers.common import (
    Context,
    argument_text,
    chat_language,
    is_admin,
    reply,
    reply_chunks,
    services,
    show_typing,
    text,
)
from locales import Safe
from news.adding import add_source, check_feed
from news.feeds import NotAFeed
from news.fetch import FetchError
from news.hubs import advertised
from news.items import clean_link
from news.text import clip
from news.types import NAME_CHARS, whole_number
from storage import searches, sources, websub
from storage.db import db, in_thread
from storage.errors import last_error, stored
from storage.models import Source
from storage.sources import FEED

Handler = Callable[[Update, Context], Coroutine[Any, Any, None]]


def admin_only(handler: Handler) -> Handler:
    """Checked on every call: a non-admin gets a refusal and nothing changes."""

    @wraps(handler)
    async def guarded(update: Update, context: Context) -> None:
        if not await is_admin(update, context):
            await reply(update, context, await chat_language(update, context), "admin.refused")
            return
        await handler(update, context)

    return guarded


def _looks_like_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@admin_only
async def addsource(update: Update, context: Context) -> None:
    """Check the URL now; store its current entries as a baseline that is never alerted.

    Registered non-blocking (handlers.all_handlers): a site that is slow to answer keeps only
    this command waiting, not every other chat's."""
    language = await chat_language(update, context)
    url, _, name = argument_text(update).partition(" ")
    if not _looks_like_url(url):
        await reply(update, context, language, "addsource.usage")
        return
    url = clean_link(url)  # `?utm_source=x` names the same feed: one source, listed once
    svc = services(context)
    existing = await db(svc.engine, sources.by_url, url=url)
    if existing is not None:
        await reply(update, context, language, "addsource.exists",
                    id=existing.id, name=existing.name)
        return
    chat = update.effective_chat
    assert chat is not None
    await show_typing(context, chat.id)
    try:
        checked = await check_feed(svc.http, url, svc.fetch_policy, svc.reader)
    except FetchError as error:
        await reply(update, context, language, f"fetch.error.{error.code}", detail=error.detail)
        return
    except NotAFeed as error:
        await reply(update, context, language, f"fetch.error.{error.code}", detail=error.detail)
        return
    checked = replace(checked, url=clean_link(checked.url))  # a redirect's or a discovery's
    if await db(svc.engine, sources.by_url, url=checked.url) is not None:
        await reply(update, context, language, "addsource.exists_feed", url=checked.url)
        return
    title = clip(name.strip() or checked.feed.title or checked.url, NAME_CHARS)
    try:  # in a thread: storing waits on the story index's lock while an ingest holds it
        source_id, tracked = await in_thread(add_source, svc.newsroom, checked, title,
                                             svc.poll_interval_seconds)
    except IntegrityError:  # added meanwhile, by another /addsource or another replica
        added = await db(svc.engine, sources.by_url, url=checked.url)
        if added is None:
            raise
        await reply(update, context, language, "addsource.exists", id=added.id, name=added.name)
        return
    if svc.push is not None:  # a hub the feed names is subscribed at once (jobs.websub)
        hub, topic = advertised(checked.feed.hubs, checked.feed.self_url, checked.links,
                                checked.url)
        if hub:
            await db(svc.engine, websub.note, found=[websub.Advertised(source_id, hub, topic)],
                     poll_interval=svc.push.poll_interval_seconds,
                     keep=timedelta(seconds=svc.push.lease_seconds))
    key = "addsource.done_discovered" if checked.discovered else "addsource.done"
    await reply(update, context, language, key, id=source_id, url=checked.url, title=title,
                entries=tracked, interval=svc.poll_interval_seconds)


def _push(context: Context, language: str, push: websub.Status) -> str:
    """Where a source stands with its WebSub hub: pushed (until when), on the way, or not
    pushed and why (then it is polled as usual)."""
    hub = urlsplit(push.hub).hostname or push.hub
    if push.state == websub.ACTIVE and push.lease_expires_at is not None:
        return text(context, language, "sources.push_active", hub=hub,
                    until=f"{push.lease_expires_at:%Y-%m-%d %H:%M} UTC",
                    interval=push.poll_interval_seconds)
    if push.state == websub.LAPSED:
        return text(context, language, "sources.push_lapsed", hub=hub)
    if push.state in (websub.FAILED, websub.DENIED) and push.error_code:
        error = Safe(services(context).catalog.error(
            language, "fetch", stored(push.error_code, push.error_detail)))
        return text(context, language, "sources.push_failing", hub=hub, error=error)
    return text(context, language, "sources.push_pending", hub=hub)


def _status(context: Context, language: str, source: Source,
            push: websub.Status | None = None) -> str:
    """ok, or failing since when and why in plain words; paused says why too; and how its
    hub pushes it, where it has one."""
    status = _poll_status(context, language, source)
    return status if push is None else f"{status} · {_push(context, language, push)}"


def _poll_status(context: Context, language: str, source: Source) -> str:
    failing = ""
    if source.failing_since:
        since = f"{source.failing_since:%Y-%m-%d %H:%M} UTC"
        error = Safe(services(context).catalog.error(language, "fetch", last_error(source)))
        failing = text(context, language, "sources.failing", since=since, error=error)
    if source.paused:
        paused = text(context, language, "sources.paused")
        return f"{paused} · {failing}" if failing else paused
    return failing or text(context, language, "sources.ok")


@admin_only
async def list_sources(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    rows = await db(services(context).engine, sources.listing)
    if not rows:
        await reply(update, context, language, "sources.empty")
        return
    never = text(context, language, "sources.never")
    topics = await db(services(context).engine, searches.carried)  # what providers are asked
    pushes = await db(services(context).engine, websub.statuses)
    lines = [
        text(context, language, "sources.line" if source.kind == FEED else "sources.search_line",
             id=source.id, name=source.name, url=source.url,
             status=Safe(_status(context, language, source, pushes.get(source.id or 0))),
             last=f"{source.last_ok_at:%Y-%m-%d %H:%M} UTC" if source.last_ok_at else never,
             interval=source.interval_seconds, items=count, topics=topics)
        for source, count in rows
    ]
    await reply_chunks(update, context, language, "sources.list", lines)


@admin_only
async def removesource(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    source_id = whole_number(argument_text(update).lstrip("#"))
    if source_id is None:
        await reply(update, context, language, "removesource.usage")
        return
    push = services(context).push  # its hub is told to stop pushing, later (jobs.websub)
    keep = timedelta(seconds=push.lease_seconds) if push is not None else None
    removed = await db(services(context).engine, sources.remove, source_id=source_id,
                       unsubscribe_keep=keep)
    name = removed.name if removed else ""
    key = "removesource.done" if removed else "removesource.not_found"
    await reply(update, context, language, key, id=source_id, name=name)


def _source_id(update: Update) -> int | None:
    raw = argument_text(update).split()
    return whole_number(raw[0].lstrip("#")) if raw else None


async def _toggle(update: Update, context: Context, *, paused: bool) -> None:
    language = await chat_language(update, context)
    source_id = _source_id(update)
    command = "/pausesource" if paused else "/resumesource"
    if source_id is None:
        await reply(update, context, language, "source.usage", example=f"{command} 3")
        return
    source = await db(services(context).engine, sources.set_paused, source_id=source_id,
                      paused=paused)
    name = source.name if source else ""
    if source is None:
        await reply(update, context, language, "removesource.not_found", id=source_id)
        return
    key = "pausesource.done" if paused else "resumesource.done"
    await reply(update, context, language, key, id=source_id, name=name)


@admin_only
async def pausesource(update: Update, context: Context) -> None:
    await _toggle(update, context, paused=True)


@admin_only
async def resumesource(update: Update, context: Context) -> None:
    await _toggle(update, context, paused=False)


MIN_INTERVAL, MAX_INTERVAL = 60, 7 * 24 * 3600


@admin_only
async def interval(update: Update, context: Context) -> None:
    """Seconds between polls; at least a minute, so no source is hammered by mistake."""
    language = await chat_language(update, context)
    words = argument_text(update).lstrip("#").split()
    source_id = whole_number(words[0]) if len(words) == 2 else None
    seconds = whole_number(words[1], MIN_INTERVAL, MAX_INTERVAL) if len(words) == 2 else None
    if source_id is None or seconds is None:
        await reply(update, context, language, "interval.usage", min=MIN_INTERVAL,
                    max=MAX_INTERVAL)
        return
    source = await db(services(context).engine, sources.set_interval, source_id=source_id,
                      seconds=seconds)
    name = source.name if source else ""
    if source is None:
        await reply(update, context, language, "removesource.not_found", id=source_id)
        return
    await reply(update, context, language, "interval.done", id=source_id, name=name,
                seconds=seconds)


@admin_only
async def pollnow(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    raw = argument_text(update)
    source_id = _source_id(update)
    if raw and source_id is None:
        await reply(update, context, language, "source.usage", example="/pollnow 3")
        return
    due = await db(services(context).engine, sources.poll_now, source_id=source_id)
    name = due[0].name if due else ""
    if source_id is not None and not due:
        await reply(update, context, language, "removesource.not_found", id=source_id)
    elif source_id is not None:
        await reply(update, context, language, "pollnow.one", id=source_id, name=name)
    else:
        await reply(update, context, language, "pollnow.all", plural=len(due))
