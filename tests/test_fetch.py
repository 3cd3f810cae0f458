"""URL to bytes, guarded (news/fetch.py, SPEC §8), against the loopback feed server."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest

from news.fetch import MAX_REDIRECTS, FetchError, FetchPolicy, check_url, fetch
from tests.fakes.feeds import FeedServer, rss

LOOPBACK = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
FEED = rss("Tech", [{"title": "软银承诺向法国数据中心投资100亿美元", "link": "http://ex.test/1"}])


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


def policy(*, max_bytes: int = LOOPBACK.max_bytes, timeout_seconds: float = 20.0) -> FetchPolicy:
    return replace(LOOPBACK, max_bytes=max_bytes, timeout_seconds=timeout_seconds)


async def code_of(url: str, rules: FetchPolicy = LOOPBACK, **kwargs: str) -> str:
    async with httpx.AsyncClient() as client:
        with pytest.raises(FetchError) as caught:
            await fetch(client, url, rules, **kwargs)
    return caught.value.code


@pytest.mark.asyncio
async def test_ok_body_and_validators(server: FeedServer) -> None:
    server.put("/feed.xml", FEED)
    async with httpx.AsyncClient() as client:
        got = await fetch(client, server.url("/feed.xml"), LOOPBACK)
    assert got.status == 200 and not got.not_modified
    assert got.body == FEED.encode()
    assert got.url == server.url("/feed.xml")
    assert got.content_type.startswith("application/rss+xml")
    assert got.etag == server.etag("/feed.xml")
    assert got.last_modified is not None and got.last_modified.endswith("GMT")


@pytest.mark.asyncio
async def test_conditional_get(server: FeedServer) -> None:
    server.put("/feed.xml", FEED)
    async with httpx.AsyncClient() as client:
        first = await fetch(client, server.url("/feed.xml"), LOOPBACK)
        by_etag = await fetch(client, server.url("/feed.xml"), LOOPBACK, etag=first.etag)
        by_date = await fetch(client, server.url("/feed.xml"), LOOPBACK,
                              last_modified=first.last_modified)
        server.put("/feed.xml", FEED.replace("Tech", "Tech 2"))
        changed = await fetch(client, server.url("/feed.xml"), LOOPBACK, etag=first.etag)
    assert by_etag.not_modified and by_etag.status == 304 and by_etag.body == b""
    assert by_date.not_modified
    assert not changed.not_modified and b"Tech 2" in changed.body
    sent = [headers for _, headers in server.requests]
    assert "if-none-match" not in sent[0] and "if-modified-since" not in sent[0]
    assert sent[1]["if-none-match"] == first.etag
    assert sent[2]["if-modified-since"] == first.last_modified


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 403, 404, 410, 429, 500, 503])
async def test_http_errors(server: FeedServer, status: int) -> None:
    server.put("/feed.xml", "nope", status=status)
    async with httpx.AsyncClient() as client:
        with pytest.raises(FetchError) as caught:
            await fetch(client, server.url("/feed.xml"), LOOPBACK)
    assert caught.value.code == "http_status"
    assert caught.value.detail == str(status)


@pytest.mark.asyncio
async def test_missing_path_is_http_status(server: FeedServer) -> None:
    assert await code_of(server.url("/missing")) == "http_status"


@pytest.mark.asyncio
async def test_size_cap_by_content_length(server: FeedServer) -> None:
    server.put("/big.xml", "x" * 5000)
    server.put("/exact.xml", "x" * 100)
    assert await code_of(server.url("/big.xml"), policy(max_bytes=100)) == "too_large"
    async with httpx.AsyncClient() as client:
        exact = await fetch(client, server.url("/exact.xml"), policy(max_bytes=100))
    assert exact.body == b"x" * 100


def streaming(chunks: list[bytes], headers: dict[str, str] | None = None) -> httpx.MockTransport:
    """A server that streams its body, without or with a lying Content-Length."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, content=body())

    return httpx.MockTransport(handler)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("chunks", "headers", "code"),
    [
        ([b"x" * 60, b"x" * 60], None, "too_large"),
        ([b"x" * 60, b"x" * 40], None, None),
        ([b"x" * 500], {"Content-Length": "10"}, "too_large"),
    ],
    ids=["chunked-over", "chunked-at-cap", "lying-length"],
)
async def test_size_cap_while_streaming(
    chunks: list[bytes], headers: dict[str, str] | None, code: str | None
) -> None:
    async with httpx.AsyncClient(transport=streaming(chunks, headers)) as client:
        if code is None:
            got = await fetch(client, "http://127.0.0.1/feed", policy(max_bytes=100))
            assert got.body == b"".join(chunks)
        else:
            with pytest.raises(FetchError) as caught:
                await fetch(client, "http://127.0.0.1/feed", policy(max_bytes=100))
            assert caught.value.code == code


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://x", "ftp://ftp.example.com/feed.xml", "javascript:alert(1)",
     "gopher://127.0.0.1:70/", "data:text/xml,<rss/>", "http:///no-host", "//127.0.0.1/feed",
     "feed.xml", ""],
)
async def test_bad_urls(url: str) -> None:
    assert await code_of(url) == "bad_url"


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/feed", "http://127.0.0.1:abc/feed"])
async def test_bad_ports_are_bad_urls(url: str) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(FetchError) as caught:
            await fetch(client, url, LOOPBACK)
    assert caught.value.code == "bad_url"


