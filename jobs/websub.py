"""Subscribe at the WebSub hubs feeds name, renew leases before they lapse (news.websub)."""

from __future__ import annotations

from typing import Any

from telegram.ext import CallbackContext

from jobs.runtime import until_stopped
from news.websub import renew
from services import KEY, Services


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    svc: Services = context.bot_data[KEY]
    if svc.push is not None:  # webhook mode: hubs have somewhere to push to
        await until_stopped(renew(svc.engine, svc.http, svc.fetch_policy, svc.push),
                            svc.stopping)
