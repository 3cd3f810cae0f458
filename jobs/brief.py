"""Write the briefs that pending deliveries wait on; tell admins when the budget runs out."""

from __future__ import annotations

import logging
from typing import Any

from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import CallbackContext

from jobs.runtime import until_stopped
from news.pipeline import write_missing_briefs
from services import KEY, Services
from storage import admins
from storage.db import session_scope

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
        await notify_admins(context, svc, "llm.budget_spent", budget=svc.daily_token_budget)


async def notify_admins(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, key: str, **values: object
) -> None:
    """A message to every admin's private chat, in English unless the chat chose a language."""
    with session_scope(svc.engine) as session:
        targets = admins.languages(session=session, permanent=svc.admin_ids,
                                   default=svc.default_language)
    for user_id, language in targets.items():
        try:
            await context.bot.send_message(user_id, svc.catalog.text(language, key, **values),
                                           parse_mode=ParseMode.HTML)
        except TelegramError as error:
            log.warning("could not notify admin %s: %s", user_id, error)
