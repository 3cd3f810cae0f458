"""Write the briefs that pending deliveries wait on."""

from __future__ import annotations

from typing import Any

from telegram.ext import CallbackContext

from jobs.runtime import until_stopped
from news.pipeline import write_missing_briefs
from services import KEY, Services


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    svc: Services = context.bot_data[KEY]
    await until_stopped(write_missing_briefs(svc.engine, svc.writer), svc.stopping)
