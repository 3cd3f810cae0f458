"""/importopml (as a reply to an OPML file) and /exportopml: sources in bulk."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from telegram import InputFile, Message, Update
from telegram.error import TelegramError

from handlers.common import (
    Context,
    chat_language,
    edit_message,
    reply,
    services,
    show_typing,
    text,
)
from handlers.sources import admin_only
from locales import Safe
from news.adding import add_source, check_feed
from news.feeds import NotAFeed
from news.fetch import FetchError
from news.items import clean_link
from news.opml import MAX_BYTES, NotOpml, Outline, export_opml, parse_opml
from news.text import clip
from news.types import NAME_CHARS
from storage import sources
from storage.db import db, in_thread

CHECKS_AT_ONCE = 4
MAX_LISTED_FAILURES = 10
PROGRESS_EVERY = 2.0  # seconds between edits of the progress message
log = logging.getLogger(__name__)


@admin_only
async def importopml(update: Update, context: Context) -> None:
    """Each outline is checked like /addsource; the reply sums up and names what failed."""
    language = await chat_language(update, context)
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
    progress = await reply(update, context, language, "opml.progress", done=0,
                           total=len(outlines))
    # In the background: checking hundreds of slow feeds must not hold up other chats' updates.
    context.application.create_task(import_outlines(context, progress, outlines, language),
                                    update=update, name=f"importopml:{chat.id}")


async def import_outlines(
    context: Context, progress: Message, outlines: list[Outline], language: str, *,
    prefix: str = "opml", name: str = "",
) -> None:
    """Check every outline, showing how far it got in one message, then the summary there.
    A stopping bot ends the import (what was added stays) instead of waiting for it. The
    messages are `{prefix}.progress`, `.stopped` and `.done` (a starter pack has its own,
    which show its `name`)."""
    svc = services(context)
    results: list[tuple[str, str]] = []
    work = asyncio.ensure_future(_add_all(context, outlines, language, results))
    stopping = asyncio.ensure_future(svc.stopping.wait())
    shown = 0
    try:
        while not work.done():
            await asyncio.wait({work, stopping}, timeout=PROGRESS_EVERY,
                               return_when=asyncio.FIRST_COMPLETED)
            if stopping.done() and not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
                await _show(progress, text(
                    context, language, f"{prefix}.stopped", done=len(results),
                    total=len(outlines), added=sum(reason == "added" for _, reason in results),
                    name=name))
                return
            if not work.done() and len(results) != shown:
                shown = len(results)
                await _show(progress, text(context, language, f"{prefix}.progress",
                                           done=shown, total=len(outlines), name=name))
        results = work.result()
    finally:
        stopping.cancel()
        work.cancel()
    failed = [(url, reason) for url, reason in results if reason not in ("added", "exists")]
    details = "".join(text(context, language, "opml.failed_line", url=url, reason=Safe(reason))
                      for url, reason in failed[:MAX_LISTED_FAILURES])
    summary = text(context, language, f"{prefix}.done",
                   added=sum(reason == "added" for _, reason in results),
                   existing=sum(reason == "exists" for _, reason in results),
                   failed=len(failed), details=Safe(details), name=name)
    if not await _show(progress, summary):  # the progress message is gone: a new one then
        await progress.reply_text(summary)


async def _show(progress: Message, html: str) -> bool:
    """Edit the progress message; False when it cannot be edited (deleted, say)."""
    try:
        return await edit_message(progress, html)
    except TelegramError as exc:
        log.info("OPML progress message not edited: %s", exc)
        return False


async def _add_all(
    context: Context, outlines: list[Outline], language: str, results: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Results in the outlines' order; `results` also fills up as each one is checked."""
    svc = services(context)
    slots = asyncio.Semaphore(CHECKS_AT_ONCE)

    async def check(outline: Outline) -> tuple[str, str]:
        if await db(svc.engine, sources.by_url, url=clean_link(outline.url)) is not None:
            return outline.url, "exists"
        async with slots:
            try:
                checked = await check_feed(svc.http, outline.url, svc.fetch_policy, svc.reader)
            except FetchError as error:
                return outline.url, text(context, language, f"fetch.error.{error.code}",
                                         detail=error.detail)
            except NotAFeed as error:
                return outline.url, text(context, language, f"fetch.error.{error.code}",
                                         detail=error.detail)
        checked = replace(checked, url=clean_link(checked.url))  # as /addsource stores it
        if await db(svc.engine, sources.by_url, url=checked.url) is not None:
            return outline.url, "exists"
        title = clip(outline.title or checked.feed.title or checked.url, NAME_CHARS)
        await in_thread(add_source, svc.newsroom, checked, title, svc.poll_interval_seconds)
        return outline.url, "added"

    async def one(outline: Outline) -> tuple[str, str]:
        result = await check(outline)
        results.append(result)
        return result

    return list(await asyncio.gather(*(one(outline) for outline in outlines)))


@admin_only
async def exportopml(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    outlines = [Outline(row.url, row.name)
                for row in await db(services(context).engine, sources.all_sources)]
    if not outlines:
        await reply(update, context, language, "opml.empty")
        return
    message = update.effective_message
    assert message is not None
    await message.reply_document(
        InputFile(export_opml(outlines), filename="tidings-sources.opml"),
        caption=text(context, language, "opml.caption", plural=len(outlines)))
