"""Several bot processes on one PostgreSQL (issue 14.2): every job gives the answer one process
would. Each replica here is what bot.py builds for a process (its own engine, Newsroom and
Services), run in a thread of the test; their only shared state is the database."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

import openai
import pytest
from sqlalchemy import Engine, delete, func, text, update
from sqlmodel import select

import storage.models
from jobs import deliver, digest
from news import following, holding
from news.briefing import write_missing_briefs
from news.briefs import BriefWriter
from news.fetch import Fetched
from news.ingest import Outcome, ingest, ingest_all
from news.items import ItemDraft
from news.newsroom import Newsroom
from storage import briefs, chats, deliveries, items, locks, subscriptions
from storage.db import make_engine, migrate, session_scope
from storage.locks import Keys, Role
from storage.models import Brief, BriefClaim, Chat, Delivery, Item, Source, Story, utcnow
from storage.sources import DueSource
from tests.fakes.llm import LlmServer, Reply
from tests.fakes.telegram import BotApiEmulator
from tests.harness import brief_for, named_source, queue_stories, run_job, subscribe, wait_until

T = TypeVar("T")
EVENT = ("SoftBank pledges billions for an AI valley in Hauts-de-France",
         "SoftBank has pledged a major investment in Hauts-de-France.",
         "Hauts-de-France: SoftBank pledges billions to build AI valley",
         "The Japanese group SoftBank pledged a huge investment in the Hauts-de-France region.")


@pytest.fixture
def postgres(database_url: str) -> str:
    """Several processes share a database only on PostgreSQL (SQLite refuses a second one)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas run on PostgreSQL only")
    return database_url


@pytest.fixture
def engines(postgres: str) -> Iterator[Callable[[], Engine]]:
    """A migrated database, and an engine of its own for each replica the test starts."""
    made: list[Engine] = []

    def engine() -> Engine:
        made.append(make_engine(postgres))
        return made[-1]

    migrate(engine())
    yield engine
    for one in made:
        one.dispose()


def in_threads(*work: Callable[[], T]) -> list[T]:
    """Run each callable in a thread of its own at once; their results, or the first error."""
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def run(number: int, job: Callable[[], T]) -> None:
        try:
            results[number] = job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, job)) for n, job in enumerate(work)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a replica hung"
    if errors:
        raise errors[0]
    return results


