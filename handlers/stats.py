"""/stats: what the bot did today, for admins."""

from __future__ import annotations

from dataclasses import asdict

from telegram import Update

from handlers.common import Context, chat_language, reply, services, text
from handlers.sources import admin_only
from locales import Safe
from storage import feedback, paid, stats, usage
from storage.db import db


@admin_only
async def show_stats(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    svc = services(context)
    counts = await db(svc.engine, stats.today)
    spent = await db(svc.engine, usage.spent)
    failed = await db(svc.engine, stats.failed_today)
    votes = await db(svc.engine, feedback.totals, since=await db(svc.engine, stats.midnight))
    extra = ""
    if svc.daily_token_budget:
        extra = text(context, language, "stats.budget", spent=spent,
                     budget=svc.daily_token_budget)
    broadcast = await db(svc.engine, paid.of_day)
    if svc.paid_stars_per_day or broadcast.messages:
        extra += text(context, language, "stats.paid", stars=paid.stars(broadcast.messages),
                      budget=svc.paid_stars_per_day, messages=broadcast.messages)
    if failed.count:
        reasons = "".join(
            text(context, language, "stats.failed_line", count=count,
                 reason=Safe(svc.catalog.error(language, "delivery", stored)))
            for stored, count in failed.reasons)
        extra += text(context, language, "stats.failed", count=failed.count,
                      reasons=Safe(reasons))
    extra += text(context, language, "stats.feedback", **asdict(votes))
    await reply(update, context, language, "stats.text", budget=Safe(extra), **asdict(counts))

