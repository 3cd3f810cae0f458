"""/importopml (as a reply to an OPML file) and /exportopml: sources in bulk."""

from __future__ import annotations

import asyncio

from telegram import InputFile, Update
from telegram.error import TelegramError

from handlers.common import Context, chat_language, reply, services, show_typing, text
from handlers.sources import admin_only
from locales import Safe
from news.feeds import NotAFeed
from news.fetch import FetchError
from news.opml import MAX_BYTES, NotOpml, Outline, export_opml, parse_opml
from news.pipeline import add_source, check_feed
from news.text import NAME_CHARS, clip
from storage import sources
from storage.db import session_scope

CHECKS_AT_ONCE = 4
MAX_LISTED_FAILURES = 10


@admin_only
async def importopml(update: Update, context: Context) -> None:
    """Each outline is checked like /addsource; the reply sums up and names what failed."""
    language = chat_language(update, context)
    message = update.effective_message
    document = message.reply_to_message.document if message and message.reply_to_message else None
    if document is None:
        await reply(update, context, language, "opml.usage")
        return
    if (document.file_size or 0) > MAX_BYTES:
        await reply(update, context, language, "opml.bad")
        return
    try:
        data = bytes(await (await context.bot.get_file(document.file_id)).download_as_bytearray())
        outlines = parse_opml(data)
    except (NotOpml, TelegramError):
        await reply(update, context, language, "opml.bad")
        return
    chat = update.effective_chat
    assert chat is not None
    await show_typing(context, chat.id)
    results = await _add_all(context, outlines, language)
    failed = [(url, reason) for url, reason in results if reason not in ("added", "exists")]
    details = "".join(text(context, language, "opml.failed_line", url=url, reason=Safe(reason))
                      for url, reason in failed[:MAX_LISTED_FAILURES])
    await reply(update, context, language, "opml.done",
                added=sum(reason == "added" for _, reason in results),
                existing=sum(reason == "exists" for _, reason in results),
                failed=len(failed), details=Safe(details))


async def _add_all(
    context: Context, outlines: list[Outline], language: str
) -> list[tuple[str, str]]:
    svc = services(context)
    slots = asyncio.Semaphore(CHECKS_AT_ONCE)

    async def one(outline: Outline) -> tuple[str, str]:
        with session_scope(svc.engine) as session:
            if sources.by_url(session=session, url=outline.url) is not None:
                return outline.url, "exists"
        async with slots:
            try:
                checked = await check_feed(svc.http, outline.url, svc.fetch_policy)
            except FetchError as error:
                return outline.url, text(context, language, f"fetch.error.{error.code}",
                                         detail=error.detail)
            except NotAFeed as error:
                return outline.url, text(context, language, f"fetch.error.{error.code}",
                                         detail=error.detail)
        with session_scope(svc.engine) as session:
            if sources.by_url(session=session, url=checked.url) is not None:
                return outline.url, "exists"
        title = clip(outline.title or checked.feed.title or checked.url, NAME_CHARS)
        await asyncio.to_thread(add_source, svc.newsroom, checked, title,
                                svc.poll_interval_seconds)
        return outline.url, "added"

    return list(await asyncio.gather(*(one(outline) for outline in outlines)))


@admin_only
async def exportopml(update: Update, context: Context) -> None:
    language = chat_language(update, context)
    with session_scope(services(context).engine) as session:
        outlines = [Outline(row.url, row.name) for row in sources.all_sources(session=session)]
    if not outlines:
        await reply(update, context, language, "opml.empty")
        return
    message = update.effective_message
    assert message is not None
    await message.reply_document(
        InputFile(export_opml(outlines), filename="tidings-sources.opml"),
        caption=text(context, language, "opml.caption", plural=len(outlines)),
        parse_mode="HTML", do_quote=False)
