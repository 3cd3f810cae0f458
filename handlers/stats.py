"""/stats: what the bot did today, for admins."""

from __future__ import annotations

from dataclasses import asdict

from telegram import Update

from handlers.common import Context, chat_language, reply, services, text
from handlers.sources import admin_only
from locales import Safe
from storage import stats, usage
from storage.db import session_scope


@admin_only
async def show_stats(update: Update, context: Context) -> None:
    language = chat_language(update, context)
    svc = services(context)
    with session_scope(svc.engine) as session:
        counts = stats.today(session=session)
        spent = usage.spent(session=session)
    budget = ""
    if svc.daily_token_budget:
        budget = text(context, language, "stats.budget", spent=spent,
                      budget=svc.daily_token_budget)
    await reply(update, context, language, "stats.text", budget=Safe(budget), **asdict(counts))