def count(engine: Engine, model: Any) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_one_event_ingested_by_two_replicas_at_the_same_moment_is_one_story(
    engines: Callable[[], Engine], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two sources report one event and two replicas poll them at once. Both replicas have
    placed their item (against indexes that lack the other's story) before either stores it,
    unless the story lock makes the second wait for the first to commit: the barrier waits
    for both, and gives up after a while when only one can get there."""
    first, second = engines(), engines()
    wire, paper = named_source(first, "wire"), named_source(first, "paper")
    subscribe(first, 1, "SoftBank")
    barrier = threading.Barrier(2)
    real_store = items.store

    def store(**kwargs: Any) -> items.Stored:
        with contextlib.suppress(threading.BrokenBarrierError):  # the other waits its turn
            barrier.wait(timeout=3)
        return real_store(**kwargs)

    monkeypatch.setattr(items, "store", store)
    reports = (ItemDraft("w1", "http://wire.test/1", EVENT[0], EVENT[1], None),
               ItemDraft("p1", "http://paper.test/1", EVENT[2], EVENT[3], None))
    rooms = Newsroom(first), Newsroom(second)
    new = in_threads(lambda: ingest(rooms[0], wire, [reports[0]]),
                     lambda: ingest(rooms[1], paper, [reports[1]]))
    assert sorted(new) == [0, 1], "one replica made the story, the other joined it"
    assert count(first, Story) == 1 and count(first, Item) == 2
    assert count(first, Delivery) == 1, "one alert for the event"


def test_a_story_made_by_another_replica_is_joined_and_one_gone_is_not(
    engines: Callable[[], Engine],
) -> None:
    """The index of a replica is never the last word: it learns the stories another replica
    stored, and a story that left the database (deleted by another process) is not joined."""
    first, second = engines(), engines()
    wire, paper, radio = (named_source(first, name) for name in ("wire", "paper", "radio"))
    rooms = Newsroom(first), Newsroom(second)
    assert ingest(rooms[0], wire, [ItemDraft("w1", "http://wire.test/1", *EVENT[:2], None)]) == 1
    assert ingest(rooms[1], paper, [ItemDraft("p1", "http://paper.test/1", *EVENT[2:], None)]) == 0
    with session_scope(first) as session:
        session.execute(delete(Item))
        session.execute(delete(Story))
    again = ItemDraft("r1", "http://radio.test/1", *EVENT[2:], None)
    assert ingest(rooms[0], radio, [again]) == 1, "the deleted story is not joined"
    assert count(first, Story) == 1 and count(first, Item) == 1


def test_polls_with_nothing_new_do_not_wait_for_another_replicas_ingest(
    engines: Callable[[], Engine],
) -> None:
    """The replicas take turns (the story lock) only for entries never stored. In one batch, a
    feed that changed without a new entry is recorded while another replica holds the lock;
    the feed with a new entry waits its turn, and is stored with its own success after it."""
    first, second = engines(), engines()
    wire, paper = named_source(first, "wire"), named_source(first, "paper")
    seen = ItemDraft("w1", "http://wire.test/1", *EVENT[:2], None)
    assert ingest(Newsroom(first), wire, [seen]) == 1
    news = ItemDraft("p1", "http://paper.test/1", "Nokia opens a plant in Tampere",
                     "Nokia opened a plant in Tampere on Monday.", None)

    def validators(source: DueSource) -> str | None:
        with session_scope(first) as session:
            row = session.get(Source, source.id)
            return row.etag if row is not None else None

    def fetched(source: DueSource) -> Fetched:
        return Fetched(source.url, 200, b"", "application/rss+xml", f'"{source.name}-2"', None)

    batch = [Outcome(wire, [seen], fetched(wire)), Outcome(paper, [news], fetched(paper))]
    result: list[list[int]] = []
    with session_scope(second) as other:  # another replica placing its stories
        locks.xact_lock(other, Keys.of(other.get_bind()).stories)
        storing = threading.Thread(target=lambda: result.append(
            ingest_all(Newsroom(first), batch)))
        storing.start()
        wait_until(lambda: validators(wire) == '"wire-2"', timeout=30)
        assert validators(paper) is None and count(first, Item) == 1, "stored without a turn"
    storing.join(timeout=30)
    assert result == [[0, 1]]
    assert validators(paper) == '"paper-2"' and count(first, Item) == 2


def write_briefs(engine: Engine, llm: LlmServer) -> int:
    """One round of the brief job, as a replica runs it, with a writer of its own."""

    async def run() -> int:
        client = openai.AsyncOpenAI(api_key="test-key", base_url=llm.base_url, max_retries=0)
        try:
            return (await write_missing_briefs(engine, BriefWriter(client, "tiny"))).written
        finally:
            await client.close()

    return asyncio.run(run())


def test_two_replicas_writing_briefs_at_once_ask_the_llm_once_per_story_and_language(
    engines: Callable[[], Engine],
) -> None:
    first, second = engines(), engines()
    titles = ["SoftBank buys a chip maker in Oregon", "SoftBank sells its robot arm to Sony",
              "SoftBank opens a solar farm near Osaka"]
    queue_stories(first, titles)
    with LlmServer() as llm:
        # slow answers: both rounds look for missing briefs before either has stored one
        llm.responder = lambda request: Reply(brief_for(request), delay=0.5)
        written = in_threads(lambda: write_briefs(first, llm), lambda: write_briefs(second, llm))
        assert llm.calls == len(titles) * 2, "one call per story and language"
    assert sum(written) == len(titles) * 2
    assert count(first, Brief) == len(titles) * 2
    assert count(first, BriefClaim) == 0, "claims end with their brief"


def test_a_brief_claim_lapses_when_its_writer_dies(database_url: str, engine: Engine) -> None:
    """A claimed brief is no one else's until its lease ends; then another writer takes it."""
    queue_stories(engine, ["SoftBank buys a chip maker in Oregon"])
    now = utcnow()
    with session_scope(engine) as session:
        story_id = session.exec(select(Story.id)).one()
        assert story_id is not None
        assert briefs.claim(session=session, story_id=story_id, language="en", now=now,
                            lease=timedelta(minutes=5))
    with session_scope(engine) as session:
        assert not briefs.claim(session=session, story_id=story_id, language="en",
                                now=now + timedelta(minutes=4), lease=timedelta(minutes=5))
        assert deliveries.briefs_missing(session=session, now=now) == [(story_id, "zh")]
    with session_scope(engine) as session:
        assert briefs.claim(session=session, story_id=story_id, language="en",
                            now=now + timedelta(minutes=6), lease=timedelta(minutes=5))


def test_a_topic_edited_on_another_replica_reaches_this_replicas_matcher(
    engines: Callable[[], Engine], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replica two, whose clock runs ten minutes behind, rewrites a topic (an alias added):
    replica one's cached matcher must notice, though the edit is older than the newest topic
    (SoftBank), and counts and ids did not change."""
    first, second = engines(), engines()
    wire = named_source(first, "wire")
    subscribe(first, 1, "Nvidia")
    subscribe(first, 1, "SoftBank")
    room = Newsroom(first)
    assert ingest(room, wire, [ItemDraft("n1", "http://wire.test/n1", "Nvidia earnings beat "
                                         "every forecast", "Chips sold out.", None)]) == 1
    assert count(first, Delivery) == 1
    behind = utcnow() - timedelta(minutes=10)
    monkeypatch.setattr(storage.models, "process_clock", lambda: behind)
    with session_scope(second) as session:
        topic = following.find(session=session, chat_id=1, query="Nvidia")
        assert topic is not None
        assert subscriptions.change_query(session=session, subscription=topic,
                                          query="Nvidia OR Toyota")
    assert ingest(room, wire, [ItemDraft("t1", "http://wire.test/t1", "Toyota recalls a "
                                         "million hybrid cars", "Brakes again.", None)]) == 1
    assert count(first, Delivery) == 2, "the edited topic matched on replica one"
    with session_scope(second) as session:
        assert following.remove(session=session, chat_id=1, query="Nvidia OR Toyota")
        assert subscriptions.add(session=session, chat_id=1, query="Honda") is not None
    assert ingest(room, wire, [ItemDraft("h1", "http://wire.test/h1", "Honda unveils a small "
                                         "electric kei truck", "Cheap too.", None)]) == 1
    assert count(first, Delivery) == 3, "a topic removed and one added are seen too"


def hold_for_digest(engine: Engine, chat_id: int) -> None:
    """A chat in digest mode, never sent a digest, with two stories held for it."""
    subscribe(engine, chat_id, "SoftBank")
    with session_scope(engine) as session:
        holding.update_settings(session=session, chat_id=chat_id, mode="digest")
        chat = chats.get(session=session, chat_id=chat_id)
        assert chat is not None
        chat.created_at = utcnow() - timedelta(days=2)
    source = named_source(engine, "wire")
    assert ingest(Newsroom(engine), source, [
        ItemDraft("g1", "http://wire.test/1", "SoftBank buys a chip maker in Oregon", "x", None),
        ItemDraft("g2", "http://wire.test/2", "SoftBank sells its robot arm to Sony", "y", None),
    ]) == 2
    with session_scope(engine) as session:
        session.execute(update(Delivery).values(state="digest"))


def test_two_replicas_running_the_digest_job_at_once_send_one_digest(
    engines: Callable[[], Engine], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both replicas find the digest due before either sends it (the barrier), as when the
    sending role moves while a digest goes out: one sends."""
    first, second = engines(), engines()
    with BotApiEmulator() as telegram:
        reader = telegram.user(5, "Ada")
        telegram.private_chat(reader)
        hold_for_digest(first, 5)
        barrier = threading.Barrier(2)
        real = deliveries.chats_with_held

        def chats_with_held(**kwargs: Any) -> list[Chat]:
            found = real(**kwargs)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=3)
            return found

        monkeypatch.setattr(deliveries, "chats_with_held", chats_with_held)
        both = SimpleNamespace(local=False, held=lambda: True)  # each thinks it holds the role
        in_threads(lambda: run_job(digest.run, first, telegram, sending=both),
                   lambda: run_job(digest.run, second, telegram, sending=both))
        sent = telegram.messages(5)
        assert len(sent) == 1, [message.text for message in sent]
        assert "Oregon" in sent[0].text and "Sony" in sent[0].text
        assert telegram.rejected == []
    with session_scope(first) as session:
        states = session.exec(select(Delivery.state)).all()
        assert states == ["digested", "digested"]


def test_only_the_replica_holding_the_sending_role_sends_and_the_role_moves_when_it_dies(
    engines: Callable[[], Engine],
) -> None:
    first, second = engines(), engines()
    queue_stories(first, ["SoftBank buys a chip maker in Oregon"])
    asyncio.run(write_missing_briefs(first, BriefWriter(None, "offline")))
    roles = Role(first, Keys.of(first).sending, "sending"), \
        Role(second, Keys.of(second).sending, "sending")
    assert roles[0].held() and not roles[1].held(), "one holder"
    with BotApiEmulator() as telegram:
        for user_id in (1, 2):
            telegram.private_chat(telegram.user(user_id, "Ada"))
        run_job(deliver.run, second, telegram, sending=roles[1])
        assert telegram.messages(1) == [] and telegram.messages(2) == [], "no role, no sends"
        assert roles[0].connection is not None
        roles[0].connection.invalidate()  # the holder dies: its connection goes with it
        for _ in range(100):
            run_job(deliver.run, second, telegram, sending=roles[1])
            if telegram.messages(1) and telegram.messages(2):
                break
        assert len(telegram.messages(1)) == 1 and len(telegram.messages(2)) == 1
        assert roles[1].held() and not roles[0].held()
        assert telegram.rejected == []
    roles[1].release()
    roles[0].release()


def lock_taken(engine: Engine, key: int) -> bool:
    """Whether any session holds the advisory lock `key`."""
    with engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 1 AND (classid::bigint << 32) | objid::bigint = :key)"),
            {"key": key}).scalar())


