"""Poll the sources that are due; tell admins about sources paused after repeated failures.
Every few minutes, after a pass, delete the subscription tombstones older than a day."""

from __future__ import annotations

from functools import partial
from typing import Any

from telegram.ext import CallbackContext

from jobs.notify import notify_admins
from jobs.runtime import until_stopped
from locales import Catalog, Safe
from news import websub
from news.feeds import NotAFeed
from news.fetch import FetchError
from news.poll import poll_due
from news.semantic_round import embed_round
from services import KEY, Services
from storage import subscriptions
from storage.db import db
from storage.errors import StoredError
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
            message = partial(_paused, svc.catalog, result.paused, _stored(result.error))
            await notify_admins(context, svc, message)
    if polled is not None and svc.pruning.due():  # else the table grows for ever
        await db(svc.engine, subscriptions.prune_removals)


def _paused(catalog: Catalog, source: DueSource, stored: StoredError, language: str) -> str:
    """The note admins get when repeated failures paused a source, with the last one."""
    error = Safe(catalog.error(language, "fetch", stored))
    return catalog.text(language, "sources.auto_paused", id=source.id, name=source.name,
                        count=PAUSE_AFTER, error=error)


def _stored(error: FetchError | NotAFeed | None) -> StoredError:
    """The error as the source now stores it (storage.sources.record_failure)."""
    if error is None:
        return StoredError(NotAFeed.code)
    return StoredError(error.code, error.detail)
