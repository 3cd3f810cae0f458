"""/stats: what the bot did today, for admins."""

from __future__ import annotations

import html
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
                 reason=Safe(delivery_error(context, language, stored)))
            for stored, count in failed.reasons)
        extra += text(context, language, "stats.failed", count=failed.count,
                      reasons=Safe(reasons))
    extra += text(context, language, "stats.feedback", **asdict(votes))
    await reply(update, context, language, "stats.text", budget=Safe(extra), **asdict(counts))


def delivery_error(context: Context, language: str, stored: str) -> str:
    """A parked delivery's stored reason ("code|detail") in the admin's language, as HTML."""
    code, _, detail = stored.partition("|")
    key = f"delivery.error.{code}"
    if services(context).catalog.has("en", key):
        return text(context, language, key, detail=detail)
    return html.escape(stored, quote=False)
