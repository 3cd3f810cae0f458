"""Storage on SQLite and PostgreSQL: uniqueness in the schema, claims, the outbox."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, inspect
from sqlmodel import select

from news import following, holding
from news.briefing import story_text
from news.briefs import Brief, Written, offline_brief
from news.fetch import Fetched
from news.ingest import Outcome, ingest, ingest_all, ingest_each
from news.items import ItemDraft, normalize
from news.newsroom import Newsroom
from storage import briefs, chats, deliveries, items, sources, subscriptions
from storage.db import describe, migrate, normalize_url, session_scope
from storage.errors import StoredError, last_error
from storage.models import Chat, Delivery, Item, Story, utcnow
from tests.harness import draft, in_session, make_chat, make_source


def test_schema_is_created_by_migrations_and_migrating_twice_is_harmless(engine: Engine) -> None:
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"chats", "subscriptions", "sources", "items", "stories", "briefs", "deliveries",
            "admins", "alembic_version"} <= tables


def test_urls_hosting_providers_hand_out_are_accepted() -> None:
    assert normalize_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///data/x.db") == "sqlite:///data/x.db"
    assert "secret" not in describe("postgresql://u:secret@h/db")


def test_a_chat_keeps_its_first_language(engine: Engine) -> None:
    make_chat(engine, 1, "zh")
    make_chat(engine, 1, "en")
    with session_scope(engine) as session:
        assert chats.ensure_chat(session=session, chat_id=1, chat_type="private", title=None,
                                 language="fr").language == "zh"
        chats.set_language(session=session, chat_id=1, language="ja")
    with session_scope(engine) as session:
        assert chats.ensure_chat(session=session, chat_id=1, chat_type="private", title=None,
                                 language="en").language == "ja"


def test_subscriptions_are_unique_per_chat_and_removable_by_number(engine: Engine) -> None:
    make_chat(engine, 1)
    make_chat(engine, 2)
    with session_scope(engine) as session:
        assert subscriptions.add(session=session, chat_id=1, query="SoftBank")
        assert not subscriptions.add(session=session, chat_id=1, query="SoftBank")
        assert subscriptions.add(session=session, chat_id=2, query="SoftBank")
        assert subscriptions.add(session=session, chat_id=1, query="Nvidia")
    with session_scope(engine) as session:
        assert [s.query for s in subscriptions.for_chat(session=session, chat_id=1)] == [
            "SoftBank", "Nvidia"]
        assert following.remove(session=session, chat_id=1, query="2") == "Nvidia"
        assert following.remove(session=session, chat_id=1, query="3") is None
        assert following.remove(session=session, chat_id=1, query="softbank") == "SoftBank"
    with session_scope(engine) as session:
        assert subscriptions.for_chat(session=session, chat_id=1) == []
        assert len(subscriptions.for_chat(session=session, chat_id=2)) == 1


def test_ingest_stores_new_items_once_and_enqueues_only_matching_active_chats(
    engine: Engine, room: Newsroom,
) -> None:
    source = make_source(engine)
    for chat_id, query in ((1, "SoftBank"), (2, "Nvidia"), (3, "SoftBank")):
        make_chat(engine, chat_id)
        with session_scope(engine) as session:
            subscriptions.add(session=session, chat_id=chat_id, query=query)
    with session_scope(engine) as session:
        chats.deactivate(session=session, chat_id=3)

    drafts = [draft("g1", "SoftBank buys a chip maker"), draft("g2", "Rain in Lille")]
    assert ingest(room, source, drafts) == 2
    assert ingest(room, source, drafts) == 0, "the same guids are not new"
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery)).all()
        assert [(row.chat_id, row.topics) for row in rows] == [(1, '["SoftBank"]')]
        assert len(session.exec(select(Item)).all()) == 2


def test_a_chat_that_migrated_after_the_matcher_was_built_gets_the_next_story(
    engine: Engine, room: Newsroom,
) -> None:
    """The cached matcher saw the group's old id; enqueueing must use the chat it has now."""
    source = make_source(engine)
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=-5, chat_type="group", title="G",
                          language="en")
        subscriptions.add(session=session, chat_id=-5, query="SoftBank")
    assert ingest(room, source, [draft("m1", "SoftBank buys a chip maker")]) == 1
    with session_scope(engine) as session:
        chats.migrate(session=session, old_id=-5, new_id=-1005)
    assert ingest(room, source, [draft("m2", "SoftBank sells its robots arm")]) == 1
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery).order_by(Delivery.id)).all()
        assert [(row.chat_id, row.topics) for row in rows] == [
            (-1005, '["SoftBank"]'), (-1005, '["SoftBank"]')]


