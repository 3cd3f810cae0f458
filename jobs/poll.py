"""Poll the sources that are due; tell admins about sources paused after repeated failures."""

from __future__ import annotations

from functools import partial
from typing import Any

from telegram.ext import CallbackContext

from jobs.notify import notify_admins
from jobs.runtime import until_stopped
from locales import Safe
from news import websub
from news.feeds import NotAFeed
from news.fetch import FetchError
from news.poll import poll_due
from news.semantic_round import embed_round
from services import KEY, Services
from storage.sources import PAUSE_AFTER, DueSource


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    svc: Services = context.bot_data[KEY]
    polling = poll_due(svc.newsroom, svc.http, svc.fetch_policy, full_text=svc.full_text,
                       reader=svc.reader)
    polled = await until_stopped(polling, svc.stopping)
    if polled is not None and svc.embedder.online:  # the new stories' semantic topics
        await until_stopped(embed_round(svc.engine, svc.embedder, svc.semantic,
                                        svc.daily_token_budget), svc.stopping)
    if svc.push is not None and polled:  # the hubs feeds name, for WebSub (jobs.websub)
        await websub.note(svc.engine, svc.push, polled)
    for result in polled or []:
        if result.paused is not None:
            message = partial(_paused, svc, result.paused, _stored(result.error))
            await notify_admins(context, svc, message)


def _paused(svc: Services, source: DueSource, stored: str, language: str) -> str:
    error = Safe(svc.catalog.fetch_error(language, stored))
    return svc.catalog.text(language, "sources.auto_paused", id=source.id, name=source.name,
                            count=PAUSE_AFTER, error=error)


def _stored(error: FetchError | NotAFeed | None) -> str:
    """The error as sources store it ("code|detail")."""
    if isinstance(error, FetchError | NotAFeed):
        return f"{error.code}|{error.detail}"
    return f"{error.code}|" if error is not None else "not_a_feed|"
