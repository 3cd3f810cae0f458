"""The first run: starter packs of feeds (/addsource pack), offered to admins by /start on a
bot with no feeds, and a /subscribe that blames a missing source, never the query."""

from __future__ import annotations

from babel import Locale, UnknownLocaleError
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from handlers.common import (
    Context,
    answer_button,
    argument_text,
    chat_language,
    is_admin,
    reply,
    reply_html,
    services,
    show_typing,
    text,
)
from handlers.opml import import_outlines
from handlers.sources import addsource as add_feed
from handlers.sources import admin_only
from locales import Safe
from news.packs import Pack, find, missing
from news.text import excerpt
from storage import sources
from storage.db import db, session_scope

PACK = "pack"  # `/addsource pack [NAME]`
PACK_BUTTONS_PER_ROW = 2


def _language_name(code: str) -> str:
    """`de` -> `Deutsch`: a language is best recognized by its own name (as /lang shows it)."""
    try:
        name = Locale.parse(code).get_display_name(code) or code
    except (UnknownLocaleError, ValueError):
        return code
    return name[:1].upper() + name[1:]


def listing(context: Context, language: str) -> tuple[str, InlineKeyboardMarkup | None]:
    """Every pack with its language, subject and feed count, the chat's language first, then
    what the source list lacks in each of the bot's languages; a button per pack adds it."""
    svc = services(context)
    packs = sorted(svc.packs, key=lambda pack: pack.language != language)
    lines = "".join(
        text(context, language, "packs.line", plural=len(pack.outlines), name=pack.name,
             language_name=_language_name(pack.language),
             subject=text(context, language, f"packs.subject.{pack.subject}"))
        for pack in packs)
    separator = text(context, language, "packs.separator")
    gaps = "".join(
        text(context, language, "packs.gap", language_name=_language_name(code),
             subjects=separator.join(text(context, language, f"packs.subject.{subject}")
                                     for subject in subjects))
        for code, subjects in missing(svc.packs, svc.catalog.languages).items())
    said = text(context, language, "packs.list" if svc.packs else "packs.none",
                lines=Safe(lines),
                missing=Safe(text(context, language, "packs.missing", gaps=Safe(gaps))
                             if gaps else ""))
    buttons = [InlineKeyboardButton(f"➕ {pack.name} ({len(pack.outlines)})",
                                    callback_data=f"pack:{pack.name}") for pack in packs]
    rows = [buttons[i:i + PACK_BUTTONS_PER_ROW]
            for i in range(0, len(buttons), PACK_BUTTONS_PER_ROW)]
    return said, InlineKeyboardMarkup(rows) if rows else None


async def addsource(update: Update, context: Context) -> None:
    """/addsource: `pack [NAME]` is a starter pack, anything else a feed (handlers.sources)."""
    words = argument_text(update).split(maxsplit=1)
    if words and words[0].lower() == PACK:
        await addsource_pack(update, context)
        return
    await add_feed(update, context)


@admin_only
async def addsource_pack(update: Update, context: Context) -> None:
    """`/addsource pack` lists the packs; `/addsource pack NAME` adds one."""
    language = await chat_language(update, context)
    words = argument_text(update).split(maxsplit=1)
    name = words[1].strip() if len(words) > 1 else ""
    if not name:
        said, markup = listing(context, language)
        await reply_html(update, said, markup)
        return
    pack = find(services(context).packs, name)
    if pack is None:
        await reply(update, context, language, "packs.unknown", name=excerpt(name, 60))
        return
    await add_pack(update, context, language, pack)


async def add_pack(update: Update, context: Context, language: str, pack: Pack) -> None:
    """Each feed checked as /importopml checks them, in the background, with one progress
    message that becomes the summary naming the feeds that failed."""
    chat = update.effective_chat
    assert chat is not None
    await show_typing(context, chat.id)
    progress = await reply(update, context, language, "pack.progress", name=pack.name, done=0,
                           total=len(pack.outlines))
    context.application.create_task(
        import_outlines(context, progress, list(pack.outlines), language, prefix="pack",
                        name=pack.name),
        update=update, name=f"pack:{chat.id}:{pack.name}")


async def press_packs(update: Update, context: Context, _: str) -> None:
    """The /start button: the packs, each a button away."""
    language = await chat_language(update, context)
    if not await is_admin(update, context):
        await answer_button(update, context, language, "admin.refused")
        return
    query = update.callback_query
    if query is not None:
        await query.answer()
    said, markup = listing(context, language)
    await reply_html(update, said, markup)


async def press_pack(update: Update, context: Context, name: str) -> None:
    """A pack's button adds it, as `/addsource pack NAME` does."""
    language = await chat_language(update, context)
    if not await is_admin(update, context):
        await answer_button(update, context, language, "admin.refused")
        return
    pack = find(services(context).packs, name)
    if pack is None:
        await answer_button(update, context, language, "button.stale")
        return
    await answer_button(update, context, language, "pack.started", name=pack.name)
    await add_pack(update, context, language, pack)


async def start_offer(
    update: Update, context: Context, language: str
) -> tuple[str, InlineKeyboardMarkup | None]:
    """What /start adds for an admin of a bot with no feeds: the packs, one tap away."""
    svc = services(context)
    if not svc.packs or not await is_admin(update, context):
        return "", None
    if await db(svc.engine, sources.count):
        return "", None
    button = InlineKeyboardButton(text(context, language, "packs.button"),
                                  callback_data="packs:list")
    key = "packs.offer_search" if _searching(context) else "packs.offer"  # search is a source
    return text(context, language, key), InlineKeyboardMarkup([[button]])


def _searching(context: Context) -> bool:
    """News-search providers are on: topics have a source even with no feed."""
    searching = services(context).searching
    return searching is not None and bool(searching.providers)


def nothing_matched(context: Context, language: str, *, admin: bool) -> str:
    """Why a new topic's preview is empty. With no feeds and no search the bot has nothing
    to match, and says who can add sources; with search alone, the topic's first search is
    still to come; only with feeds is the query's spelling worth a look."""
    with session_scope(services(context).engine) as session:
        feeds = sources.count(session=session)
    if feeds:
        return text(context, language, "subscribe.preview_none")
    if _searching(context):
        return text(context, language, "subscribe.preview_search")
    return text(context, language, "subscribe.no_sources_admin" if admin
                else "subscribe.no_sources")


