"""/stats: what the bot did today, for admins."""

from __future__ import annotations

from dataclasses import asdict

from telegram import Update

from handlers.common import Context, chat_language, reply, services, text
from handlers.sources import admin_only
from locales import Safe
from storage import stats, usage
from storage.db import db


@admin_only
async def show_stats(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    svc = services(context)
    counts = await db(svc.engine, stats.today)
    spent = await db(svc.engine, usage.spent)
    budget = ""
    if svc.daily_token_budget:
        budget = text(context, language, "stats.budget", spent=spent,
                      budget=svc.daily_token_budget)
    await reply(update, context, language, "stats.text", budget=Safe(budget), **asdict(counts))