def fetched(etag: str) -> Fetched:
    return Fetched(url="http://feeds.test/", status=200, body=b"", content_type="",
                   etag=etag, last_modified=None)


def test_polls_stored_together_join_stories_as_polls_stored_one_by_one(
    engine: Engine, room: Newsroom
) -> None:
    a, b = make_source(engine), make_source(engine, "http://feeds.test/b.xml", "B")
    make_chat(engine, 1)
    with session_scope(engine) as session:
        subscriptions.add(session=session, chat_id=1, query="SoftBank")
    story = "SoftBank pledges ten billion for French data centres on Monday"
    counts = ingest_all(room, [
        Outcome(a, [draft("a1", story), draft("a2", "Rain in Lille")], fetched('"a"')),
        Outcome(b, [ItemDraft("b1", "http://other.test/b1", story, story, None)], fetched('"b"')),
    ])
    assert counts == [2, 0], "B's report of the same event joins A's story"
    with session_scope(engine) as session:
        rows = session.exec(select(Item).order_by(Item.id)).all()
        assert [row.guid for row in rows] == ["a1", "a2", "b1"]
        assert rows[2].story_id == rows[0].story_id != rows[1].story_id
        assert [d.story_id for d in session.exec(select(Delivery)).all()] == [rows[0].story_id]
        for source, etag in ((a, '"a"'), (b, '"b"')):
            row = sources.get(session=session, source_id=source.id)
            assert row is not None and row.etag == etag and row.last_ok_at is not None


