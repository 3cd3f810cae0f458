"""Messages to every bot admin, each in the language of their private chat."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telegram.error import TelegramError
from telegram.ext import CallbackContext

from services import Services
from storage import admins
from storage.db import db

log = logging.getLogger(__name__)


async def notify_admins(
    context: CallbackContext[Any, Any, Any, Any], svc: Services, render: Callable[[str], str]
) -> None:
    """`render(language)` gives the message; an admin who never talked to us gets the default."""
    targets = await db(svc.engine, admins.languages, permanent=svc.admin_ids,
                       default=svc.default_language)
    for user_id, language in targets.items():
        try:
            await context.bot.send_message(user_id, render(language))
        except TelegramError as error:
            log.warning("could not notify admin %s: %s", user_id, error)