@pytest.mark.asyncio
async def test_loopback_is_blocked_without_the_allowance(server: FeedServer) -> None:
    server.put("/feed.xml", FEED)
    assert await code_of(server.url("/feed.xml"), FetchPolicy()) == "blocked_address"
    assert server.hits("/feed.xml") == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/", "http://localhost/", "http://2130706433/", "http://0x7f.1/",
     "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://10.0.0.1/",
     "http://172.16.5.4/", "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/",
     "http://100.64.0.1/", "http://[fe80::1]/", "http://[fd00::1]/", "http://240.0.0.1/",
     "http://255.255.255.255/", "http://198.18.0.1/", "http://192.0.2.1/"],
)
async def test_private_and_reserved_addresses_are_blocked(url: str) -> None:
    with pytest.raises(FetchError) as caught:
        await check_url(url, FetchPolicy())
    assert caught.value.code == "blocked_address"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url", ["http://224.0.0.1/", "http://239.255.255.250:1900/", "http://[ff02::1]/"]
)
async def test_multicast_addresses_are_blocked(url: str) -> None:
    with pytest.raises(FetchError) as caught:
        await check_url(url, FetchPolicy())
    assert caught.value.code == "blocked_address"


@pytest.mark.asyncio
async def test_allowed_networks_do_not_open_others() -> None:
    await check_url("http://127.0.0.1:8080/feed", LOOPBACK)
    for url in ("http://10.0.0.1/", "http://[::1]/", "http://169.254.169.254/"):
        with pytest.raises(FetchError) as caught:
            await check_url(url, LOOPBACK)
        assert caught.value.code == "blocked_address"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "target",
    ["http://10.0.0.1/feed", "http://169.254.169.254/latest/meta-data/", "http://[::1]/feed",
     "http://192.168.0.1/"],
)
async def test_redirect_to_a_private_address_is_blocked(server: FeedServer, target: str) -> None:
    server.put("/feed.xml", "", status=302, headers={"Location": target})
    assert await code_of(server.url("/feed.xml")) == "blocked_address"


@pytest.mark.asyncio
async def test_redirect_to_another_scheme_is_a_bad_url(server: FeedServer) -> None:
    server.put("/feed.xml", "", status=301, headers={"Location": "file:///etc/passwd"})
    assert await code_of(server.url("/feed.xml")) == "bad_url"


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_followed_and_checked(server: FeedServer, status: int) -> None:
    server.put("/old", "", status=status, headers={"Location": "/new/feed.xml"})
    server.put("/new/feed.xml", FEED)
    async with httpx.AsyncClient() as client:
        got = await fetch(client, server.url("/old"), LOOPBACK, etag='"stale"')
    assert got.status == 200 and got.body == FEED.encode()
    assert got.url == server.url("/new/feed.xml")
    assert server.hits("/old") == 1 and server.hits("/new/feed.xml") == 1


@pytest.mark.asyncio
async def test_redirect_limit(server: FeedServer) -> None:
    hops = MAX_REDIRECTS
    for n in range(hops):
        server.put(f"/ok{n}", "", status=302, headers={"Location": f"/ok{n + 1}"})
        server.put(f"/long{n}", "", status=302, headers={"Location": f"/long{n + 1}"})
    server.put(f"/ok{hops}", FEED)
    server.put(f"/long{hops}", "", status=302, headers={"Location": "/end"})
    server.put("/end", FEED)
    async with httpx.AsyncClient() as client:
        got = await fetch(client, server.url("/ok0"), LOOPBACK)
    assert got.url == server.url(f"/ok{hops}")
    assert await code_of(server.url("/long0")) == "too_many_redirects"
    assert server.hits("/end") == 0


@pytest.mark.asyncio
async def test_redirect_loop(server: FeedServer) -> None:
    server.put("/loop", "", status=302, headers={"Location": "/loop"})
    assert await code_of(server.url("/loop")) == "too_many_redirects"
    assert server.hits("/loop") == MAX_REDIRECTS + 1


@pytest.mark.asyncio
async def test_slow_answer_times_out(server: FeedServer) -> None:
    server.put("/slow.xml", FEED, delay=5)
    started = time.monotonic()
    assert await code_of(server.url("/slow.xml"), policy(timeout_seconds=0.3)) == "timeout"
    assert time.monotonic() - started < 3


@pytest.mark.asyncio
async def test_transport_failures_are_network_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(FetchError) as caught:
            await fetch(client, "http://127.0.0.1/feed", LOOPBACK)
    assert caught.value.code == "network"
    assert caught.value.detail == "ConnectError"
