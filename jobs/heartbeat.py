"""Proof of life for a HEALTHCHECK: a file touched while the bot and its database work."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from telegram.ext import CallbackContext

from services import KEY, Services
from storage.db import in_thread

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 30.0


def beat(engine: Engine, path: Path) -> None:
    """Touch the file only after the database answered, so a lost database shows as unhealthy."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


async def run(context: CallbackContext[Any, Any, Any, Any]) -> None:
    svc: Services = context.bot_data[KEY]
    if svc.heartbeat_file is None:
        return
    try:
        await in_thread(beat, svc.engine, svc.heartbeat_file)
    except Exception as exc:  # the stale file is the report; one line here says why
        log.warning("heartbeat skipped: %s", exc)