def test_a_poll_that_cannot_be_stored_costs_only_its_own_source(
    engine: Engine, room: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = make_source(engine), make_source(engine, "http://feeds.test/b.xml", "B")
    other = make_source(engine, "http://feeds.test/c.xml", "C")
    real_store = items.store

    def store(**kwargs: object) -> items.Stored:
        if kwargs["source_id"] == bad.id:
            raise RuntimeError("database lost")
        return real_store(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(items, "store", store)
    outcomes = ingest_each(room, [Outcome(good, [draft("g1", "One story")], fetched('"g"')),
                                    Outcome(bad, [draft("b1", "Two story")], fetched('"b"')),
                                    Outcome(other, [draft("c1", "Red story")], fetched('"c"'))])
    assert outcomes[0] == 1 and outcomes[2] == 1
    assert isinstance(outcomes[1], RuntimeError)
    with session_scope(engine) as session:
        assert sorted(row.guid for row in session.exec(select(Item)).all()) == ["c1", "g1"]
        failed = sources.get(session=session, source_id=bad.id)
        assert failed is not None and failed.last_ok_at is None and failed.etag is None


def test_a_batch_that_fails_after_placing_its_stories_is_stored_again_one_by_one(
    engine: Engine, room: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The story index learnt the batch's stories before the transaction rolled back: the
    retries must not join stories that were never stored."""
    a, b = make_source(engine), make_source(engine, "http://feeds.test/b.xml", "B")
    real_head, calls = subscriptions.head, []

    def head(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("connection lost after the inserts")
        return real_head(**kwargs)

    monkeypatch.setattr(subscriptions, "head", head)
    story = "SoftBank pledges ten billion for French data centres on Monday"
    outcomes = ingest_each(room, [Outcome(a, [draft("a1", story)], fetched('"a"')),
                                    Outcome(b, [draft("b1", "Rain over Lille all week")],
                                            fetched('"b"'))])
    assert len(calls) > 1, "the batch failed once and was stored again"
    assert outcomes == [1, 1]
    with session_scope(engine) as session:
        assert sorted(row.guid for row in session.exec(select(Item)).all()) == ["a1", "b1"]


def test_outbox_claims_are_leased_and_released(engine: Engine, room: Newsroom) -> None:
    source = make_source(engine)
    make_chat(engine, 1, "zh")
    with session_scope(engine) as session:
        subscriptions.add(session=session, chat_id=1, query="SoftBank")
    ingest(room, source, [draft("g1", "SoftBank news")])
    now = utcnow()
    with session_scope(engine) as session:
        assert claim(session, now) == [], "no brief yet: nothing to send"
        missing = deliveries.briefs_missing(session=session, now=now)
        assert len(missing) == 1 and missing[0][1] == "zh"
        story_id = missing[0][0]
        written = Written(Brief(headline="h", core_point="c", tracking_level=2), "offline")
        assert briefs.save(session=session, story_id=story_id, language="zh", written=written)
        assert not briefs.save(session=session, story_id=story_id, language="zh", written=written)
    with session_scope(engine) as session:
        claimed = claim(session, now)
        assert [(c.chat_id, c.language, c.topics) for c in claimed] == [(1, "zh", ["SoftBank"])]
    with session_scope(engine) as session:
        assert claim(session, now) == [], "leased to the first claimer"
        deliveries.release(session=session, delivery_id=claimed[0].id, token=claimed[0].token)
    with session_scope(engine) as session:
        again = claim(session, utcnow())
        assert [c.id for c in again] == [claimed[0].id] and again[0].token != claimed[0].token
        assert deliveries.mark_sent(session=session, delivery_id=again[0].id,
                                    token=again[0].token, message_id=77)
    with session_scope(engine) as session:
        later = utcnow() + LEASE + timedelta(seconds=1)
        assert claim(session, later) == [], "sent rows are never resent"
        assert deliveries.count_sent_since(session=session, since=now) == 1


LEASE = timedelta(seconds=60)


def claim(session: Any, now: Any, **caps: int) -> list[deliveries.Claimed]:
    return deliveries.claim(session=session, now=now, lease=LEASE, **caps)


def outbox(engine: Engine, chat_id: int, count: int) -> None:
    """`count` due deliveries with briefs for one chat, written straight to the outbox."""
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=chat_id, chat_type="group", title="G",
                          language="en")
        sub = subscriptions.add(session=session, chat_id=chat_id, query=f"q{chat_id}")
        assert sub is not None and sub.id is not None
        written = Written(Brief(headline="h", core_point="c", tracking_level=2), "offline")
        for _ in range(count):
            story = Story(title="t")
            session.add(story)
            session.flush()
            assert story.id is not None
            briefs.save(session=session, story_id=story.id, language="en", written=written)
            deliveries.enqueue_matches(session=session, matches={story.id: {sub.id}})


def test_a_stale_claim_can_neither_send_nor_mark_sent(engine: Engine) -> None:
    """A row claimed again after its lease ran out belongs to the new claim only."""
    outbox(engine, -1, 1)
    with session_scope(engine) as session:
        [first] = claim(session, utcnow())
    with session_scope(engine) as session:
        [second] = claim(session, utcnow() + LEASE + timedelta(seconds=1))
        assert second.id == first.id and second.token != first.token
    with session_scope(engine) as session:
        assert not deliveries.begin_send(session=session, delivery_id=first.id,
                                         token=first.token, lease=LEASE)
        assert not deliveries.mark_sent(session=session, delivery_id=first.id,
                                        token=first.token, message_id=5)
        deliveries.failed_attempt(session=session, delivery_id=first.id, token=first.token,
                                  after=timedelta(seconds=9), error="late")
    with session_scope(engine) as session:
        row = session.get(Delivery, first.id)
        assert row is not None
        assert (row.state, row.message_id, row.attempts, row.claim_token) == (
            "pending", None, 0, second.token), "the stale claim changed nothing"
        assert deliveries.begin_send(session=session, delivery_id=second.id,
                                     token=second.token, lease=LEASE)
        assert deliveries.mark_sent(session=session, delivery_id=second.id,
                                    token=second.token, message_id=6)
    with session_scope(engine) as session:
        row = session.get(Delivery, first.id)
        assert row is not None and (row.state, row.message_id) == ("sent", 6)


def test_sends_recorded_together_keep_each_rows_claim_and_edit_flag(engine: Engine) -> None:
    """mark_sent_many (the deliver job's batched record): a stale claim records nothing, the
    others are sent, and one whose story has more sources than it showed is flagged."""
    outbox(engine, -3, 3)
    with session_scope(engine) as session:
        stale, shown_all, shown_fewer = claim(session, utcnow())
        session.add(Item(source_name="Wire", story_id=shown_fewer.story_id, guid="w",
                         link="http://news.test/w", title="t", summary="s"))
    with session_scope(engine) as session:  # the first row's lease ran out: claimed again
        [again] = claim(session, utcnow() + LEASE + timedelta(seconds=1), limit=1)
        assert again.id == stale.id
    with session_scope(engine) as session:
        held = deliveries.mark_sent_many(session=session, sent=[
            deliveries.Sent(stale.id, stale.token, 7, 0),
            deliveries.Sent(shown_all.id, shown_all.token, 8, 0),
            deliveries.Sent(shown_fewer.id, shown_fewer.token, 9, 0)])
        assert held == [False, True, True]
    with session_scope(engine) as session:
        rows = {row.id: row for row in session.exec(select(Delivery)).all()}
        assert (rows[stale.id].state, rows[stale.id].claim_token) == ("pending", again.token)
        assert [(rows[c.id].state, rows[c.id].message_id, rows[c.id].needs_edit)
                for c in (shown_all, shown_fewer)] == [("sent", 8, False), ("sent", 9, True)]
        assert rows[shown_all.id].claim_token is None


def test_a_chat_gets_no_more_rows_than_its_cap_counting_rows_still_held(
    engine: Engine,
) -> None:
    outbox(engine, -2, 10)  # a group's backlog first, so it would fill a plain LIMIT
    outbox(engine, 3, 2)
    now = utcnow()
    with session_scope(engine) as session:
        first = claim(session, now, limit=50, group_cap=4, chat_cap=1)
        assert [c.chat_id for c in first] == [-2, -2, -2, -2, 3], "others are not starved"
    with session_scope(engine) as session:
        assert claim(session, now, limit=50, group_cap=4, chat_cap=1) == [], "all caps held"
        for item in first[:2]:
            deliveries.mark_sent(session=session, delivery_id=item.id, token=item.token,
                                 message_id=item.id)
    with session_scope(engine) as session:
        again = claim(session, now, limit=50, group_cap=4, chat_cap=1)
        assert [c.chat_id for c in again] == [-2, -2], "two sent, two more for the group"
        assert {c.id for c in again}.isdisjoint(c.id for c in first)
    with session_scope(engine) as session:
        later = claim(session, now + LEASE + timedelta(seconds=1), limit=50, group_cap=4,
                      chat_cap=1)
        assert [c.chat_id for c in later] == [-2] * 4 + [3], "expired leases do not count"


def test_a_backlog_longer_than_a_page_starves_no_other_chat(engine: Engine) -> None:
    """A claim reads the due rows a page at a time: a group whose backlog fills several pages
    ahead of everyone else still yields its cap, then the claim reads on to the others, and
    rows due again after quiet hours come in id order with the pending ones."""
    outbox(engine, -7, 3 * deliveries._DUE_PAGE + 5)
    outbox(engine, 8, 2)
    outbox(engine, 9, 1)
    with session_scope(engine) as session:
        first_of_8 = session.exec(select(Delivery).where(Delivery.chat_id == 8)
                                  .order_by(Delivery.id)).first()
        assert first_of_8 is not None
        first_of_8.state = "quiet"  # quiet hours ended: claimable again, by its id
    now = utcnow()
    with session_scope(engine) as session:
        got = claim(session, now, limit=50, group_cap=3, chat_cap=1)
        assert [c.chat_id for c in got] == [-7, -7, -7, 8, 9]
        assert got[3].id == first_of_8.id, "the quiet row is 8's first, ranked first"
    with session_scope(engine) as session:
        assert claim(session, now, limit=50, group_cap=3, chat_cap=1) == []


def test_every_failure_counts_and_the_row_is_parked_with_its_reason(engine: Engine) -> None:
    outbox(engine, -4, 2)
    now = utcnow()
    for attempt in range(1, deliveries.MAX_ATTEMPTS + 1):
        with session_scope(engine) as session:
            item = claim(session, utcnow(), limit=1)[0]
            parked = deliveries.failed_attempt(session=session, delivery_id=item.id,
                                               token=item.token, after=timedelta(0),
                                               error=f"AttributeError({attempt})")
        assert parked == (attempt == deliveries.MAX_ATTEMPTS)
    for _ in range(3):  # a 429 is no attempt; the waits add up to the cap
        with session_scope(engine) as session:
            item = claim(session, utcnow() + deliveries.MAX_THROTTLED)[0]
            parked = deliveries.throttled(session=session, delivery_id=item.id, token=item.token,
                                          after=deliveries.MAX_THROTTLED / 3,
                                          error="Flood control exceeded")
    assert parked
    with session_scope(engine) as session:
        assert claim(session, utcnow() + timedelta(days=1)) == [], "parked rows are not resent"
        rows = session.exec(select(Delivery).order_by(Delivery.id)).all()
        assert [(row.state, row.attempts) for row in rows] == [
            ("failed", deliveries.MAX_ATTEMPTS), ("failed", 0)]
        assert deliveries.failed_since(session=session, since=now - timedelta(hours=1)) == [
            (StoredError("attempts", "AttributeError(5)"), 1),
            (StoredError("throttled", "Flood control exceeded"), 1)]


def test_due_sources_are_claimed_once_and_health_is_recorded(engine: Engine) -> None:
    source = make_source(engine)
    later = utcnow() + timedelta(seconds=61)
    with session_scope(engine) as session:
        assert [s.id for s in sources.claim_due(session=session, now=later)] == [source.id]
        assert sources.claim_due(session=session, now=later) == []
        sources.record_failure(session=session, source_id=source.id, code="http_status",
                               detail="500")
    with session_scope(engine) as session:
        [(row, count)] = sources.listing(session=session)
        assert row.failing_since is not None
        assert last_error(row) == StoredError("http_status", "500")
        assert count == 0
        sources.record_success(session=session, source_id=source.id, etag='"x"',
                               last_modified=None)
    with session_scope(engine) as session:
        [(row, _)] = sources.listing(session=session)
        assert row.failing_since is None and row.etag == '"x"' and row.last_ok_at is not None


def test_removing_a_source_keeps_its_stories(engine: Engine, room: Newsroom) -> None:
    source = make_source(engine)
    ingest(room, source, [draft("g1", "SoftBank news")])
    with session_scope(engine) as session:
        assert sources.remove(session=session, source_id=source.id) is not None
    with session_scope(engine) as session:
        [item] = session.exec(select(Item)).all()
        assert item.source_id is None and item.source_name == "A"
        assert len(items.of_story(session=session, story_id=item.story_id)) == 1
        assert sources.count(session=session) == 0


def test_sqlite_runs_with_wal_and_foreign_keys(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas only")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_failing_sources_back_off_and_pause_after_a_run_of_failures(engine: Engine) -> None:
    source = make_source(engine)  # interval 60 s
    waits = []
    for attempt in range(1, sources.PAUSE_AFTER + 1):
        with session_scope(engine) as session:
            paused = sources.record_failure(session=session, source_id=source.id,
                                            code="http_status", detail="500")
            row = sources.get(session=session, source_id=source.id)
            assert row is not None
            waits.append((row.next_poll_at - utcnow()).total_seconds())
            assert paused == (attempt == sources.PAUSE_AFTER)
            assert row.paused == (attempt == sources.PAUSE_AFTER)
    assert 110 < waits[0] < 121 and 230 < waits[1] < 241, "doubling from the interval"
    assert all(a <= b + 1 for a, b in itertools.pairwise(waits)), "never shorter"
    assert waits[-1] <= sources.MAX_BACKOFF.total_seconds() + 1, "capped"
    with session_scope(engine) as session:
        row = sources.set_paused(session=session, source_id=source.id, paused=False)
        assert row is not None and row.failures == 0 and not row.paused
        sources.record_failure(session=session, source_id=source.id, code="http_status",
                               detail="429", retry_after=3600)
        assert (row.next_poll_at - utcnow()).total_seconds() > 3500, "Retry-After is honoured"
        sources.record_success(session=session, source_id=source.id, etag=None,
                               last_modified=None, min_interval=7200)
        assert row.failing_since is None and last_error(row) is None and row.failures == 0
        assert (row.next_poll_at - utcnow()).total_seconds() > 7100, "a feed's ttl is honoured"


def episode(guid: str, title: str, link: str = "http://show.test/",
            published: int = 0) -> ItemDraft:
    """A podcast episode: its own guid, and the show's home page for a link, like most."""
    when = utcnow() - timedelta(days=30) + timedelta(hours=published) if published else None
    return ItemDraft(guid=guid, link=link, title=title, summary=title, published_at=when)


def test_entries_that_share_a_link_are_different_items_and_different_stories(
    engine: Engine, room: Newsroom,
) -> None:
    """SPEC §2: identity is the guid; a new episode linking to the show's home page, like
    every other, is new, is its own story, and is alerted (two in one poll are two alerts)."""
    source = make_source(engine)
    make_chat(engine, 1)
    with session_scope(engine) as session:
        subscriptions.add(session=session, chat_id=1, query="Taverncast")
    baseline = [episode(f"ep{n}", title) for n, title in enumerate((
        "Taverncast rolls dice with dwarves under a blood moon",
        "Robots in cinema: metal heroes that steal every scene",
        "Pirate radio stations broadcast from rusty ships offshore",
        "Comets, meteors and telescopes for backyard astronomers"), 1)]
    assert ingest(room, source, baseline) == 4
    with session_scope(engine) as session:
        session.exec(Delivery.__table__.delete())  # type: ignore[attr-defined]
    new = [episode("ep5", "Taverncast visits haunted lighthouses on the Cornish coast"),
           episode("ep6", "Taverncast tastes a dozen craft beers from Belgium")]
    assert ingest(room, source, [*new, *baseline]) == 2
    with session_scope(engine) as session:
        rows = session.exec(select(Item).order_by(Item.id)).all()
        assert [row.guid for row in rows] == [f"ep{n}" for n in range(1, 7)]
        assert len({row.story_id for row in rows}) == 6
        sent = {d.story_id for d in session.exec(select(Delivery)).all()}
        assert sent == {rows[4].story_id, rows[5].story_id}


def test_posts_of_one_page_told_apart_by_fragment_are_different_items(
    engine: Engine, room: Newsroom
) -> None:
    """Scripting News: a day's posts link to the day's page, each with its own fragment, and
    carry no guid; the link with its fragment is their identity."""
    source = make_source(engine)
    page = "http://scripting.test/2017/06/24.html"
    entries = [{"link": f"{page}#a{n}", "summary": text}
               for n, text in ((1, "Podcasting is the open web, and nobody owns it."),
                               (2, "Twitter is a river; blogs are the sea it runs into."),
                               (3, "I still love outliners and I use one every day."))]
    drafts = [normalize(entry, "http://scripting.test/rss.xml") for entry in entries]
    assert all(drafts)
    assert ingest(room, source, [d for d in drafts[:2] if d]) == 2
    assert ingest(room, source, [d for d in drafts if d]) == 1
    assert ingest(room, source, [d for d in drafts if d]) == 0
    with session_scope(engine) as session:
        assert sorted(row.link for row in session.exec(select(Item)).all()) == [
            f"{page}#a1", f"{page}#a2", f"{page}#a3"]


@pytest.mark.parametrize(("ahead", "trusted"), [(timedelta(hours=12), True),
                                                (timedelta(days=3), False), (None, False)])
def test_a_date_far_ahead_or_missing_is_the_time_first_seen_everywhere(
    engine: Engine, room: Newsroom, ahead: timedelta | None, trusted: bool
) -> None:
    """More than a day ahead is a wrong date; none is no date: both become the time the item
    was first seen, and the brief's age judgement uses the date the alert shows."""
    source = make_source(engine)
    when = utcnow() + ahead if ahead is not None else None
    ingest(room, source, [ItemDraft("f1", "http://news.test/f1", "SoftBank dated ahead",
                                      "SoftBank dated ahead.", when)])
    with session_scope(engine) as session:
        item = session.exec(select(Item)).one()
    assert item.published_at == (when if trusted else item.fetched_at)
    assert in_session(engine, story_text, story_id=item.story_id).published == item.published_at


def test_the_offline_core_point_does_not_repeat_the_headline(
    engine: Engine, room: Newsroom
) -> None:
    """An article page's text opens with its <h1>: the brief says the headline once."""
    source = make_source(engine)
    title = "Quokka Selfies & the ‘Smile’ Myth"
    page = (f"{title}\nFrom the BBC: the quokka is not smiling for tourists. It is panting in "
            "the heat. Rangers ask visitors to keep their distance.")
    ingest(room, source, [ItemDraft("q1", "http://news.test/q1", title, page, None)])
    with session_scope(engine) as session:
        story_id = session.exec(select(Item)).one().story_id
    brief = offline_brief(in_session(engine, story_text, story_id=story_id))
    assert brief.core_point.startswith("From the BBC: the quokka is not smiling")
    assert "Myth" not in brief.core_point


def test_a_source_joining_while_an_alert_is_sent_or_edited_is_added_by_an_edit(
    engine: Engine, room: Newsroom
) -> None:
    """The join's ingest flags sent messages for an edit; a message already rendered but not
    yet marked sent, or an edit on its way, would miss it, unless marking them sees it."""
    from locales import catalog
    from news.alerts import render_delivery

    def t(key: str, **values: Any) -> str:
        return catalog.text("en", key, **values)

    title = "SoftBank pledges billions for an AI valley in Hauts-de-France"
    wires = [make_source(engine, f"http://feeds.test/{n}.xml", f"Wire {n}") for n in range(3)]
    for chat_id in (1, 2):
        make_chat(engine, chat_id)
        with session_scope(engine) as session:
            subscriptions.add(session=session, chat_id=chat_id, query="SoftBank")
    ingest(room, wires[0], [draft("w0", title)])
    with session_scope(engine) as session:
        [(story_id, _)] = deliveries.briefs_missing(session=session, now=utcnow())
        written = Written(Brief(headline="h", core_point="c", tracking_level=2), "offline")
        briefs.save(session=session, story_id=story_id, language="en", written=written)
    with session_scope(engine) as session:
        early, late = sorted(claim(session, utcnow()), key=lambda c: c.chat_id)
    def render(claimed: deliveries.Claimed) -> Any:
        return in_session(engine, render_delivery, claimed=claimed, t=t)

    rendered_early = render(early)  # on its way to chat 1...
    assert rendered_early.sources == 1
    ingest(room, wires[1], [draft("w1", title)])  # ...when a second source joins
    rendered_late = render(late)  # chat 2's is rendered after the join
    assert rendered_late.sources == 2 and "Wire 1" in rendered_late.html
    with session_scope(engine) as session:
        for item, alert in ((early, rendered_early), (late, rendered_late)):
            assert deliveries.mark_sent(session=session, delivery_id=item.id, token=item.token,
                                        message_id=item.chat_id, sources=alert.sources)
    with session_scope(engine) as session:
        [edit] = deliveries.claim_edits(session=session, now=utcnow(), lease=LEASE)
        assert edit.chat_id == 1, "chat 2's message lists both: no edit for it"
    shown = render(edit)
    assert shown.sources == 2
    ingest(room, wires[2], [draft("w2", title)])  # a third joins while that edit is sent
    with session_scope(engine) as session:
        deliveries.edited(session=session, delivery_id=edit.id, sources=shown.sources)
    with session_scope(engine) as session:
        again = deliveries.claim_edits(session=session, now=utcnow(), lease=LEASE)
        assert sorted(c.chat_id for c in again) == [1, 2], "both miss the third source"
        for item in again:
            deliveries.edited(session=session, delivery_id=item.id,
                              sources=render(item).sources)
    with session_scope(engine) as session:
        assert deliveries.claim_edits(session=session, now=utcnow(), lease=LEASE) == []

def test_the_story_index_top_up_reads_each_item_once_not_once_per_story(
    engine: Engine,
) -> None:
    """The top-up of the story index (items.signatures_since) finds each story's first item
    in one pass: a min(id) per story made PostgreSQL walk the items from the oldest for every
    story, so a replica's start-up over a busy window scanned the table once per story."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the plan at fault is PostgreSQL's; SQLite has no per-table counters")
    first, second = make_source(engine, "http://feeds.test/a.xml", "A"), \
        make_source(engine, "http://feeds.test/b.xml", "B")
    old, recent = utcnow() - timedelta(hours=1), utcnow()

    def stored(stories: int, per_story: int, created: Callable[[int], datetime]) -> list[int]:
        with session_scope(engine) as session:
            connection = session.connection()
            ids = [story_id for (story_id,) in connection.execute(
                insert(items.STORIES).returning(items.STORIES.c.id,
                                                sort_by_parameter_order=True),
                [{"title": f"t{n}", "signature": f"s{n}", "created_at": created(n)}
                 for n in range(stories)])]
            rows = [{"source_id": second.id if n % 2 else first.id, "source_name": "x",
                     "story_id": story_id, "guid": f"g{story_id}-{k}", "link": "",
                     "title": "t", "summary": "", "content_hash": "", "fetched_at": recent}
                    for n, story_id in enumerate(ids) for k in range(per_story)]
            # the last story also has a later item of the other source: its first one counts
            rows.append({**rows[-1], "guid": f"later{ids[-1]}", "source_id": first.id})
            connection.execute(insert(items.ITEMS), rows)
        return ids

    # Statistics taken early in a first poll (autovacuum's), when stories had many items each;
    # then 400 stories of one item each, the last 40 of them new since the last top-up.
    stored(10, 400, lambda n: old)
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE items, stories")
    count = 400
    story_ids = stored(count, 1, lambda n: recent if n >= count - 40 else old)
    with session_scope(engine) as session:
        def items_read() -> int:
            return int(session.connection().exec_driver_sql(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
                "FROM pg_stat_xact_user_tables WHERE relname = 'items'").scalar() or 0)

        before = items_read()
        loaded = items.signatures_since(session=session, since=old - timedelta(minutes=1),
                                        after=recent - timedelta(seconds=1))
        read = items_read() - before
    assert [row[0] for row in loaded] == story_ids[-40:]
    assert loaded[-1][3] == (second.id if (count - 1) % 2 else first.id)
    assert read <= 3 * (10 * 400 + count), f"{read} item rows read to top up 40 stories"


def held(engine: Engine, chat_id: int, states: list[str], until: datetime) -> list[int]:
    """Rows of the chat claimed and held back, one per state given, as the deliver job does."""
    outbox(engine, chat_id, len(states))
    with session_scope(engine) as session:
        claimed = claim(session, utcnow(), limit=len(states))
        for item, state in zip(claimed, states, strict=True):
            deliveries.hold(session=session, delivery_id=item.id, token=item.token,
                            state=state, until=until if state == "quiet" else None)
    return [item.id for item in claimed]


def states(engine: Engine, ids: list[int]) -> list[tuple[str, datetime]]:
    with session_scope(engine) as session:
        rows = [session.get(Delivery, row_id) for row_id in ids]
        return [(row.state, row.next_attempt_at) for row in rows if row]


def test_changed_settings_reschedule_what_the_chat_holds(engine: Engine) -> None:
    """Quiet hours shortened or ended, another time zone or mode: held alerts are due by the
    settings as they are now, at once, not when the old quiet hours would have ended."""
    # Ahead of the real clock, so that no claim takes these held rows meanwhile.
    now, seven = (datetime(2099, 11, 24, 23, 30, tzinfo=UTC),
                  datetime(2099, 11, 25, 7, 0, tzinfo=UTC))
    quiet, digest = held(engine, -6, ["quiet", "digest"], until=seven)
    tokyo = held(engine, -7, ["quiet"], until=seven)
    others = held(engine, -9, ["quiet", "digest"], until=seven)

    def change(chat_id: int, **fields: str | None) -> list[tuple[str, datetime]]:
        with session_scope(engine) as session:  # holding.update_settings, at a chosen `now`
            chat = session.get(Chat, chat_id)
            for name, value in fields.items():
                setattr(chat, name, value)
            holding.reschedule_held(session=session, chat_id=chat_id, now=now)
        return states(engine, [quiet, digest] if chat_id == -6 else tokyo)

    assert change(-6, quiet_start="22:00", quiet_end="05:00", mode="digest") == [
        ("digest", now), ("digest", now)], "digest-only: all of it for the digest"
    assert change(-6, mode="instant") == [("pending", now), ("pending", now)], (
        "instant again: due now, the deliver job holds them again while it is quiet")
    assert change(-7, quiet_start="22:00", quiet_end="05:00") == [
        ("quiet", seven - timedelta(hours=2))], "shortened: the new end"
    assert change(-7, timezone="Asia/Tokyo") == [("pending", now)], "08:30 in Tokyo: now"
    kept = states(engine, others)
    assert kept[0] == ("quiet", seven) and kept[1][0] == "digest", "other chats keep theirs"


def test_quiet_hours_turned_off_release_held_alerts_but_not_claimed_ones(
    engine: Engine,
) -> None:
    taken_id, free_id, digest_id = held(engine, -8, ["quiet", "quiet", "digest"],
                                        until=utcnow() + timedelta(hours=3))
    with session_scope(engine) as session:
        chat = session.get(Chat, -8)
        assert chat is not None
        chat.mode = "priority"  # the digest row: an alert below level 1
    with session_scope(engine) as session:  # the deliver job takes one at the end of quiet
        [taken] = claim(session, utcnow() + timedelta(hours=4), limit=1)
        assert taken.id == taken_id
    with session_scope(engine) as session:
        holding.update_settings(session=session, chat_id=-8, quiet_start=None, quiet_end=None)
    with session_scope(engine) as session:
        free, mine = session.get(Delivery, free_id), session.get(Delivery, taken_id)
        assert free is not None and free.state == "pending"
        assert free.next_attempt_at <= utcnow()
        assert mine is not None and mine.claim_token == taken.token, "its lease is left alone"
        assert mine.state == "quiet"
    assert states(engine, [digest_id])[0][0] == "digest", "the mode is as it was: kept"
    with session_scope(engine) as session:
        assert [c.id for c in claim(session, utcnow())] == [free_id], "sent on the next tick"
    with session_scope(engine) as session:
        holding.update_settings(session=session, chat_id=-8, mode="priority")
    assert states(engine, [digest_id])[0][0] == "digest", "the same mode again: kept"
    with session_scope(engine) as session:
        holding.update_settings(session=session, chat_id=-8, mode="instant")
    assert states(engine, [digest_id])[0][0] == "pending", "another mode: due now"


def test_a_new_chat_created_by_two_updates_at_once_is_one_row(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused command's notice is handled beside its chat's lane, so two transactions can
    both find a new chat missing and both insert it: the second must read the first's row, not
    fail on the primary key (it did: the notice was lost, seen under load in the suite)."""
    both_looked = threading.Barrier(2, timeout=10)
    real_now = chats.database_now

    def after_both_looked(session: Any) -> datetime:
        both_looked.wait()  # each has found no row before either inserts
        return real_now(session)

    monkeypatch.setattr(chats, "database_now", after_both_looked)
    results: list[object] = []

    def create(language: str) -> None:
        try:
            with session_scope(engine) as session:
                chat = chats.ensure_chat(session=session, chat_id=-5102, chat_type="supergroup",
                                         title="Room 2", language=language)
                results.append(chat.language)
        except Exception as exc:  # the assertion below names it
            results.append(exc)

    threads = [threading.Thread(target=create, args=(language,)) for language in ("en", "fr")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 2 and all(isinstance(r, str) for r in results), results
    assert results[0] == results[1], "both read the one row, with the first one's language"
    with session_scope(engine) as session:
        assert len(session.exec(select(Chat).where(Chat.id == -5102)).all()) == 1
