"""Poll the sources that are due."""

from __future__ import annotations

from typing import Any

from telegram.ext import CallbackContext

from jobs.runtime import until_stopped
from news.pipeline import poll_due
from services import KEY, Services


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    svc: Services = context.bot_data[KEY]
    await until_stopped(poll_due(svc.engine, svc.http, svc.fetch_policy), svc.stopping)
