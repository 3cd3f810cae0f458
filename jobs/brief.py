"""Write the briefs that pending deliveries wait on; tell admins when the budget runs out."""

from __future__ import annotations

import logging
from typing import Any

from telegram.ext import CallbackContext

from jobs.notify import notify_admins
from jobs.runtime import until_stopped
from news.briefing import write_missing_briefs
from services import KEY, Services

log = logging.getLogger(__name__)


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    svc: Services = context.bot_data[KEY]
    result = await until_stopped(
        write_missing_briefs(svc.engine, svc.writer, daily_token_budget=svc.daily_token_budget),
        svc.stopping,
    )
    if result is not None and result.budget_exhausted:
        log.warning("daily LLM token budget of %d spent: offline briefs until midnight UTC",
                    svc.daily_token_budget)
        await notify_admins(context, svc, lambda language: svc.catalog.text(
            language, "llm.budget_spent", budget=svc.daily_token_budget))