def test_a_new_sender_waits_a_groups_period_before_it_sends(
    engines: Callable[[], Engine],
) -> None:
    """The holder that died may have sent to any chat just before: a new holder that sent
    at once could break a chat's 1/s or a group's 20/min (the replica test saw 429s)."""
    now = [100.0]
    key = Keys().sending  # every replica of one deployment computes the same key
    watcher = engines()
    first = Role(engines(), key, "sending", settle=3.05, clock=lambda: now[0])
    second = Role(engines(), key, "sending", settle=3.05, clock=lambda: now[0])
    assert not first.held(), "taken, but not yet to send on"
    assert not second.held() and first.connection is not None, "the role is taken all the same"
    now[0] += 3.1
    assert first.held() and not second.held()
    assert first.connection is not None
    first.connection.invalidate()  # the holder dies
    # The server frees its lock once it notices the connection closed, not at once.
    wait_until(lambda: not lock_taken(watcher, key))
    assert not second.held(), "the new holder waits too"
    now[0] += 3.1
    assert second.held()
    second.release()
    first.release()


def test_a_brief_claim_lasts_as_long_as_one_write_can() -> None:
    """A killed writer's briefs are free again once its LLM calls would have timed out, not
    after a fixed five minutes."""
    import openai

    from news.briefs import BriefWriter

    client = openai.AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9", timeout=7.0)
    writer = BriefWriter(client, "m", retry_delay=2.0)
    assert writer.longest_write.total_seconds() == 2 * 7.0 + 2.0 + 15
    assert BriefWriter(None, "m").longest_write.total_seconds() < 60, "offline briefs are quick"
