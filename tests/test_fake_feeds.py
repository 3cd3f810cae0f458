"""Checks the fake feed server and builders, so fetcher tests can trust them."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any

import feedparser
import httpx
import pytest

from tests.fakes.feeds import FeedServer, atom, html_page, rss
from tests.harness import wait_until

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
ITEMS: list[dict[str, Any]] = [
    {
        "title": "Rates <up> & away",
        "link": "http://news.test/a?x=1&y=2",
        "guid": "id-1",
        "description": "Body & <b>soul</b>",
        "pub_date": WHEN,
    },
    {"title": "Second", "link": "http://news.test/b", "guid": "id-2"},
]


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """A fresh fake per test so hit counts never leak between tests."""
    with FeedServer() as srv:
        yield srv


@pytest.mark.asyncio
async def test_conditional_get_with_etag(server: FeedServer) -> None:
    server.put("/feed.xml", rss("News", ITEMS))
    async with httpx.AsyncClient() as http:
        first = await http.get(server.url("/feed.xml"))
        etag = first.headers["etag"]
        assert etag == server.etag("/feed.xml")
        second = await http.get(server.url("/feed.xml"), headers={"If-None-Match": etag})
        server.put("/feed.xml", rss("News", ITEMS[:1]))
        third = await http.get(server.url("/feed.xml"), headers={"If-None-Match": etag})
    assert first.status_code == 200 and first.headers["content-type"].startswith("application/rss")
    assert len(etag) > 2 and etag.startswith('"') and etag.endswith('"')
    assert second.status_code == 304 and second.content == b""
    assert third.status_code == 200 and third.headers["etag"] != etag
    assert len(feedparser.parse(third.content).entries) == 1
    assert server.hits("/feed.xml") == 3
    path, headers = server.requests[1]
    assert path == "/feed.xml" and headers["if-none-match"] == etag


def test_if_modified_since(server: FeedServer) -> None:
    server.put("feed", "x", last_modified=WHEN)
    with httpx.Client() as http:
        base = http.get(server.url("/feed"))
        same = http.get(
            server.url("/feed"), headers={"If-Modified-Since": base.headers["last-modified"]}
        )
        older = formatdate((WHEN - timedelta(seconds=1)).timestamp(), usegmt=True)
        stale = http.get(server.url("/feed"), headers={"If-Modified-Since": older})
        wrong_tag = http.get(
            server.url("/feed"),
            headers={"If-None-Match": '"nope"', "If-Modified-Since": base.headers["last-modified"]},
        )
    assert base.headers["last-modified"] == "Mon, 06 May 2024 07:08:09 GMT"
    assert (same.status_code, stale.status_code, wrong_tag.status_code) == (304, 200, 200)


def test_unknown_path_404_and_status_headers(server: FeedServer) -> None:
    server.put("/gone", "bye", content_type="text/plain", status=410, headers={"X-Why": "old"})
    with httpx.Client() as http:
        missing = http.get(server.url("/missing"))
        gone = http.get(server.url("/gone"), headers={"If-None-Match": server.etag("/gone")})
    assert missing.status_code == 404 and server.hits("/missing") == 1
    assert gone.status_code == 410 and gone.text == "bye" and gone.headers["x-why"] == "old"


def test_delay_makes_client_time_out(server: FeedServer) -> None:
    server.put("/slow", "late", delay=2.0)
    with httpx.Client(timeout=0.2) as http, pytest.raises(httpx.ReadTimeout):
        http.get(server.url("/slow"))
    assert server.hits("/slow") == 1
    assert server.answers("/slow") == 0  # the client gave up before the answer came


def test_answers_and_peak_in_flight_count_what_the_server_did(server: FeedServer) -> None:
    server.put("/held", "late", delay=1.0)  # long enough that all three overlap
    server.put("/now", "here")
    with httpx.Client() as http:
        assert http.get(server.url("/now")).text == "here"
        assert (server.answers("/now"), server.peak_in_flight) == (1, 1)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            texts = list(pool.map(lambda _: http.get(server.url("/held")).text, range(3)))
    assert texts == ["late"] * 3
    assert server.answers("/held") == 3 and server.answers("/missing") == 0
    assert server.peak_in_flight == 3
    # the client has its answer before the server's thread counts the request done
    wait_until(lambda: server.in_flight == 0)


def test_hold_keeps_the_answer_back_until_released(server: FeedServer) -> None:
    release = threading.Event()
    server.put("/held", "at last", hold=release)
    with concurrent.futures.ThreadPoolExecutor(1) as pool, httpx.Client(timeout=30) as http:
        pending = pool.submit(lambda: http.get(server.url("/held")).text)
        wait_until(lambda: server.hits("/held") == 1)
        assert server.answers("/held") == 0 and not pending.done()
        release.set()
        assert pending.result(timeout=10) == "at last"
    assert server.answers("/held") == 1


def test_rss_parses_with_escaping() -> None:
    parsed = feedparser.parse(rss("Feed & <co>", ITEMS).encode())
    assert not parsed.bozo and parsed.version == "rss20"
    assert parsed.feed.title == "Feed & <co>"
    first, second = parsed.entries
    assert (first.title, first.link, first.id) == ("Rates <up> & away", ITEMS[0]["link"], "id-1")
    assert first.summary == "Body & <b>soul</b>"
    assert first.published_parsed[:6] == (2024, 5, 6, 7, 8, 9)
    assert (second.title, second.link, "published" in second) == ("Second", ITEMS[1]["link"], False)


def test_atom_parses_with_escaping() -> None:
    parsed = feedparser.parse(atom("Feed & <co>", ITEMS).encode())
    assert not parsed.bozo and parsed.version == "atom10"
    assert parsed.feed.title == "Feed & <co>"
    assert [(e.title, e.link, e.id) for e in parsed.entries] == [
        ("Rates <up> & away", ITEMS[0]["link"], "id-1"),
        ("Second", ITEMS[1]["link"], "id-2"),
    ]
    assert parsed.entries[0].updated_parsed[:6] == (2024, 5, 6, 7, 8, 9)


def test_builders_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="pubDate"):
        rss("t", [{"title": "x", "pubDate": WHEN}])


def test_html_page_advertises_feed() -> None:
    page = html_page("Home & <away>", "/feed?a=1&b=2")
    assert '<link rel="alternate" type="application/rss+xml" href="/feed?a=1&amp;b=2">' in page
    assert "<title>Home &amp; &lt;away&gt;</title>" in page
    assert "<link" not in html_page("Plain", None)
