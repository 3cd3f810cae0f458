"""A replica whose claim on a source lapsed while it polled (a starved machine) stores what
another replica stored meanwhile: the batch fails on the unique entry, and each poll is then
stored alone with its unseen look-up redone, so nothing is lost and nothing logs a traceback."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from news.ingest import Outcome, ingest_all, ingest_each
from news.newsroom import Newsroom
from storage.db import session_scope
from storage.models import Item
from tests.harness import draft, store_source


def items_of(engine: Engine) -> list[tuple[int, str]]:
    with session_scope(engine) as session:
        return sorted((item.source_id, item.guid) for item in session.exec(select(Item)).all())


def test_entries_stored_meanwhile_cost_no_poll_its_turn(
    engine: Engine, room: Newsroom, caplog: pytest.LogCaptureFixture
) -> None:
    late = store_source(engine, "http://feeds.test/late.xml", "Late Wire")
    other = store_source(engine, "http://feeds.test/other.xml", "Other Wire")
    seen = [draft("late-1", "SoftBank opens an office in Lille")]
    # Both replicas looked the entry up before either stored it: each holds it as unseen.
    checked = Outcome(late, [*seen, draft("late-2", "Rance tidal plant reopens")],
                      unseen_checked=True)
    assert ingest_all(room, [Outcome(late, seen, unseen_checked=True)]) == [1]  # the other replica
    with caplog.at_level(logging.WARNING, logger="news.ingest"):
        results = ingest_each(room, [checked, Outcome(other, [draft("o-1", "Tampere battery")])])
    assert results == [1, 1], "the late poll adds only what was not stored meanwhile"
    assert items_of(engine) == sorted([(late.id, "late-1"), (late.id, "late-2"),
                                       (other.id, "o-1")])
    assert "stored meanwhile" in caplog.text
    assert not any(record.exc_info for record in caplog.records)
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(Item)).one() == 3
