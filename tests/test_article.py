"""Snippet to full text (news/article.py), against the loopback feed server."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
import trafilatura

import news.article
from news.article import MAX_PAGE_BYTES, MIN_ARTICLE_CHARS, complete, extract, pages_policy
from news.fetch import FetchPolicy
from news.items import SNIPPET_CHARS
from news.parsing import FeedReader
from tests.fakes.feeds import FeedServer
from tests.harness import FOOTER, HTML, PARAGRAPHS, article_draft, article_page

LOOPBACK = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


def long_summary() -> str:
    return " ".join(PARAGRAPHS)


# --- extract -------------------------------------------------------------------------------------


def test_extract_keeps_the_body_and_drops_the_chrome() -> None:
    text = extract(article_page().encode(), "http://news.test/rance")
    assert text is not None
    for paragraph in PARAGRAPHS:
        assert paragraph in text
    assert text.count("\n") >= len(PARAGRAPHS) - 1  # paragraphs stay paragraphs
    for chrome in ("Subscribe", "Sign in", "Copyright", "All rights reserved", "Privacy policy",
                   "About us", "Most read", "Ferry strike", "Yannick", "Soazig", "dataLayer"):
        assert chrome not in text


def test_extract_truncates() -> None:
    text = extract(article_page().encode(), "http://news.test/rance", max_chars=300)
    assert text is not None and len(text) <= 300
    assert PARAGRAPHS[0][:100] in text


def test_extract_too_little_text_is_none() -> None:
    page = "<html><body><article><p>Only a line of text.</p></article></body></html>"
    assert extract(page.encode(), "http://news.test/short") is None


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00\x01\x02\xff\xfe" * 200,
        os.urandom(4096),
        b"<<<<>>>><html><<body",
        b"<?xml version='1.0'?><rss><channel></channel></rss>",
        b'{"not": "html"}',
        "<html><body><p>\u0000\ud800</p></body></html>".encode("utf-8", "surrogatepass"),
    ],
)
def test_extract_garbage_is_none(garbage: bytes) -> None:
    assert extract(garbage, "http://news.test/garbage") is None


def test_extract_library_error_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(trafilatura, "extract", broken)
    assert extract(article_page().encode(), "http://news.test/rance") is None


def test_extract_non_utf8_page() -> None:
    page = article_page("Réouverture de l'usine marémotrice").replace('charset="utf-8"',
                                                                     'charset="iso-8859-1"')
    text = extract(page.encode("iso-8859-1"), "http://news.test/fr")
    assert text is not None and PARAGRAPHS[2] in text


# --- snippets ------------------------------------------------------------------------------------


def test_snippets_are_short_or_few_sentences_with_a_page_behind() -> None:
    assert article_draft("https://news.test/a").snippet
    assert article_draft("http://news.test/a", summary="").snippet
    # long but only two sentences: still a teaser
    assert article_draft("http://news.test/a", summary=PARAGRAPHS[0] + " " + PARAGRAPHS[1]).snippet
    assert not article_draft("http://news.test/a", summary=long_summary()).snippet
    assert len(long_summary()) >= SNIPPET_CHARS
    for link in ("", "ftp://news.test/a", "mailto:x@news.test", "urn:uuid:1", "http://",
                 "http://[::1"):
        assert not article_draft(link).snippet, link


# --- complete ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_snippet_replaced_by_full_text(server: FeedServer) -> None:
    server.put("/rance", article_page(), HTML)
    snippet = article_draft(server.url("/rance"))
    async with httpx.AsyncClient() as client:
        [got] = await complete(client, [snippet], LOOPBACK)
    assert got == replace(snippet, summary=got.summary)  # only the summary changed
    assert all(paragraph in got.summary for paragraph in PARAGRAPHS)
    assert FOOTER not in got.summary and "Subscribe" not in got.summary
    assert len(got.summary) >= MIN_ARTICLE_CHARS
    assert server.hits("/rance") == 1


@pytest.mark.asyncio
async def test_long_summary_is_never_fetched(server: FeedServer) -> None:
    server.put("/rance", article_page(), HTML)
    full = article_draft(server.url("/rance"), summary=long_summary())
    async with httpx.AsyncClient() as client:
        got = await complete(client, [full], LOOPBACK)
    assert got == [full]
    assert server.requests == []


@pytest.mark.asyncio
async def test_failures_keep_the_snippet_and_order(server: FeedServer) -> None:
    server.put("/ok", article_page(), HTML)
    server.put("/json", '{"title": "x", "body": "' + "word " * 200 + '"}', "application/json")
    server.put("/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "image/png")
    server.put("/huge", article_page() + "<!-- padding -->" * 2000, HTML)
    server.put("/thin", "<html><body><p>Subscribe to read.</p></body></html>", HTML)
    server.put("/gone", article_page(), HTML, status=410)
    drafts = [
        article_draft(server.url("/missing")),  # 404
        article_draft(server.url("/json")),  # not HTML
        article_draft(server.url("/ok")),
        article_draft(server.url("/png")),  # not HTML
        article_draft(server.url("/huge")),  # over the size cap
        article_draft(server.url("/thin")),  # nothing worth keeping
        article_draft(server.url("/gone")),  # 410
        article_draft("http://10.0.0.1/story"),  # blocked address: never connected to
        article_draft(server.url("/ok"), summary=long_summary(), guid="long"),  # not a snippet
    ]
    policy = replace(LOOPBACK, max_bytes=len(article_page().encode()) + 1000)
    async with httpx.AsyncClient() as client:
        got = await complete(client, drafts, policy, limit=2)
    assert [item.guid for item in got] == [item.guid for item in drafts]
    changed = [index for index, (old, new) in enumerate(zip(drafts, got, strict=True))
               if old != new]
    assert changed == [2]
    assert PARAGRAPHS[3] in got[2].summary
    assert got[:2] + got[3:] == drafts[:2] + drafts[3:]
    assert server.hits("/ok") == 1  # the long-summary draft with the same link was not fetched
    assert server.hits("/missing") == server.hits("/huge") == server.hits("/gone") == 1


@pytest.mark.asyncio
async def test_blocked_address_without_allowed_network() -> None:
    snippet = article_draft("http://10.0.0.1/story")
    async with httpx.AsyncClient() as client:
        assert await complete(client, [snippet], FetchPolicy()) == [snippet]


@pytest.mark.asyncio
async def test_loopback_blocked_by_default_policy(server: FeedServer) -> None:
    server.put("/rance", article_page(), HTML)
    snippet = article_draft(server.url("/rance"))
    async with httpx.AsyncClient() as client:
        assert await complete(client, [snippet], FetchPolicy()) == [snippet]
    assert server.requests == []


@pytest.mark.asyncio
async def test_batch_timeout_keeps_slow_snippets(server: FeedServer) -> None:
    server.put("/fast", article_page(), HTML)
    server.put("/slow", article_page(), HTML, delay=10.0)
    drafts = [article_draft(server.url("/slow")), article_draft(server.url("/fast"))]
    # timeouts past the page's delay on the client and the fetch: only the batch's own can
    # cut it short
    async with httpx.AsyncClient(timeout=30.0) as client:
        got = await complete(client, drafts, replace(LOOPBACK, timeout_seconds=30.0),
                             timeout=1.0)
    assert server.answers("/slow") == 0, "the batch waited for the slow page"
    assert got[0] == drafts[0]
    assert got[1] != drafts[1] and PARAGRAPHS[0] in got[1].summary


@pytest.mark.asyncio
async def test_concurrency_is_bounded(server: FeedServer) -> None:
    for n in range(6):
        server.put(f"/p{n}", article_page(), HTML, delay=0.3)
    drafts = [article_draft(server.url(f"/p{n}")) for n in range(6)]
    async with httpx.AsyncClient() as client:
        got = await complete(client, drafts, LOOPBACK, limit=2)
    assert all(new != old for new, old in zip(got, drafts, strict=True))
    assert server.peak_in_flight == 2  # two at a time: bounded, and still in parallel


@pytest.mark.asyncio
async def test_nothing_to_do() -> None:
    async with httpx.AsyncClient() as client:
        assert await complete(client, [], LOOPBACK) == []
        plain = [article_draft("", guid="a"), article_draft("urn:x", guid="b")]
        assert await complete(client, plain, LOOPBACK) == plain


# --- hostile pages -------------------------------------------------------------------------------

STUCK = b"<!-- extraction never ends on this page -->"


def extract_or_hang(html: bytes, url: str) -> str | None:
    """extract(), except on pages carrying STUCK, where it spins as trafilatura did for 8 s on
    3 MB of links; runs in the reader's worker process."""
    while STUCK in html:
        pass
    return extract(html, url)


