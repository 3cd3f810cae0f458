"""Admin commands for sources: /addsource, /sources, /removesource."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from telegram import Update
from telegram.constants import ChatAction

from handlers.common import Context, argument_text, chat_language, is_admin, reply, services, text
from locales import Safe
from news.feeds import NotAFeed
from news.fetch import FetchError
from news.pipeline import add_source, check_feed
from storage import sources
from storage.db import session_scope
from storage.models import Source

Handler = Callable[[Update, Context], Coroutine[Any, Any, None]]


def admin_only(handler: Handler) -> Handler:
    """Checked on every call: a non-admin gets a refusal and nothing changes."""

    @wraps(handler)
    async def guarded(update: Update, context: Context) -> None:
        if not is_admin(update, context):
            await reply(update, context, chat_language(update, context), "admin.refused")
            return
        await handler(update, context)

    return guarded


def _looks_like_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@admin_only
async def addsource(update: Update, context: Context) -> None:
    """Check the URL now; store its current entries as a baseline that is never alerted."""
    language = chat_language(update, context)
    url, _, name = argument_text(update).partition(" ")
    if not _looks_like_url(url):
        await reply(update, context, language, "addsource.usage")
        return
    svc = services(context)
    with session_scope(svc.engine) as session:
        existing = sources.by_url(session=session, url=url)
    if existing is not None:
        await reply(update, context, language, "addsource.exists",
                    id=existing.id, name=existing.name)
        return
    chat = update.effective_chat
    assert chat is not None
    await context.bot.send_chat_action(chat.id, ChatAction.TYPING)
    try:
        checked = await check_feed(svc.http, url, svc.fetch_policy)
    except FetchError as error:
        await reply(update, context, language, f"fetch.error.{error.code}", detail=error.detail)
        return
    except NotAFeed:
        await reply(update, context, language, "fetch.error.not_a_feed")
        return
    with session_scope(svc.engine) as session:
        if sources.by_url(session=session, url=checked.url) is not None:
            await reply(update, context, language, "addsource.exists_feed", url=checked.url)
            return
    title = name.strip() or checked.feed.title or checked.url
    source_id, _ = add_source(svc.engine, checked, title, svc.poll_interval_seconds)
    key = "addsource.done_discovered" if checked.discovered else "addsource.done"
    await reply(update, context, language, key, id=source_id, url=checked.url, title=title,
                entries=len(checked.feed.entries), interval=svc.poll_interval_seconds)


def _status(context: Context, language: str, source: Source) -> str:
    if source.paused:
        return text(context, language, "sources.paused")
    if source.failing_since:
        since = f"{source.failing_since:%Y-%m-%d %H:%M}"
        return text(context, language, "sources.failing", since=since,
                    error=source.last_error or "")
    return text(context, language, "sources.ok")


@admin_only
async def list_sources(update: Update, context: Context) -> None:
    language = chat_language(update, context)
    with session_scope(services(context).engine) as session:
        rows = sources.listing(session=session)
    if not rows:
        await reply(update, context, language, "sources.empty")
        return
    never = text(context, language, "sources.never")
    lines = [
        text(context, language, "sources.line", id=source.id, name=source.name, url=source.url,
             status=Safe(_status(context, language, source)),
             last=f"{source.last_polled_at:%Y-%m-%d %H:%M} UTC" if source.last_polled_at else never,
             interval=source.interval_seconds, items=count)
        for source, count in rows
    ]
    await reply(update, context, language, "sources.list", lines=Safe("\n\n".join(lines)))


@admin_only
async def removesource(update: Update, context: Context) -> None:
    language = chat_language(update, context)
    raw = argument_text(update).lstrip("#")
    if not raw.isdigit():
        await reply(update, context, language, "removesource.usage")
        return
    with session_scope(services(context).engine) as session:
        removed = sources.remove(session=session, source_id=int(raw))
        name = removed.name if removed else ""
    key = "removesource.done" if removed else "removesource.not_found"
    await reply(update, context, language, key, id=raw, name=name)
