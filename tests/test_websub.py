"""WebSub's parts (issue 24 item 4): which hub a feed names, push signatures, the lease's hold
on polling, and subscribe requests against the hub emulator, refused or unreachable."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from news.feeds import parse_feed
from news.fetch import FetchPolicy
from news.hubs import METHODS, advertised, link_header, sign, signature_method, signed
from news.newsroom import Newsroom
from news.poll import INLINE, poll
from news.websub import PushSettings, note, renew, take_push
from storage import sources, websub
from storage.db import session_scope
from storage.models import Source, WebSub, utcnow
from tests.fakes.feeds import FeedServer, atom, rss
from tests.fakes.hub import HubEmulator
from tests.harness import BASELINE, LOOPBACK, http_client, make_source

HUB, SELF = "https://hub.example/", "https://news.example/feed.xml"


# --- discovery --------------------------------------------------------------------------


@pytest.mark.parametrize("build", [rss, atom], ids=["rss", "atom"])
def test_a_feed_names_its_hub_and_itself(build: object) -> None:
    body = build("News", BASELINE, hub=HUB, self_url=SELF)  # type: ignore[operator]
    feed = parse_feed(body.encode())
    assert feed.hubs == (HUB,) and feed.self_url == SELF
    assert advertised(feed.hubs, feed.self_url, "", "http://fetched.test/f") == (HUB, SELF)


def test_a_feed_without_a_hub_names_none_and_its_topic_is_where_it_was_fetched() -> None:
    feed = parse_feed(rss("News", BASELINE).encode())
    assert feed.hubs == () and feed.self_url == ""
    assert advertised(feed.hubs, feed.self_url, "", "http://fetched.test/f") == (
        "", "http://fetched.test/f")


def test_a_json_feed_names_its_websub_hubs_and_feed_url() -> None:
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J",
                       "feed_url": SELF, "items": [],
                       "hubs": [{"type": "rssCloud", "url": "https://cloud.example/"},
                                {"type": "WebSub", "url": HUB}]}).encode()
    feed = parse_feed(body)
    assert feed.hubs == (HUB,) and feed.self_url == SELF


def test_the_link_header_comes_before_the_feed_and_relative_urls_are_made_absolute() -> None:
    header = '</hub>; rel="hub", <https://news.example/canonical>; rel=self, <x>; rel=next'
    assert link_header(header, "https://news.example/f")["hub"] == ["https://news.example/hub"]
    hub, topic = advertised((HUB,), SELF, header, "https://news.example/f")
    assert (hub, topic) == ("https://news.example/hub", "https://news.example/canonical")


def test_a_hub_that_is_not_http_is_not_one() -> None:
    assert advertised(("javascript:alert(1)", "ftp://hub/"), "", "", "http://a.test/f")[0] == ""
    assert advertised(("ftp://hub/", HUB), "", "", "http://a.test/f")[0] == HUB


# --- signatures -------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_websub_names_signs_and_checks(method: str) -> None:
    body = b"<feed>new</feed>"
    header = sign(body, "k3y", method)
    assert signature_method(header) == method
    assert signed(header, body, "k3y")
    assert not signed(header, body, "another key")
    assert not signed(header, body + b" ", "k3y"), "a tampered body"
    assert signed(header.upper().replace(method.upper(), method), body, "k3y"), "hex in capitals"


@pytest.mark.parametrize("header", ["", "sha256", "md5=" + "0" * 32, "sha256=" + "0" * 63,
                                    "sha256=" + "g" * 64, "sha256:" + "0" * 64])
def test_a_signature_websub_does_not_name_is_none(header: str) -> None:
    assert signature_method(header) is None
    assert not signed(header, b"body", "k3y")


# --- the lease and polling ----------------------------------------------------------------


def _advertise(engine: Engine, source_id: int, hub: str = HUB, topic: str = SELF) -> None:
    with session_scope(engine) as session:
        websub.note(session=session, found=[websub.Advertised(source_id, hub, topic)],
                    poll_interval=3600)


def _row(engine: Engine, source_id: int) -> WebSub:
    with session_scope(engine) as session:
        row = session.get(WebSub, _id(engine, source_id))
        assert row is not None
        session.expunge(row)
        return row


def _id(engine: Engine, source_id: int) -> int:
    with session_scope(engine) as session:
        row = session.exec(select(WebSub).where(WebSub.source_id == source_id)).one()
        return row.id or 0


def _interval_after_claim(engine: Engine, source_id: int) -> float:
    with session_scope(engine) as session:
        source = session.get(Source, source_id)
        assert source is not None
        source.next_poll_at = utcnow() - timedelta(seconds=1)
    with session_scope(engine) as session:
        now = utcnow()
        assert [due.id for due in sources.claim_due(session=session, now=now)] == [source_id]
        source = session.get(Source, source_id)
        assert source is not None
        return (source.next_poll_at - now).total_seconds()


def _claim_and_verify(engine: Engine, source_id: int, lease: int = 600) -> bool:
    with session_scope(engine) as session:
        attempts = websub.claim(session=session, limit=10, wait=timedelta(minutes=5))
    assert [one.source_id for one in attempts] == [source_id]
    with session_scope(engine) as session:
        return websub.verified(session=session, callback=attempts[0].callback, topic=SELF,
                               lease_seconds=lease)


def test_a_verified_lease_polls_at_the_safety_net_interval_and_a_lapse_gives_it_back(
    engine: Engine,
) -> None:
    source = make_source(engine)  # its own interval: 60 s
    _advertise(engine, source.id)
    assert _interval_after_claim(engine, source.id) == 60, "not verified yet: polled as before"
    assert _claim_and_verify(engine, source.id)
    assert _row(engine, source.id).state == websub.ACTIVE
    assert _interval_after_claim(engine, source.id) == 3600
    with session_scope(engine) as session:  # the lease runs out unrenewed
        row = session.get(WebSub, _id(engine, source.id))
        assert row is not None
        row.lease_expires_at = utcnow() - timedelta(seconds=1)
        session.get(Source, source.id).next_poll_at = utcnow() + timedelta(hours=1)  # type: ignore[union-attr]
    with session_scope(engine) as session:
        assert websub.lapse(session=session) == 1
        polled_by = session.get(Source, source.id).next_poll_at  # type: ignore[union-attr]
    assert polled_by <= utcnow() + timedelta(seconds=60), "polled at its own interval again"
    row = _row(engine, source.id)
    assert row.state == websub.LAPSED and row.next_attempt_at <= utcnow()
    assert _interval_after_claim(engine, source.id) == 60


def test_a_verification_is_refused_for_another_topic_or_a_subscription_never_asked_for(
    engine: Engine,
) -> None:
    source = make_source(engine)
    _advertise(engine, source.id)
    row = _row(engine, source.id)
    with session_scope(engine) as session:
        assert not websub.verified(session=session, callback=row.callback, topic=SELF,
                                   lease_seconds=600), "no request is outstanding yet"
    with session_scope(engine) as session:
        websub.claim(session=session, limit=10, wait=timedelta(minutes=5))
    with session_scope(engine) as session:
        assert not websub.verified(session=session, callback=row.callback,
                                   topic="https://elsewhere.example/", lease_seconds=600)
        assert not websub.verified(session=session, callback="unknown", topic=SELF,
                                   lease_seconds=600)
    assert _row(engine, source.id).state == websub.NEW


def test_a_feed_that_stops_naming_its_hub_is_forgotten_and_a_new_hub_starts_afresh(
    engine: Engine,
) -> None:
    source = make_source(engine)
    _advertise(engine, source.id)
    assert _claim_and_verify(engine, source.id)
    first = _row(engine, source.id)
    _advertise(engine, source.id, hub="https://other-hub.example/")
    moved = _row(engine, source.id)
    assert moved.state == websub.NEW and moved.hub_url == "https://other-hub.example/"
    assert moved.secret == first.secret and moved.lease_expires_at is None
    assert _interval_after_claim(engine, source.id) == 60
    _advertise(engine, source.id, hub="")
    with session_scope(engine) as session:
        assert websub.statuses(session=session) == {}


# --- subscribe requests at the hub emulator -----------------------------------------------


def test_a_poll_finds_the_hub_and_the_hub_verifies_what_was_asked(engine: Engine) -> None:
    push = PushSettings("http://127.0.0.1:9/websub", lease_seconds=900, retry_seconds=30)
    with FeedServer() as feeds, HubEmulator() as hub:
        feeds.put("/f.xml", rss("News", BASELINE, hub=hub.url, self_url=feeds.url("/f.xml")))
        source = make_source(engine, feeds.url("/f.xml"))
        room = Newsroom(engine)

        async def run() -> None:
            async with http_client() as client:
                polled = await poll(room, client, LOOPBACK, source, full_text=False)
                assert polled.hub == (hub.url, feeds.url("/f.xml"))
                assert await note(engine, push, [polled]) == 1
                assert await renew(engine, client, LOOPBACK, push) == 1
                assert await renew(engine, client, LOOPBACK, push) == 0, "claimed: not twice"

        asyncio.run(run())
        room.close()
        form = hub.subscribe_requests()[0]
        row = _row(engine, source.id)
        assert form["hub.topic"] == feeds.url("/f.xml")
        assert form["hub.callback"] == f"http://127.0.0.1:9/websub/{row.callback}"
        assert form["hub.secret"] == row.secret and len(row.secret) >= 32
        assert form["hub.lease_seconds"] == "900"
        assert row.state == websub.REQUESTED


@pytest.mark.parametrize("down", [False, True], ids=["refused", "gone"])
def test_a_hub_that_refuses_or_is_gone_leaves_the_source_polled_and_is_tried_later(
    engine: Engine, down: bool,
) -> None:
    push = PushSettings("http://127.0.0.1:9/websub", retry_seconds=30)
    with HubEmulator() as hub:
        hub.status = 503
        if down:
            hub.go_down()
        source = make_source(engine)
        _advertise(engine, source.id, hub=hub.url)

        async def run() -> int:
            async with http_client() as client:
                return await renew(engine, client, LOOPBACK, push)

        for failures in (1, 2):
            with session_scope(engine) as session:  # due again
                row = session.get(WebSub, _id(engine, source.id))
                assert row is not None
                row.next_attempt_at = utcnow()
            assert asyncio.run(run()) == 1
            row = _row(engine, source.id)
            assert row.state == websub.FAILED and row.failures == failures
            assert row.error_code == ("network" if down else "http_status")
            wait = (row.next_attempt_at - utcnow()).total_seconds()
            assert 30 * 2 ** (failures - 1) - 5 < wait <= 30 * 2 ** (failures - 1)
        assert _interval_after_claim(engine, source.id) == 60


def test_a_hub_url_goes_through_the_same_guard_as_feeds(engine: Engine) -> None:
    push = PushSettings("http://127.0.0.1:9/websub")
    source = make_source(engine)
    _advertise(engine, source.id, hub="http://127.0.0.1:9/hub")

    async def run() -> int:
        async with http_client() as client:
            return await renew(engine, client, FetchPolicy(), push)  # no network allowed

    assert asyncio.run(run()) == 1
    assert _row(engine, source.id).error_code == "blocked_address"


def test_without_a_webhook_every_subscription_is_dropped_and_polling_restored(
    engine: Engine,
) -> None:
    source = make_source(engine)
    _advertise(engine, source.id)
    assert _claim_and_verify(engine, source.id)
    with session_scope(engine) as session:
        assert websub.forget_all(session=session) == 1
    assert _interval_after_claim(engine, source.id) == 60


def test_a_pushed_entry_is_one_item_however_often_it_is_pushed_or_polled(
    engine: Engine,
) -> None:
    new_entry = {"title": "Quasar found in a teacup", "guid": "q1", "link": "http://news.test/q1",
                 "description": "A long-lost quasar turned up in a teacup in Lille."}
    with FeedServer() as feeds:
        feeds.put("/f.xml", rss("News", BASELINE))
        source = make_source(engine, feeds.url("/f.xml"))
        body = rss("News", [new_entry, *BASELINE]).encode()
        target = websub.Target(0, source.id, source.url, "k3y", source.name, source.url, False)
        room = Newsroom(engine)

        async def run() -> None:
            async with http_client() as client:
                assert await take_push(room, client, LOOPBACK, INLINE, target, body,
                                       full_text=False) == 3, "a first sight: every entry"
                assert await take_push(room, client, LOOPBACK, INLINE, target, body,
                                       full_text=False) == 0, "the hub pushes it again"
                feeds.put("/f.xml", body)
                assert (await poll(room, client, LOOPBACK, source, full_text=False)).new == 0

        asyncio.run(run())
        room.close()
