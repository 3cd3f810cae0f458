"""WebSub's parts (issue 24 item 4): which hub a feed names, push signatures, the lease's hold
on polling, and subscribe requests against the hub emulator, refused or unreachable; and a
dropped subscription's unsubscribe request, retried a few times, verified at its callback."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

import pytest
import tornado.httpserver
import tornado.web
from sqlalchemy import Engine
from sqlmodel import col, select

import hub_callback
from news.feeds import parse_feed
from news.fetch import FetchPolicy
from news.hubs import METHODS, advertised, link_header, sign, signature_method, signed
from news.newsroom import Newsroom
from news.poll import INLINE, poll
from news.websub import UNSUBSCRIBE_ATTEMPTS, PushSettings, note, renew, take_push
from services import Services
from storage import sources, websub
from storage.db import session_scope
from storage.models import Source, WebSub, WebSubRetired, utcnow
from tests.fakes.feeds import FeedServer, atom, rss
from tests.fakes.hub import STALL, HubEmulator
from tests.fakes.hub import push as deliver
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


# --- unsubscribing what we dropped ---------------------------------------------------------


def _retired_rows(engine: Engine) -> list[WebSubRetired]:
    with session_scope(engine) as session:
        rows = list(session.exec(select(WebSubRetired).order_by(col(WebSubRetired.id))).all())
        for row in rows:
            session.expunge(row)
        return rows


def _remove(engine: Engine, source_id: int, keep: timedelta | None) -> None:
    with session_scope(engine) as session:
        assert sources.remove(session=session, source_id=source_id,
                              unsubscribe_keep=keep) is not None


def test_a_removed_source_is_retired_and_only_its_unsubscription_is_agreed_to(
    engine: Engine,
) -> None:
    active = make_source(engine, "http://feeds.test/active.xml")
    _advertise(engine, active.id)
    assert _claim_and_verify(engine, active.id, lease=600)
    callback = _row(engine, active.id).callback
    never_asked = make_source(engine, "http://feeds.test/new.xml")
    _advertise(engine, never_asked.id, topic="https://news.example/new.xml")
    long_polling = make_source(engine, "http://feeds.test/lp.xml")

    _remove(engine, active.id, timedelta(seconds=900))
    _remove(engine, never_asked.id, timedelta(seconds=900))  # the hub holds nothing of it
    _remove(engine, long_polling.id, None)
    with session_scope(engine) as session:
        assert websub.statuses(session=session) == {}, "subscriptions go with their sources"
    [retired] = _retired_rows(engine)
    assert (retired.callback, retired.hub_url, retired.topic_url) == (callback, HUB, SELF)
    assert retired.state == websub.PENDING and retired.next_attempt_at <= utcnow()
    kept = (retired.keep_until - utcnow()).total_seconds()
    assert 890 < kept <= 900, "kept as long as a lease the hub may have granted"

    with session_scope(engine) as session:
        assert isinstance(websub.addressee(session=session, callback=callback), websub.Retired)
        assert not websub.verified(session=session, callback=callback, topic=SELF,
                                   lease_seconds=600), "never subscribed again"
        assert not websub.unsubscribe_verified(session=session, callback=callback,
                                               topic="https://elsewhere.example/")
        assert not websub.unsubscribe_verified(session=session, callback="unknown", topic=SELF)
    assert _retired_rows(engine)[0].state == websub.PENDING
    with session_scope(engine) as session:
        assert websub.unsubscribe_verified(session=session, callback=callback, topic=SELF)
    retired = _retired_rows(engine)[0]
    assert retired.state == websub.VERIFIED
    assert retired.keep_until <= utcnow() + websub.VERIFIED_GRACE
    with session_scope(engine) as session:
        assert websub.claim_unsubscribes(session=session, limit=10, wait=timedelta(minutes=5),
                                         attempts=5) == [], "verified: nothing more to send"
        assert websub.purge_retired(session=session) == 0, "late pushes are still acknowledged"
        session.get(WebSubRetired, retired.id).keep_until = utcnow()  # type: ignore[union-attr]
    with session_scope(engine) as session:
        assert websub.purge_retired(session=session) == 1
        assert websub.addressee(session=session, callback=callback) is None


def test_a_feed_that_moves_or_drops_its_hub_has_the_old_subscription_retired(
    engine: Engine,
) -> None:
    source = make_source(engine)
    keep = timedelta(hours=1)
    _advertise(engine, source.id)
    assert _claim_and_verify(engine, source.id)
    first = _row(engine, source.id)
    with session_scope(engine) as session:
        websub.note(session=session, poll_interval=3600, keep=keep,
                    found=[websub.Advertised(source.id, "https://other-hub.example/", SELF)])
    moved = _row(engine, source.id)
    assert moved.callback != first.callback, "the old hub's requests never reach the new one"
    assert [(r.callback, r.hub_url) for r in _retired_rows(engine)] == [(first.callback, HUB)]
    with session_scope(engine) as session:  # asked at the new hub, then the feed names none
        websub.claim(session=session, limit=10, wait=timedelta(minutes=5))
    with session_scope(engine) as session:
        websub.note(session=session, poll_interval=3600, keep=keep,
                    found=[websub.Advertised(source.id, "", SELF)])
    assert [(r.callback, r.hub_url) for r in _retired_rows(engine)] == [
        (first.callback, HUB), (moved.callback, "https://other-hub.example/")]


def _due_now(engine: Engine) -> None:
    with session_scope(engine) as session:
        for row in session.exec(select(WebSubRetired)).all():
            row.next_attempt_at = utcnow()


def test_an_unsubscribe_the_hub_fails_is_retried_with_backoff_and_then_given_up(
    engine: Engine,
) -> None:
    """5xx, a hang past the timeout, a refused connection: each is tried again after a wait
    that doubles, UNSUBSCRIBE_ATTEMPTS times in all, then no more."""
    push = PushSettings("http://127.0.0.1:9/websub", retry_seconds=30)
    policy = replace(LOOPBACK, timeout_seconds=0.5)
    with HubEmulator() as hub:
        hub.stall_seconds = 5
        hub.fail_next(503, STALL, 500, 502)
        source = make_source(engine)
        _advertise(engine, source.id, hub=hub.url, topic=SELF)
        assert _claim_and_verify(engine, source.id)
        callback = _row(engine, source.id).callback
        _remove(engine, source.id, timedelta(hours=1))

        async def run() -> int:
            async with http_client() as client:
                return await renew(engine, client, policy, push)

        for attempt, code in enumerate(["http_status", "timeout", "http_status", "http_status",
                                        "network"], start=1):
            if attempt == UNSUBSCRIBE_ATTEMPTS:
                hub.go_down()
            _due_now(engine)
            assert asyncio.run(run()) == 1
            [row] = _retired_rows(engine)
            assert row.attempts == attempt and row.error_code == code
            if attempt < UNSUBSCRIBE_ATTEMPTS:
                assert row.state == websub.PENDING
                wait = (row.next_attempt_at - utcnow()).total_seconds()
                assert 30 * 2 ** (attempt - 1) - 5 < wait <= 30 * 2 ** (attempt - 1)
        assert UNSUBSCRIBE_ATTEMPTS == 5
        assert row.state == websub.GIVEN_UP
        _due_now(engine)
        assert asyncio.run(run()) == 0, "given up: the lease runs out on its own"
        forms = hub.unsubscribe_requests(SELF)
        assert len(forms) == UNSUBSCRIBE_ATTEMPTS - 1, "the last found the hub gone"
        assert forms[0] == {"hub.mode": "unsubscribe", "hub.topic": SELF,
                            "hub.callback": f"http://127.0.0.1:9/websub/{callback}"}
        with session_scope(engine) as session:  # still acknowledged until the lease ends
            assert isinstance(websub.addressee(session=session, callback=callback),
                              websub.Retired)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Waits on a positive signal while the event loop serves the callbacks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_the_hub_verifies_an_unsubscribe_at_its_callback_and_pushes_no_more(
    engine: Engine,
) -> None:
    """The callbacks served as the bot serves them (hub_callback), with only the database
    behind them: the hub subscribes, the source is removed, the first unsubscribe request
    meets a 503, the second is verified, and what is pushed meanwhile is acknowledged."""
    port = _free_port()
    push = PushSettings(f"http://127.0.0.1:{port}/websub", retry_seconds=1)
    svc = cast(Services, SimpleNamespace(engine=engine))
    with HubEmulator() as hub:
        source = make_source(engine)
        _advertise(engine, source.id, hub=hub.url, topic=SELF)

        async def run() -> None:
            server = tornado.httpserver.HTTPServer(
                tornado.web.Application(hub_callback.routes(svc, push)))
            server.listen(port, "127.0.0.1")
            try:
                async with http_client() as client:
                    assert await renew(engine, client, LOOPBACK, push) == 1
                    await _until(lambda: hub.subscriber(SELF) is not None)
                    callback = hub.subscriber(SELF).callback  # type: ignore[union-attr]
                    await asyncio.to_thread(_remove, engine, source.id, timedelta(hours=1))
                    hub.fail_next(503)
                    assert await renew(engine, client, LOOPBACK, push) == 1
                    assert _retired_rows(engine)[0].state == websub.PENDING
                    body = rss("News", BASELINE).encode()
                    assert await asyncio.to_thread(push_to, callback, body) == 204
                    assert await asyncio.to_thread(hub.publish, SELF, body) == [204], \
                        "still pushed: acknowledged, so the hub does not send it again"
                    _due_now(engine)
                    assert await renew(engine, client, LOOPBACK, push) == 1
                    await _until(lambda: hub.subscriber(SELF) is None)
                    [check] = [v for v in hub.verifications if v.mode == "unsubscribe"]
                    assert (check.callback, check.topic, check.echoed) == (callback, SELF, True)
                    assert _retired_rows(engine)[0].state == websub.VERIFIED
                    assert await asyncio.to_thread(hub.publish, SELF, body) == []
                    _due_now(engine)
                    assert await renew(engine, client, LOOPBACK, push) == 0
            finally:
                server.stop()

        def push_to(callback: str, body: bytes) -> int:
            return deliver(callback, body, None, "application/rss+xml", SELF, hub.url)

        asyncio.run(run())
        assert len(hub.unsubscribe_requests(SELF)) == 2
