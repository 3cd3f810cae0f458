"""Old deliveries deleted, a batch a transaction (storage.retention), every few minutes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
FLOOR = "retention_floor"


@dataclass
class Floor:
    """Where this process's next scan starts: every row below it is gone or kept for good."""

    id: int = 0


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    svc: Services = context.bot_data[KEY]
    if svc.delivery_retention is None:
        return  # DELIVERY_RETENTION_DAYS=0: every row is kept
    if not await holds(svc.sending):
        return  # one replica deletes: the others would only wait on its row locks
    floor: Floor = context.bot_data.setdefault(FLOOR, Floor())
    after: int = floor.id
    held: int | None = floor.id
    deleted = 0
    for _ in range(MAX_BATCHES):
        if svc.stopping.is_set():
            break
        batch = await db(svc.engine, retention.prune_batch, keep=svc.delivery_retention,
                         after=after, floor=held, limit=retention.BATCH)
        deleted, after, held = deleted + batch.deleted, batch.last, batch.floor
        if held is not None:
            floor.id = held
        if not batch.more:
            break
    if deleted:
        log.info("deleted %d deliveries older than %d days", deleted,
                 svc.delivery_retention.days)
