"""Search providers (news.search): query translation, answers read in their real shapes, and
the sweep over loopback emulators (tests/fakes/search.py) into items, stories and deliveries."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from news.fetch import Fetched, FetchError, FetchPolicy, make_client
from news.guard import Resolver
from news.items import ItemDraft
from news.newsroom import Newsroom
from news.parsing import FeedReader
from news.search import Provider, QueryRefused, SearchRefused, pack
from news.search.gdelt import Gdelt
from news.search.gdelt import drafts as gdelt_drafts
from news.search.googlenews import GoogleNews, unwrapped
from news.search.sweep import Searched, Searching, search
from storage import chats, searches, sources, subscriptions
from storage.db import session_scope
from storage.errors import last_error
from storage.models import Delivery, Item, Source, Story, utcnow
from tests.fakes.search import GDELT_PATH, GOOGLE_PATH, Failure, SearchServer

FIXTURES = Path(__file__).parent / "fixtures" / "search"
LOOPBACK = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
INLINE = FeedReader(0)
GDELT, GOOGLE = Gdelt(), GoogleNews()


# ---------------------------------------------------------------- translation


@pytest.mark.parametrize(("query", "alone", "options"), [
    ("SoftBank", "SoftBank", ("SoftBank",)),
    ('"data center" OR datacenter -crypto', '("data center" OR datacenter) -crypto',
     ('"data center"', "datacenter")),
    ("SoftBank Arm", "SoftBank Arm", ()),
    ("SoftBank -Hawks", "SoftBank -Hawks", ("SoftBank",)),
    ("软银", "软银", ("软银",)),
    ("AT&T", None, None),  # "AT T": too short a phrase for GDELT
    ("Hauts-de-France", '"Hauts de France"', ('"Hauts de France"',)),
    ("AI chips", "chips", ("chips",)),  # GDELT refuses words under 3 letters: left out
    ("AI", None, None),  # nothing left to ask
    ("SoftBank OR AI", None, None),  # an OR without one of its words would be narrower
    ("SoftBank (Arm OR Nvidia)", "SoftBank (Arm OR Nvidia)", ()),
    ("SoftBank -(Hawks baseball)", "SoftBank", ("SoftBank",)),  # an exclusion it can't say
])
def test_gdelt_says_our_queries_as_a_superset(query: str, alone: str | None,
                                              options: tuple[str, ...] | None) -> None:
    translation = GDELT.translate(query)
    if alone is None:
        assert translation is None
        return
    assert translation is not None
    assert (translation.alone, translation.options) == (alone, options)


def test_google_news_keeps_short_words() -> None:
    translation = GOOGLE.translate("AI chips -crypto")
    assert translation is not None and translation.alone == "AI chips -crypto"


def test_queries_that_are_one_word_or_one_or_share_one_request() -> None:
    queries = ["SoftBank", "SoftBank Arm", "Nvidia", '"data center" OR datacenter', "AI"]
    assert pack(GDELT, queries, alone={"Nvidia"})[0] == pack(GDELT, [
        "SoftBank", '"data center" OR datacenter'])[0], "one refused with others goes alone"
    request, skipped = pack(GDELT, queries)
    assert request is not None
    assert request.text == '(SoftBank OR Nvidia OR "data center" OR datacenter)'
    assert request.queries == ("SoftBank", "Nvidia", '"data center" OR datacenter')
    assert skipped == ["AI"]
    alone, _ = pack(GDELT, ["SoftBank Arm", "Nvidia"])
    assert alone is not None and (alone.text, alone.queries) == ("SoftBank Arm", ("SoftBank Arm",))
    single, _ = pack(GDELT, ["SoftBank -Hawks"])
    assert single is not None and single.text == "SoftBank -Hawks", "alone, exclusions kept"


def test_packing_stops_at_the_query_length_limit() -> None:
    queries = [f"company{n:04d}" for n in range(100)]
    request, _ = pack(GDELT, queries)
    assert request is not None
    assert 10 < len(request.queries) < 100
    assert len(request.text) <= 250
    rest, _ = pack(GDELT, queries[len(request.queries):])
    assert rest is not None and rest.queries[0] == queries[len(request.queries)]


def test_gdelt_url_asks_for_an_artlist_since_the_last_search() -> None:
    url = httpx.URL(GDELT.url("(SoftBank OR Nvidia)", timedelta(minutes=40)))
    assert url.params["query"] == "(SoftBank OR Nvidia)"
    assert (url.params["mode"], url.params["format"], url.params["sort"]) == \
        ("artlist", "json", "datedesc")
    assert url.params["timespan"] == "41min"
    assert httpx.URL(GDELT.url("x", None)).params["timespan"] == "1441min"


def test_google_news_url_keeps_the_edition() -> None:
    url = httpx.URL(GOOGLE.url("SoftBank", None))
    assert url.params["q"] == "SoftBank when:1d"
    assert (url.params["hl"], url.params["ceid"]) == ("en-US", "US:en")


# ---------------------------------------------------------------- answers


def test_gdelt_artlist_becomes_drafts() -> None:
    found = gdelt_drafts((FIXTURES / "gdelt_artlist.json").read_bytes())
    assert [d.publisher for d in found] == ["reuters.com", "nikkei.com", "lesechos.fr"]
    first = found[0]
    assert first.title == "SoftBank pledges AI data centers in France"
    assert first.link == first.guid == (
        "https://www.reuters.com/technology/softbank-pledges-ai-data-centers-france-2026-12-07/")
    assert first.published_at == datetime(2026, 12, 7, 10, 15, tzinfo=UTC)
    assert first.snippet, "no text of its own: the article page is fetched for it"
    assert "utm_source" not in found[2].link and "xtor=RSS-1" in found[2].link


@pytest.mark.parametrize("name", ["gdelt_refusal.txt", "gdelt_error.html"])
def test_gdelt_refusals_are_failures_not_results(name: str) -> None:
    with pytest.raises(SearchRefused) as caught:
        gdelt_drafts((FIXTURES / name).read_bytes())
    assert caught.value.code == "search_refused"
    assert "<" not in caught.value.detail
    assert ("5 seconds" if name.endswith(".txt") else "502 Bad Gateway") in caught.value.detail


def test_gdelt_query_errors_are_told_from_its_failures() -> None:
    with pytest.raises(QueryRefused):
        gdelt_drafts(b"The specified phrase is too short.")
    with pytest.raises(SearchRefused) as caught:
        gdelt_drafts((FIXTURES / "gdelt_refusal.txt").read_bytes())
    assert not isinstance(caught.value, QueryRefused), "its rate limit is its own state"


def test_gdelt_nothing_found() -> None:
    assert gdelt_drafts(b"{}") == []


def test_google_news_items_name_their_publisher_and_real_link() -> None:
    body = (FIXTURES / "google_news_search.xml").read_bytes()
    fetched = Fetched(GOOGLE.url("SoftBank", None), 200, body, "application/xml", None, None)
    found = asyncio.run(GOOGLE.drafts(fetched, INLINE))
    old, new = found
    assert old.link == (
        "https://www.reuters.com/technology/softbank-pledges-ai-data-centers-france-2026-12-07/")
    assert old.title == "SoftBank pledges AI data centers in France"
    assert old.publisher == "Reuters (reuters.com)"
    assert old.summary == ""
    assert GOOGLE.article_link(old)
    assert new.link.startswith("https://news.google.com/rss/articles/AU_yqL"), "unreadable"
    assert not GOOGLE.article_link(new), "a consent page is never read as the article"
    assert new.publisher == "Financial Times (ft.com)"


def test_unwrapped_leaves_other_links_alone() -> None:
    assert unwrapped("https://example.com/a") == "https://example.com/a"
    assert unwrapped("https://news.google.com/rss/articles/!!!") == \
        "https://news.google.com/rss/articles/!!!"


# ---------------------------------------------------------------- the sweep


@pytest.fixture
def server() -> Iterator[SearchServer]:
    with SearchServer(gdelt_spacing=0) as fake:
        yield fake


def follow(engine: Engine, chat_id: int, query: str) -> None:
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=chat_id, chat_type="private", title=None,
                          language="en")
        subscriptions.add(session=session, chat_id=chat_id, query=query)


def run_search(room: Newsroom, provider: Provider, *, interval: timedelta = timedelta(0),
               policy: FetchPolicy = LOOPBACK, full_text: bool = True) -> Searched | None:
    """One turn of the provider, made due first (as /pollnow would)."""
    async def turn() -> Searched | None:
        async with httpx.AsyncClient() as client:
            return await search(room, client, policy, provider, interval, full_text=full_text)

    with session_scope(room.engine) as session:
        for row in session.exec(select(Source).where(Source.kind == provider.kind)):
            if not row.paused:
                row.next_poll_at = utcnow()
    return asyncio.run(turn())


def provider_row(engine: Engine, provider: Provider, *others: Provider) -> Source:
    """The provider's source row (and the others', configured along with it)."""
    with session_scope(engine) as session:
        searches.sync(session=session, providers=[
            searches.Configured(one.kind, one.name, one.endpoint, one.spacing_seconds)
            for one in (provider, *others)])
        row = session.exec(select(Source).where(Source.kind == provider.kind)).one()
        session.expunge(row)
        return row


def delivered(engine: Engine) -> list[tuple[int, str]]:
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery.chat_id, Story.title)
                            .join(Story, col(Story.id) == Delivery.story_id)).all()
        return sorted((chat, title) for chat, title in rows)


def test_first_search_records_later_results_alert(room: Newsroom, server: SearchServer) -> None:
    gdelt = Gdelt(server.gdelt_url)
    provider_row(room.engine, gdelt)
    server.publish("SoftBank opened an office last week", "/old")
    follow(room.engine, 1, "SoftBank -Hawks")
    follow(room.engine, 2, "SoftBank -Hawks")  # two chats, one query: one search

    first = run_search(room, gdelt)
    assert first is not None and first.first and first.error is None
    assert first.request is not None and first.request.queries == ("SoftBank -Hawks",)
    assert delivered(room.engine) == [], "what was already there is recorded, not alerted"

    server.publish("SoftBank pledges billions for AI", "/new")
    server.publish("SoftBank Hawks win the pennant", "/hawks")  # the provider's loose match
    server.publish("Cheese prices rise", "/cheese")
    later = run_search(room, gdelt)
    assert later is not None and not later.first and later.new >= 1
    assert delivered(room.engine) == [(1, "SoftBank pledges billions for AI"),
                                      (2, "SoftBank pledges billions for AI")]
    with session_scope(room.engine) as session:
        names = set(session.exec(select(Item.source_name)).all())
    assert names == {"example.test"}, "the publisher's domain is shown as the source"
    queries = [r.params["query"] for r in server.requests(GDELT_PATH)]
    assert queries == ["SoftBank -Hawks", "SoftBank -Hawks"]


def test_new_topics_are_searched_first_newest_first(room: Newsroom, server: SearchServer
                                                    ) -> None:
    gdelt = Gdelt(server.gdelt_url)
    provider_row(room.engine, gdelt)
    follow(room.engine, 1, "SoftBank")
    run_search(room, gdelt)
    follow(room.engine, 1, "Nvidia Arm")  # asked alone: an AND cannot share an OR
    follow(room.engine, 2, "Toyota Honda")
    done = run_search(room, gdelt)
    assert done is not None and done.first
    assert done.request is not None and done.request.queries == ("Toyota Honda",)
    done = run_search(room, gdelt)
    assert done is not None and done.request is not None
    assert done.request.queries == ("Nvidia Arm",)
    done = run_search(room, gdelt)
    assert done is not None and done.request is not None and not done.first
    assert done.request.queries[0] == "SoftBank", "then the one searched longest ago"


def test_queries_wait_their_interval(room: Newsroom, server: SearchServer) -> None:
    gdelt = Gdelt(server.gdelt_url)
    provider_row(room.engine, gdelt)
    follow(room.engine, 1, "SoftBank")
    assert run_search(room, gdelt, interval=timedelta(hours=1)) is not None
    assert run_search(room, gdelt, interval=timedelta(hours=1)) is None
    assert len(server.requests(GDELT_PATH)) == 1


def test_the_provider_spacing_holds_between_turns(room: Newsroom) -> None:
    """GDELT refuses a request sooner than 5 s after the last; the claim never makes one."""
    with SearchServer(gdelt_spacing=5.0) as server:
        gdelt = Gdelt(server.gdelt_url)
        provider_row(room.engine, gdelt)
        follow(room.engine, 1, "SoftBank")
        follow(room.engine, 1, "Nvidia Arm")

        async def two_turns() -> list[Searched | None]:
            async with httpx.AsyncClient() as client:
                return [await search(room, client, LOOPBACK, gdelt, timedelta(0))
                        for _ in range(2)]

        first, second = asyncio.run(two_turns())
        assert first is not None and second is None
        assert [r.refused for r in server.requests(GDELT_PATH)] == [False]


@pytest.mark.parametrize(("failure", "code"), [
    (Failure(429, "Please limit requests to one every 5 seconds"), "http_status"),
    (Failure(200, "Please limit requests to one every 5 seconds"), "search_refused"),
    (Failure(503, "<html><body>Service Unavailable</body></html>", "text/html"), "http_status"),
    (Failure(200, (FIXTURES / "gdelt_error.html").read_text(), "text/html"), "search_refused"),
    (Failure(200, "{}", "application/json", delay=3.0), "timeout"),
])
def test_provider_failures_back_off_and_show_as_health(
    room: Newsroom, server: SearchServer, failure: Failure, code: str
) -> None:
    gdelt = Gdelt(server.gdelt_url)
    row = provider_row(room.engine, gdelt)
    follow(room.engine, 1, "SoftBank")
    server.fail(GDELT_PATH, failure)
    policy = FetchPolicy(allowed_networks=LOOPBACK.allowed_networks, timeout_seconds=1.0)
    done = run_search(room, gdelt, policy=policy)
    assert done is not None and isinstance(done.error, FetchError)
    assert done.error.code == code
    with session_scope(room.engine) as session:
        health = session.get(Source, row.id)
        assert health is not None
        assert health.failing_since is not None and health.failures == 1
        error = last_error(health)
        assert error is not None and error.code == code
        assert health.next_poll_at.replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(seconds=8)
        assert session.exec(select(Item)).all() == []
    again = run_search(room, gdelt)
    assert again is not None and again.error is None and again.first, \
        "the query was not taken as searched: its first search is still to come"
    with session_scope(room.engine) as session:
        health = session.get(Source, row.id)
        assert health is not None and health.failing_since is None


def test_a_paused_provider_is_not_asked(room: Newsroom, server: SearchServer) -> None:
    gdelt = Gdelt(server.gdelt_url)
    row = provider_row(room.engine, gdelt)
    follow(room.engine, 1, "SoftBank")
    with session_scope(room.engine) as session:
        sources.set_paused(session=session, source_id=row.id or 0, paused=True)
    assert run_search(room, gdelt) is None
    assert server.requests(GDELT_PATH) == []


def test_google_news_results_join_the_same_story(room: Newsroom, server: SearchServer) -> None:
    google, gdelt = GoogleNews(server.google_url), Gdelt(server.gdelt_url)
    provider_row(room.engine, google, gdelt)
    follow(room.engine, 1, "SoftBank")
    run_search(room, google)
    run_search(room, gdelt)
    server.publish("SoftBank pledges billions for AI in France", "/a", publisher="Le Monde",
                   domain="lemonde.fr")
    run_search(room, google)
    run_search(room, gdelt)
    assert delivered(room.engine) == [(1, "SoftBank pledges billions for AI in France")]
    with session_scope(room.engine) as session:
        rows = session.exec(select(Item.source_name, Item.link, Item.story_id)).all()
    assert {name for name, _, _ in rows} == {"Le Monde (lemonde.fr)", "lemonde.fr"}
    assert {link for _, link, _ in rows} == {server.url("/a")}, "the real link, unwrapped"
    assert len({story for _, _, story in rows}) == 1, "one story, one alert"
    assert len(server.requests(GOOGLE_PATH)) == 2


def test_poll_now_never_brings_a_provider_inside_its_spacing(room: Newsroom,
                                                              server: SearchServer) -> None:
    """/pollnow cuts a backoff short, never the spacing the provider itself asks for."""
    gdelt = Gdelt(server.gdelt_url)
    row = provider_row(room.engine, gdelt)
    follow(room.engine, 1, "SoftBank")
    server.fail(GDELT_PATH, Failure(503, "busy"))
    run_search(room, gdelt)
    with session_scope(room.engine) as session:
        sources.poll_now(session=session)
        source = session.get(Source, row.id)
        assert source is not None and source.last_polled_at is not None
        assert source.next_poll_at == source.last_polled_at + timedelta(seconds=6)
        assert source.next_poll_at < utcnow() + timedelta(seconds=7), "the backoff is cut"


def test_a_refused_query_costs_its_own_turn_not_the_provider(room: Newsroom,
                                                             server: SearchServer) -> None:
    """GDELT refuses a whole request for one query it cannot run, with a 200 in plain text:
    the queries that shared it are asked alone, and only the refused one loses its turn."""
    gdelt = Gdelt(server.gdelt_url)
    row = provider_row(room.engine, gdelt)
    follow(room.engine, 1, "SoftBank")
    follow(room.engine, 2, "Nvidia")
    refusal = Failure(200, "The specified phrase is too short.", "text/html; charset=utf-8")
    server.fail(GDELT_PATH, refusal)
    alone: set[str] = set()

    async def turn() -> Searched | None:
        with session_scope(room.engine) as session:
            source = session.get(Source, row.id)
            assert source is not None
            source.next_poll_at = utcnow()
        async with httpx.AsyncClient() as client:
            return await search(room, client, LOOPBACK, gdelt, timedelta(0), alone=alone)

    shared = asyncio.run(turn())
    assert shared is not None and shared.request is not None
    assert set(shared.request.queries) == {"SoftBank", "Nvidia"}
    assert shared.error is not None and shared.error.code == "search_refused"
    server.fail(GDELT_PATH, refusal)
    one = asyncio.run(turn())
    assert one is not None and one.request is not None and len(one.request.queries) == 1
    other = asyncio.run(turn())
    assert other is not None and other.request is not None and other.error is None
    assert other.first and other.request.queries != one.request.queries, "it moved on"
    with session_scope(room.engine) as session:
        health = session.get(Source, row.id)
        assert health is not None and health.failures == 0 and health.failing_since is None


def test_a_provider_no_longer_named_leaves_the_sources(room: Newsroom, server: SearchServer
                                                        ) -> None:
    provider_row(room.engine, Gdelt(server.gdelt_url))

    async def sweep() -> list[Searched]:
        async with httpx.AsyncClient() as client:
            return await Searching([], 900).sweep(room, client, LOOPBACK)

    assert asyncio.run(sweep()) == []
    with session_scope(room.engine) as session:
        assert session.exec(select(Source)).all() == []


@dataclass(frozen=True)
class Broken(Gdelt):
    """A provider with a bug in reading its answers."""

    kind: str = "broken"

    async def drafts(self, fetched: Fetched, reader: FeedReader) -> list[ItemDraft]:
        raise RuntimeError("a bug")


def test_one_providers_bug_costs_only_its_turn(room: Newsroom, server: SearchServer) -> None:
    google, broken = GoogleNews(server.google_url), Broken(server.gdelt_url)
    follow(room.engine, 1, "SoftBank")

    async def sweep() -> list[Searched]:
        async with httpx.AsyncClient() as client:
            return await Searching([broken, google], 900).sweep(room, client, LOOPBACK)

    done = asyncio.run(sweep())
    assert [one.source.name for one in done] == ["Google News"]
    assert done[0].error is None


ARTICLE_TEXT = " ".join(["SoftBank will build its first European AI campus in Dunkirk."] * 8)
CONSENT_TEXT = " ".join(["Before you continue, we use cookies and data to deliver our "
                         "services and to show you personalised ads."] * 8)


def page(text: str) -> str:
    return f"<html><body><article><h1>Story</h1><p>{text}</p></article></body></html>"


def test_article_text_is_read_but_never_a_consent_wall(room: Newsroom,
                                                       server: SearchServer) -> None:
    """Results carry no text: their article pages are fetched under the fetch guard. A page
    that turns out to be a consent wall (a redirect to consent.google.com) is not the article."""
    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # every name, consent.google.com included, is the emulator

    google = GoogleNews(server.google_url)
    provider_row(room.engine, google)
    follow(room.engine, 1, "SoftBank")
    asyncio.run(_turn_with(room, google, resolve))
    server.publish("SoftBank picks Dunkirk for its AI campus", "/dunkirk",
                   page=page(ARTICLE_TEXT))
    server.publish("SoftBank shares rise after the campus news", "/walled")
    server.redirect("/walled", f"http://consent.google.com:{server.port}/consent")
    server.page("/consent", page(CONSENT_TEXT))
    asyncio.run(_turn_with(room, google, resolve))
    with session_scope(room.engine) as session:
        texts = dict(session.exec(select(Item.title, Item.summary)).all())
    assert "European AI campus in Dunkirk" in texts["SoftBank picks Dunkirk for its AI campus"]
    assert texts["SoftBank shares rise after the campus news"] == "", "the wall is no text"
    assert server.requests("/consent"), "the wall was reached, and refused as text"


async def _turn_with(room: Newsroom, provider: Provider, resolve: Resolver) -> None:
    with session_scope(room.engine) as session:
        for row in session.exec(select(Source).where(Source.kind == provider.kind)):
            row.next_poll_at = utcnow()
    async with make_client("test", resolver=resolve) as client:
        await search(room, client, LOOPBACK, provider, timedelta(0))


def test_a_turn_holds_its_claim_until_it_is_over(room: Newsroom, server: SearchServer) -> None:
    """Replicas share a provider: while one turn still waits on its answer, past the
    spacing, no other turn starts, and once it is over the next may."""
    quick = Gdelt(server.gdelt_url, spacing_seconds=1)
    provider_row(room.engine, quick)
    follow(room.engine, 1, "SoftBank")
    server.fail(GDELT_PATH, Failure(200, "{}", "application/json", delay=2.5))

    async def overlapping() -> tuple[Searched | None, Searched | None]:
        async with httpx.AsyncClient() as client:
            first = asyncio.create_task(search(room, client, LOOPBACK, quick, timedelta(0)))
            await asyncio.sleep(1.5)  # past the spacing, inside the slow answer
            second = await search(room, client, LOOPBACK, quick, timedelta(0))
            return await first, second

    first, second = asyncio.run(overlapping())
    assert first is not None and first.error is None
    assert second is None, "the claim was still held"
    with session_scope(room.engine) as session:
        source = session.get(Source, provider_row(room.engine, quick).id)
        assert source is not None
        assert source.next_poll_at < utcnow() + timedelta(seconds=1), "released"
    assert len(server.requests(GDELT_PATH)) == 1
