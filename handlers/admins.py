"""/admins, /addadmin, /removeadmin: bot admins besides the permanent ADMIN_IDS."""

from __future__ import annotations

from telegram import Update

from handlers.common import Context, argument_text, chat_language, reply, services, text
from handlers.sources import admin_only
from locales import Safe
from news.types import whole_number
from storage import admins
from storage.db import db

MAX_USER_ID = 2**53 - 1  # Telegram's user ids fit in 52 bits


def _user_id(update: Update) -> int | None:
    return whole_number(argument_text(update), high=MAX_USER_ID)


@admin_only
async def list_admins(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    svc = services(context)
    added = [(row.user_id, row.added_by) for row in await db(svc.engine, admins.listing)]
    lines = [text(context, language, "admins.permanent", id=user_id)
             for user_id in sorted(svc.admin_ids)]
    lines += [text(context, language, "admins.added", id=user_id, by=by)
              for user_id, by in added if user_id not in svc.admin_ids]
    await reply(update, context, language, "admins.list", lines=Safe("\n".join(lines)))


@admin_only
async def addadmin(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    user_id, user = _user_id(update), update.effective_user
    if user_id is None or user is None:
        await reply(update, context, language, "addadmin.usage")
        return
    svc = services(context)
    added = user_id not in svc.admin_ids and await db(svc.engine, admins.add, user_id=user_id,
                                                      added_by=user.id)
    await reply(update, context, language, "addadmin.done" if added else "addadmin.exists",
                id=user_id)


@admin_only
async def removeadmin(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    user_id = _user_id(update)
    if user_id is None:
        await reply(update, context, language, "addadmin.usage")
        return
    svc = services(context)
    if user_id in svc.admin_ids:
        await reply(update, context, language, "removeadmin.permanent", id=user_id)
        return
    removed = await db(svc.engine, admins.remove, user_id=user_id)
    await reply(update, context, language,
                "removeadmin.done" if removed else "removeadmin.not_found", id=user_id)
