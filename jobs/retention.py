"""Old deliveries deleted, a batch a transaction (storage.retention), every few minutes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from telegram.ext import CallbackContext

from jobs.runtime import holds
from services import KEY, Services
from storage import retention
from storage.db import db

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 600.0
# Batches a run deletes at most: 100,000 rows every 10 minutes, far past a million alerts a
# day, while a backlog (a first run on a year of rows) never holds the database for long.
MAX_BATCHES = 50
FLOORS = "retention_floors"


@dataclass
class Floors:
    """Where this process's next scan of each finished state starts: below it, that state's
    rows are gone or kept for good."""

    ids: dict[str, int] = field(default_factory=dict)


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    svc: Services = context.bot_data[KEY]
    if svc.delivery_retention is None:
        return  # DELIVERY_RETENTION_DAYS=0: every row is kept
    if not await holds(svc.sending):
        return  # one replica deletes: the others would only wait on its row locks
    floors: Floors = context.bot_data.setdefault(FLOORS, Floors())
    deleted, batches = 0, 0
    for state in retention.FINISHED:
        more = True
        while more and batches < MAX_BATCHES and not svc.stopping.is_set():
            batch = await db(svc.engine, retention.prune_batch, keep=svc.delivery_retention,
                             state=state, floor=floors.ids.get(state, 0),
                             limit=retention.BATCH)
            floors.ids[state], more = batch.floor, batch.more
            deleted, batches = deleted + batch.deleted, batches + 1
    if deleted:
        log.info("deleted %d deliveries older than %d days", deleted,
                 svc.delivery_retention.days)
