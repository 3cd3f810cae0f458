"""Ask the search providers about the followed queries whose turn it is (news.search)."""

from __future__ import annotations

from functools import partial
from typing import Any

from telegram.ext import CallbackContext

from jobs.notify import notify_admins
from jobs.poll import _paused, _stored
from jobs.runtime import until_stopped
from services import KEY, Services


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    svc: Services = context.bot_data[KEY]
    if svc.searching is None or (svc.searching.synced and not svc.searching.providers):
        return  # with none named, the first sweep only drops the rows of providers once named
    sweeping = svc.searching.sweep(svc.newsroom, svc.http, svc.fetch_policy,
                                   reader=svc.reader, full_text=svc.full_text)
    for result in await until_stopped(sweeping, svc.stopping) or []:
        if result.paused:  # admins hear it as for a feed
            message = partial(_paused, svc.catalog, result.source, _stored(result.error))
            await notify_admins(context, svc, message)
