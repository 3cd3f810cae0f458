"""The poll job deletes day-old subscription tombstones, at most once a period per process."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from jobs import poll
from locales import catalog
from news.aliases import AliasFinder
from news.briefs import BriefWriter
from news.fetch import FetchPolicy
from news.newsroom import Newsroom
from services import KEY, Every, Services
from storage import subscriptions
from storage.db import session_scope
from storage.locks import Keys, Role
from storage.models import SubscriptionRemoval
from tests.harness import age_removals, follow, unfollow


def tombstones(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        return sorted(session.exec(select(SubscriptionRemoval.subscription_id)).all())


def test_a_chore_is_due_at_once_then_once_a_period() -> None:
    every = Every(600)
    assert every.due(now=5.0), "the first time at once"
    assert not every.due(now=604.0)
    assert every.due(now=605.0)
    assert not every.due(now=606.0)


@pytest.mark.asyncio
async def test_the_poll_job_prunes_day_old_tombstones(engine: Engine, room: Newsroom) -> None:
    ids = [follow(engine, 10 + n, f"topic{n}") for n in range(3)]
    with session_scope(engine) as session:
        unfollow(session, ids[0])
        unfollow(session, ids[1])
    async with httpx.AsyncClient() as http:
        svc = Services(engine=engine, http=http, fetch_policy=FetchPolicy(),
                       writer=BriefWriter(None, "m"), aliases=AliasFinder(None, "m"),
                       catalog=catalog, admin_ids=frozenset(), default_language="en",
                       poll_interval_seconds=600, newsroom=room,
                       sending=Role(engine, Keys.of(engine).sending, "sending"))
        context = cast(Any, SimpleNamespace(bot_data={KEY: svc}))
        try:
            await poll.run(context)  # nothing due to poll: the pass is empty, and prunes
            assert tombstones(engine) == [ids[0], ids[1]], "a day's tombstones are kept"
            age_removals(engine)
            await poll.run(context)
            assert tombstones(engine) == [ids[0], ids[1]], "not again within the period"
            svc.pruning.last -= svc.pruning.seconds
            await poll.run(context)
            assert tombstones(engine) == [], "day-old tombstones are deleted"
            with session_scope(engine) as session:
                current = subscriptions.head(session=session)
            assert current.pruned == current.revision, "through the last removal"
        finally:
            svc.sending.release()