def link_dense_page(size: int) -> str:
    links = "".join(f'<li><a href="/p/{n}">Link number {n} to somewhere</a></li>'
                    for n in range(size // 50))
    return f"<html><body><ul>{links}</ul>{article_page()}</body></html>"


@pytest.mark.asyncio
async def test_a_page_over_its_cap_is_never_extracted(server: FeedServer) -> None:
    big = link_dense_page(3 * 1024 * 1024)
    assert len(big.encode()) > MAX_PAGE_BYTES
    under = article_page() + "<!-- padding -->" * ((MAX_PAGE_BYTES - 20_000) // 16)
    assert len(under.encode()) < MAX_PAGE_BYTES < LOOPBACK.max_bytes
    server.put("/big", big, HTML)
    server.put("/under", under, HTML)
    extracted: list[str] = []

    async def recording(html: bytes, url: str) -> str | None:
        extracted.append(url)
        return await news.article.in_a_thread(html, url)

    drafts = [article_draft(server.url("/big")), article_draft(server.url("/under"))]
    async with httpx.AsyncClient() as client:
        got = await complete(client, drafts, LOOPBACK, extractor=recording)
    assert got[0] == drafts[0]  # the snippet stays
    assert PARAGRAPHS[0] in got[1].summary  # a page under the cap is read as before
    assert extracted == [server.url("/under")]


@pytest.mark.asyncio
async def test_an_extraction_that_overruns_is_killed_and_the_snippet_kept(
    server: FeedServer, caplog: pytest.LogCaptureFixture,
) -> None:
    server.put("/stuck", article_page() + STUCK.decode(), HTML)
    server.put("/ok", article_page(), HTML)
    reader = FeedReader(1, extract=extract_or_hang, extract_limit=1.0)
    try:
        assert await reader.extract(article_page().encode(), "http://news.test/warm")
        before = set(reader.articles.worker_pids())
        drafts = [article_draft(server.url("/stuck")), article_draft(server.url("/ok"))]
        with caplog.at_level(logging.INFO, logger="news.parsing"):
            async with httpx.AsyncClient() as client:
                got = await complete(client, drafts, LOOPBACK, extractor=reader.extract)
        # stopped by its own limit (the batch's 15 s timeout would have logged nothing)
        assert f"article extraction stopped for {server.url('/stuck')}: over 1s; its worker " \
            "was killed" in caplog.text
        assert got[0] == drafts[0]
        assert PARAGRAPHS[0] in got[1].summary
        assert before and not any(_alive(pid) for pid in before)  # killed, not left spinning
        # and the pool keeps working
        text = await reader.extract(article_page().encode(), "http://news.test/again")
        assert text is not None and PARAGRAPHS[3] in text
    finally:
        reader.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.asyncio
async def test_rendering_never_waits_behind_extraction(
    server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alerts are rendered and previews built on asyncio's default threads: extraction,
    however slow and however many pages, must leave them free."""
    release = threading.Event()
    lock = threading.Lock()
    running: list[str] = []
    finished: list[str] = []

    def slow(html: bytes, url: str, **_: object) -> str | None:
        with lock:
            running.append(url)
        release.wait(30)  # held until rendering was tried; the wait only bounds a broken run
        with lock:
            finished.append(url)
        return None

    monkeypatch.setattr(news.article, "extract", slow)
    for n in range(40):
        server.put(f"/p{n}", article_page(), HTML)
    drafts = [article_draft(server.url(f"/p{n}")) for n in range(40)]
    async with httpx.AsyncClient() as client:
        batch = asyncio.create_task(complete(client, drafts, LOOPBACK, limit=40, timeout=60.0))
        deadline = time.monotonic() + 20
        while len(server.answered) < 40 or len(running) < 2:
            assert time.monotonic() < deadline, "the pages were not all fetched and extracting"
            await asyncio.sleep(0.01)
        try:
            # every page is fetched and every extraction thread is held by now
            rendered = await asyncio.to_thread(lambda: len(finished))
        finally:
            release.set()
        assert rendered == 0, "rendering waited for an extraction to finish"
        assert await batch == drafts


def test_pages_policy_keeps_only_the_feeds_own_allowed_network() -> None:
    """The address the feed answered from decides, not its name: a name could answer another
    address to a second look-up. Unknown (no socket, a host name): public pages only."""
    ten, lan = ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.0.0/16")
    policy = FetchPolicy(allowed_networks=(ten, lan))
    assert pages_policy(policy, "http://feeds.test/", "93.184.216.34").allowed_networks == ()
    assert pages_policy(policy, "http://feeds.test/", "10.0.0.5").allowed_networks == (ten,)
    assert pages_policy(policy, "http://feeds.test/", None).allowed_networks == ()
    assert pages_policy(policy, "http://10.0.0.5/", None).allowed_networks == (ten,)
    assert pages_policy(policy, "http://10.0.0.5/", "93.184.216.34").allowed_networks == ()
    assert pages_policy(FetchPolicy(), "http://feeds.test/", None) == FetchPolicy()
