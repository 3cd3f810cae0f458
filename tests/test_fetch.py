"""URL to bytes, guarded (news/fetch.py, SPEC §8), against the loopback feed server."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
import ssl
import tracemalloc
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from news.fetch import (
    MAX_REDIRECTS,
    Fetched,
    FetchError,
    FetchPolicy,
    check_url,
    fetch,
    make_client,
)
from news.guard import permitted
from tests.fakes.feeds import FeedServer, rss

LOOPBACK = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
FEED = rss("Tech", [{"title": "软银承诺向法国数据中心投资100亿美元", "link": "http://ex.test/1"}])


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


def policy(
    *, max_bytes: int = LOOPBACK.max_bytes, timeout_seconds: float = 20.0, per_host: int = 4
) -> FetchPolicy:
    return replace(LOOPBACK, max_bytes=max_bytes, timeout_seconds=timeout_seconds,
                   per_host=per_host)


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
    server.put("/slow.xml", FEED, delay=30)
    async with httpx.AsyncClient(timeout=60) as client:  # only the policy's timeout is short
        with pytest.raises(FetchError) as caught:
            await fetch(client, server.url("/slow.xml"), policy(timeout_seconds=0.3))
    assert caught.value.code == "timeout"
    assert server.answers("/slow.xml") == 0  # ended by the timeout, not by the late answer


@pytest.mark.asyncio
async def test_transport_failures_are_network_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(FetchError) as caught:
            await fetch(client, "http://127.0.0.1/feed", LOOPBACK)
    assert caught.value.code == "network"
    assert caught.value.detail == "ConnectError"


# --- compressed bodies: inflated by news.fetch itself, under the cap ---------------------------

MiB = 1024 * 1024
# Text that compresses and bytes that do not, so a body spans many network reads either way.
TEXT = FEED.encode() * 200 + random.Random(7).randbytes(300_000)


def compressed(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


GZIP, ZLIB, RAW = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS


def zeros_bomb(size: int) -> bytes:
    """`size` zero bytes gzipped, built a MiB at a time so the test itself stays small."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, GZIP)
    block = bytes(MiB)
    parts = [compressor.compress(block) for _ in range(size // MiB)]
    return b"".join(parts) + compressor.flush()


async def fetch_body(url: str, rules: FetchPolicy = LOOPBACK) -> bytes:
    async with httpx.AsyncClient() as client:
        return (await fetch(client, url, rules)).body


async def error_of(url: str, rules: FetchPolicy = LOOPBACK) -> FetchError:
    async with httpx.AsyncClient() as client:
        with pytest.raises(FetchError) as caught:
            await fetch(client, url, rules)
    return caught.value


@pytest.mark.asyncio
async def test_gzip_bomb_is_refused_without_inflating_it(server: FeedServer) -> None:
    bomb = zeros_bomb(50 * MiB)
    assert len(bomb) < MiB // 10
    server.put("/bomb.xml", bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        error = await error_of(server.url("/bomb.xml"), policy(max_bytes=MiB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "too_large"
    # the cap, plus at most one byte past it and the bookkeeping; httpx alone would make 50 MB
    assert peak < 5 * MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("encoding", "wbits"),
    [("gzip", GZIP), ("x-gzip", GZIP), ("GZip", GZIP), ("deflate", ZLIB), ("deflate", RAW)],
    ids=["gzip", "x-gzip", "mixed-case", "deflate-zlib", "deflate-raw"],
)
async def test_compressed_bodies_decode_exactly(
    server: FeedServer, encoding: str, wbits: int
) -> None:
    server.put("/feed.xml", compressed(TEXT, wbits), headers={"Content-Encoding": encoding})
    assert await fetch_body(server.url("/feed.xml")) == TEXT


@pytest.mark.asyncio
async def test_only_what_we_inflate_is_offered(server: FeedServer) -> None:
    """httpx offers br and zstd whenever their packages are installed; a client may say more."""
    server.put("/feed.xml", FEED)
    async with httpx.AsyncClient(headers={"Accept-Encoding": "br, zstd, gzip"}) as client:
        await fetch(client, server.url("/feed.xml"), LOOPBACK)
    assert server.requests[0][1]["accept-encoding"] == "gzip, deflate"


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["identity", ""])
async def test_identity_is_read_as_is(server: FeedServer, encoding: str) -> None:
    server.put("/feed.xml", TEXT, headers={"Content-Encoding": encoding} if encoding else None)
    assert await fetch_body(server.url("/feed.xml")) == TEXT


@pytest.mark.asyncio
@pytest.mark.parametrize("wbits", [GZIP, ZLIB, RAW], ids=["gzip", "deflate-zlib", "deflate-raw"])
async def test_compressed_body_arriving_a_byte_at_a_time(wbits: int) -> None:
    """Deflate's kind is told by two bytes that may arrive in two reads."""
    wire = compressed(TEXT[:5000], wbits)
    encoding = "gzip" if wbits == GZIP else "deflate"
    chunks = [wire[i:i + 1] for i in range(len(wire))]
    async with httpx.AsyncClient(transport=streaming(chunks, {"Content-Encoding": encoding})) as c:
        got = await fetch(c, "http://127.0.0.1/feed", LOOPBACK)
    assert got.body == TEXT[:5000]


@pytest.mark.asyncio
@pytest.mark.parametrize("wbits", [GZIP, RAW], ids=["gzip", "deflate-raw"])
async def test_compressed_size_cap_is_exact(server: FeedServer, wbits: int) -> None:
    encoding = "gzip" if wbits == GZIP else "deflate"
    server.put("/at.xml", compressed(b"a" * 1000, wbits), headers={"Content-Encoding": encoding})
    server.put("/over.xml", compressed(b"a" * 1001, wbits), headers={"Content-Encoding": encoding})
    assert await fetch_body(server.url("/at.xml"), policy(max_bytes=1000)) == b"a" * 1000
    assert (await error_of(server.url("/over.xml"), policy(max_bytes=1000))).code == "too_large"


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_empty_compressed_body_is_empty(server: FeedServer, encoding: str) -> None:
    server.put("/empty.xml", b"", headers={"Content-Encoding": encoding})
    assert await fetch_body(server.url("/empty.xml")) == b""


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


GZIPPED = compressed(TEXT, GZIP)
ZLIBBED = compressed(TEXT, ZLIB)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("encoding", "wire", "detail"),
    [
        ("gzip", flipped(GZIPPED, len(GZIPPED) // 2), "bad compressed body"),
        ("gzip", flipped(GZIPPED, len(GZIPPED) - 6), "bad compressed body"),  # the CRC
        ("gzip", GZIPPED[:-10], "truncated compressed body"),
        ("gzip", FEED.encode(), "bad compressed body"),
        ("deflate", flipped(ZLIBBED, len(ZLIBBED) - 2), "bad compressed body"),  # the Adler-32
        ("deflate", b"\x07" + bytes(100), "bad compressed body"),  # raw, invalid block type
        ("deflate", b"\x78", "truncated compressed body"),
    ],
    ids=["gzip-flipped", "gzip-crc", "gzip-truncated", "gzip-plain-text", "zlib-adler",
         "raw-bad-block", "deflate-one-byte"],
)
async def test_corrupt_compressed_bodies_are_clear_errors(
    server: FeedServer, encoding: str, wire: bytes, detail: str
) -> None:
    server.put("/bad.xml", wire, headers={"Content-Encoding": encoding})
    error = await error_of(server.url("/bad.xml"))
    assert (error.code, error.detail) == ("network", detail)


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
async def test_encodings_we_cannot_inflate_are_refused(server: FeedServer, encoding: str) -> None:
    server.put("/feed.xml", b"\x1b\x00\x00compressed?", headers={"Content-Encoding": encoding})
    error = await error_of(server.url("/feed.xml"))
    assert error.code == "network" and encoding in error.detail


@pytest.mark.asyncio
async def test_stacked_encodings_stay_refused(server: FeedServer) -> None:
    server.put("/feed.xml", compressed(compressed(TEXT, GZIP), GZIP),
               headers={"Content-Encoding": "gzip, gzip"})
    assert (await error_of(server.url("/feed.xml"))).code == "too_large"


# --- per-host politeness: never more than per_host requests in flight to one host ---------------

OTHER_HOST = "127.0.0.2"


@dataclass
class Route:
    delay: float = 0.05
    location: str | None = None


@dataclass
class InFlight:
    """Loopback HTTP on asyncio, counting requests in flight per Host (and in all).

    A request counts from its head's arrival until its answer is written: inside the time the
    client holds the slot, so a peak above the limit is the client's fault and nobody else's."""

    routes: dict[str, Route] = field(default_factory=dict)
    now: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    handlers: set[asyncio.Task[None] | None] = field(default_factory=set)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer after the route's delay, or at once with nothing when the server stops: a
        handler still pending when its loop closes is logged as an error on Python 3.11."""
        self.handlers.add(asyncio.current_task())
        try:
            path, host = parse_head(await reader.readuntil(b"\r\n\r\n"))
            route = self.routes.get(path, Route())
            self.hits[host + path] += 1
            self.enter(host)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(route.delay):
                        await self.stopping.wait()
                if not self.stopping.is_set():
                    writer.write(answer(route.location))
                    await writer.drain()
            finally:
                self.now[host] -= 1
                self.now["*"] -= 1
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*(task for task in self.handlers if task), return_exceptions=True)

    def enter(self, host: str) -> None:
        for key in (host, "*"):
            self.now[key] += 1
            self.peak[key] = max(self.peak[key], self.now[key])


def parse_head(head: bytes) -> tuple[str, str]:
    """The path, and the Host header's name without its port."""
    request_line, *lines = head.decode("latin-1").split("\r\n")
    host = next(line.split(":", 1)[1] for line in lines if line.lower().startswith("host:"))
    return request_line.split(" ")[1], host.strip().rsplit(":", 1)[0]


def answer(location: str | None) -> bytes:
    if location is not None:
        return (b"HTTP/1.1 302 Found\r\nLocation: " + location.encode()
                + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    body = FEED.encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


@contextlib.asynccontextmanager
async def in_flight(*hosts: str) -> AsyncIterator[tuple[InFlight, dict[str, int]]]:
    """One counter behind a server on each host; the ports by host."""
    counter = InFlight()
    servers: list[asyncio.Server] = []
    try:
        for host in hosts:
            try:
                servers.append(await asyncio.start_server(counter.serve, host, 0))
            except OSError:
                pytest.skip(f"cannot bind {host}")
        yield counter, {
            host: srv.sockets[0].getsockname()[1] for host, srv in zip(hosts, servers, strict=True)
        }
    finally:
        for srv in servers:
            srv.close()
        await counter.stop()
        for srv in servers:
            await srv.wait_closed()


async def fetch_all(urls: list[str], rules: FetchPolicy) -> list[Fetched]:
    async with httpx.AsyncClient() as client:
        return await asyncio.gather(*(fetch(client, url, rules) for url in urls))


@pytest.mark.asyncio
async def test_per_host_limit_whatever_the_concurrency() -> None:
    rules = policy(per_host=3)
    async with in_flight("127.0.0.1", OTHER_HOST) as (counter, ports):
        urls = [f"http://{host}:{port}/feed.xml" for host, port in ports.items()] * 20
        got = await fetch_all(urls, rules)
    assert all(one.body == FEED.encode() for one in got)
    assert counter.peak["127.0.0.1"] == 3 and counter.peak[OTHER_HOST] == 3
    assert counter.peak["*"] == 6  # the hosts do not wait on each other
    assert len(rules.slots) == 0  # nothing kept for idle hosts


@pytest.mark.asyncio
async def test_redirect_hops_count_against_the_host_they_reach() -> None:
    rules = policy(per_host=2)
    async with in_flight("127.0.0.1", OTHER_HOST) as (counter, ports):
        target = f"http://{OTHER_HOST}:{ports[OTHER_HOST]}/feed.xml"
        counter.routes["/away"] = Route(delay=0.0, location=target)
        away = f"http://127.0.0.1:{ports['127.0.0.1']}/away"
        got = await fetch_all([away, target] * 10, rules)
    assert {one.url for one in got} == {target}
    assert counter.hits[OTHER_HOST + "/feed.xml"] == 20
    assert counter.peak[OTHER_HOST] == 2


@pytest.mark.asyncio
async def test_a_hop_gives_its_slot_back_before_the_next() -> None:
    """With one slot a host, a redirect to the same host would wait on itself forever."""
    rules = policy(per_host=1, timeout_seconds=3.0)
    async with in_flight("127.0.0.1") as (counter, ports):
        counter.routes["/one"] = Route(location="/two")
        counter.routes["/two"] = Route(location="/feed.xml")
        got = await fetch_all([f"http://127.0.0.1:{ports['127.0.0.1']}/one"] * 3, rules)
    assert all(one.url.endswith("/feed.xml") for one in got)
    assert counter.peak["127.0.0.1"] == 1


@pytest.mark.asyncio
async def test_waiting_for_a_slot_does_not_count_as_the_site_being_slow() -> None:
    """Each answer takes half the timeout; the fourth in line waits one and a half timeouts."""
    rules = policy(per_host=1, timeout_seconds=0.6)
    async with in_flight("127.0.0.1") as (counter, ports):
        counter.routes["/feed.xml"] = Route(delay=0.25)
        got = await fetch_all([f"http://127.0.0.1:{ports['127.0.0.1']}/feed.xml"] * 4, rules)
    # one at a time, each answer held 0.25 s: the last one queued past its 0.6 s, yet got through
    assert counter.peak["127.0.0.1"] == 1 and counter.hits["127.0.0.1/feed.xml"] == 4
    assert all(one.body == FEED.encode() for one in got)


@pytest.mark.asyncio
async def test_cancelled_waiters_leave_no_slot_behind() -> None:
    rules = policy(per_host=1)
    async with in_flight("127.0.0.1") as (counter, ports):
        counter.routes["/slow"] = Route(delay=5.0)
        url = f"http://127.0.0.1:{ports['127.0.0.1']}/slow"
        async with httpx.AsyncClient() as client:
            tasks = [asyncio.create_task(fetch(client, url, rules)) for _ in range(4)]
            await asyncio.sleep(0.2)
            assert len(rules.slots) == 1 and counter.now["127.0.0.1"] == 1
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert len(rules.slots) == 0


def test_one_policy_serves_successive_event_loops() -> None:
    """A policy outlives loops; a semaphore bound to a closed loop must not be handed out again."""
    rules = policy(per_host=1)

    async def burst() -> int:
        async with in_flight("127.0.0.1") as (counter, ports):
            await fetch_all([f"http://127.0.0.1:{ports['127.0.0.1']}/feed.xml"] * 3, rules)
        return counter.peak["127.0.0.1"]

    assert [asyncio.run(burst()) for _ in range(2)] == [1, 1]


def test_per_host_must_allow_a_request() -> None:
    with pytest.raises(ValueError, match="per_host"):
        FetchPolicy(per_host=0)
    assert replace(LOOPBACK, per_host=2).slots is not LOOPBACK.slots


# --- the address checked is the address connected to (news.guard) -------------------------------

REAL_GETADDRINFO = socket.getaddrinfo
UA = "Tidings-test"


@dataclass
class FakeDNS:
    """socket.getaddrinfo for a few names: each name's successive answers, the last repeating.

    It stands where the operating system's resolver stands, under asyncio and anyio alike, so
    any look-up the code makes (for its check or for its connection) is seen and counted. A
    name given as text is encoded as the C function encodes it: IDNA 2003."""

    answers: dict[str, list[str]]
    asked: Counter[str] = field(default_factory=Counter)

    def __call__(self, host: str | bytes | None, port: object, family: int = 0, type: int = 0,
                 proto: int = 0, flags: int = 0) -> list[Any]:
        name = host.decode("ascii") if isinstance(host, bytes) else (host or "")
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
        if name not in self.answers:
            return REAL_GETADDRINFO(host, port, family, type, proto, flags)
        self.asked[name] += 1
        replies = self.answers[name]
        address = replies.pop(0) if len(replies) > 1 else replies[0]
        number = int(port) if isinstance(port, int | str | bytes) and port else 0
        if ":" in address:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))]

    async def resolve(self, host: str, port: int) -> list[str]:
        """The same answers as a resolver handed to make_client()."""
        return [info[4][0] for info in self(host, port)]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS({})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


ONLY_127_0_0_2 = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))


async def guarded_error(url: str, rules: FetchPolicy) -> FetchError:
    async with make_client(UA) as client:
        with pytest.raises(FetchError) as caught:
            await fetch(client, url, rules)
    return caught.value


@pytest.mark.asyncio
async def test_dns_rebinding_cannot_move_the_connection(server: FeedServer, dns: FakeDNS) -> None:
    """The first answer passes the check, the second is the server nobody may reach."""
    server.put("/feed.xml", FEED)
    dns.answers["rebind.test"] = ["127.0.0.2", "127.0.0.1"]
    error = await guarded_error(f"http://rebind.test:{server.port}/feed.xml", ONLY_127_0_0_2)
    assert error.code == "network"  # 127.0.0.2 was checked, dialled, and nobody listens there
    assert server.hits("/feed.xml") == 0
    assert dns.asked["rebind.test"] == 1


@pytest.mark.asyncio
async def test_idna_2003_and_2008_forms_are_one_name(server: FeedServer, dns: FakeDNS) -> None:
    """faß is fass under IDNA 2003 and xn--fa-hia under IDNA 2008, which httpx dials."""
    server.put("/feed.xml", FEED)
    dns.answers.update({"fass.test": ["127.0.0.2"], "xn--fa-hia.test": ["127.0.0.1"]})
    error = await guarded_error(f"http://faß.test:{server.port}/feed.xml", ONLY_127_0_0_2)
    assert (error.code, error.detail) == ("blocked_address", "127.0.0.1")
    assert server.hits("/feed.xml") == 0


@pytest.mark.asyncio
async def test_a_redirect_to_a_rebinding_name_is_refused(server: FeedServer, dns: FakeDNS) -> None:
    """The allowed first hop sends us to a name whose second answer is the forbidden server."""
    server.put("/secret", FEED)
    dns.answers["rebind.test"] = ["127.0.0.2", "127.0.0.1"]
    async with in_flight(OTHER_HOST) as (counter, ports):
        counter.routes["/feed.xml"] = Route(location=f"http://rebind.test:{server.port}/secret")
        error = await guarded_error(f"http://{OTHER_HOST}:{ports[OTHER_HOST]}/feed.xml",
                                    ONLY_127_0_0_2)
    assert counter.hits[OTHER_HOST + "/feed.xml"] == 1
    assert error.code == "network"
    assert server.hits("/secret") == 0


EMBEDDING_PRIVATE_IPV4 = [
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::7f00:1",  # RFC 8215 local-use NAT64 of 127.0.0.1
    "64:ff9b:1:ab:cd:0:a00:1",  # the same, another /96 of the /48, of 10.0.0.1
    "::7f00:1",  # IPv4-compatible 127.0.0.1
    "::a00:1",  # IPv4-compatible 10.0.0.1
    "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
    "::ffff:0:c0a8:101",  # IPv4-translated 192.168.1.1
    "::ffff:a9fe:a9fe",  # IPv4-mapped 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "2002:c0a8:101:1::1",  # 6to4 of 192.168.1.1
]


@pytest.mark.asyncio
@pytest.mark.parametrize("address", EMBEDDING_PRIVATE_IPV4)
async def test_ipv6_forms_are_judged_by_the_ipv4_they_carry(address: str) -> None:
    with pytest.raises(FetchError) as caught:
        await check_url(f"http://[{address}]/", FetchPolicy())
    assert caught.value.code == "blocked_address"


@pytest.mark.asyncio
@pytest.mark.parametrize("address", EMBEDDING_PRIVATE_IPV4)
async def test_a_name_answering_an_embedding_form_is_refused(dns: FakeDNS, address: str) -> None:
    dns.answers["v6.test"] = [address]
    error = await guarded_error("http://v6.test/feed.xml", FetchPolicy())
    assert (error.code, error.detail) == ("blocked_address", address)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("64:ff9b::808:808", True), ("64:ff9b:1::808:808", True), ("::ffff:8.8.8.8", True),
     ("2002:808:808::1", True), ("2606:4700::1111", True), ("::ffff:127.0.0.1", False),
     ("::1", False), ("::", False), ("2001:db8::1", False)],
)
def test_embedding_forms_of_public_addresses_stay_reachable(address: str, allowed: bool) -> None:
    assert permitted(ipaddress.ip_address(address), ()) is allowed


def test_allowed_networks_cover_the_forms_that_carry_their_addresses() -> None:
    loopback = LOOPBACK.allowed_networks
    assert permitted(ipaddress.ip_address("::ffff:127.0.0.1"), loopback)
    assert permitted(ipaddress.ip_address("64:ff9b::7f00:1"), loopback)
    assert not permitted(ipaddress.ip_address("64:ff9b::a00:1"), loopback)
    assert permitted(ipaddress.ip_address("64:ff9b:1::7f00:1"), loopback)


@pytest.mark.asyncio
async def test_an_allowed_name_is_fetched_with_its_own_host_header(server: FeedServer) -> None:
    """One look-up per connection, and the server still hears the name (IDNA 2008) it serves."""
    server.put("/feed.xml", FEED)
    fake = FakeDNS({"feeds.test": ["127.0.0.1"], "xn--mnchen-3ya.test": ["127.0.0.1"]})
    async with make_client(UA, resolver=fake.resolve) as client:
        plain = await fetch(client, f"http://feeds.test:{server.port}/feed.xml", LOOPBACK)
        idn = await fetch(client, f"http://münchen.test:{server.port}/feed.xml", LOOPBACK)
    assert plain.body == idn.body == FEED.encode()
    hosts = [headers["host"] for _, headers in server.requests]
    assert hosts == [f"feeds.test:{server.port}", f"xn--mnchen-3ya.test:{server.port}"]
    assert server.requests[0][1]["user-agent"] == UA
    assert fake.asked == Counter({"feeds.test": 1, "xn--mnchen-3ya.test": 1})


TLS = Path(__file__).parent / "fixtures" / "tls"


@dataclass
class KeepAlive:
    """Loopback HTTP(S) that keeps each connection open, recording every request's connection
    number and Host header, and the TLS server name (SNI) each handshake carried."""

    requests: list[tuple[int, str]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    connections: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        body = FEED.encode()
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                host = next(line.split(":", 1)[1].strip() for line in lines
                            if line.lower().startswith("host:"))
                self.requests.append((number, host))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    def tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(TLS / "feeds.test.pem", TLS / "feeds.test.key")
        context.sni_callback = lambda _socket, name, _context: self.server_names.append(name)
        return context


@contextlib.asynccontextmanager
async def keep_alive(*, tls: bool = False) -> AsyncIterator[tuple[KeepAlive, int]]:
    """The server on 127.0.0.1 and its port; callers close their clients inside the block, so
    every connection has ended when the server goes."""
    fake = KeepAlive()
    srv = await asyncio.start_server(fake.serve, "127.0.0.1", 0, ssl=fake.tls() if tls else None)
    try:
        yield fake, srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await srv.wait_closed()


@pytest.mark.asyncio
async def test_tls_is_checked_and_named_for_the_host_not_the_address() -> None:
    """The certificate names feeds.test only: it verifies only if the client, dialling
    127.0.0.1, still sends SNI for and checks the certificate against feeds.test."""
    trust = ssl.create_default_context(cafile=TLS / "ca.pem")
    fake_dns = FakeDNS({"feeds.test": ["127.0.0.1"]})
    async with (keep_alive(tls=True) as (server_, port),
                make_client(UA, resolver=fake_dns.resolve, verify=trust) as client):
        got = await fetch(client, f"https://feeds.test:{port}/feed.xml", LOOPBACK)
    assert got.body == FEED.encode()
    assert server_.server_names == ["feeds.test"]
    assert server_.requests == [(1, f"feeds.test:{port}")]


@pytest.mark.asyncio
async def test_a_stricter_policy_never_gets_a_pooled_connection() -> None:
    """A keep-alive connection opened under a looser policy is not handed to a stricter one."""
    fake_dns = FakeDNS({"feeds.test": ["127.0.0.1"]})
    async with keep_alive() as (server_, port):
        url = f"http://feeds.test:{port}/feed.xml"
        async with make_client(UA, resolver=fake_dns.resolve) as client:
            await fetch(client, url, LOOPBACK)
            with pytest.raises(FetchError) as caught:
                await fetch(client, url, FetchPolicy())
            await fetch(client, url, LOOPBACK)
    assert caught.value.code == "blocked_address"
    assert server_.requests == [(1, f"feeds.test:{port}")] * 2  # kept alive, reused once


@pytest.mark.asyncio
async def test_article_pages_go_through_the_same_guard(server: FeedServer, dns: FakeDNS) -> None:
    """An item link is any publisher's to choose: a rebinding one keeps its snippet, unread."""
    from news.article import complete
    from tests.harness import HTML, article_draft, article_page

    server.put("/story", article_page(), HTML)
    dns.answers["rebind.test"] = ["127.0.0.2", "127.0.0.1"]
    snippet = article_draft(f"http://rebind.test:{server.port}/story")
    async with make_client(UA) as client:
        assert await complete(client, [snippet], ONLY_127_0_0_2) == [snippet]
    assert server.hits("/story") == 0
    assert dns.asked["rebind.test"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("answers", [socket.gaierror(-2, "Name or service not known"), []],
                         ids=["no-such-name", "no-address"])
async def test_a_name_without_addresses_is_a_dns_error(answers: Exception | list[str]) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        if isinstance(answers, Exception):
            raise answers
        return answers

    async with make_client(UA, resolver=resolve) as client:
        with pytest.raises(FetchError) as caught:
            await fetch(client, "http://gone.test/feed.xml", FetchPolicy())
    assert (caught.value.code, caught.value.detail) == ("dns", "gone.test")


@pytest.mark.asyncio
async def test_a_fetch_says_which_address_answered(server: FeedServer) -> None:
    """poll judges a feed's article links by where the feed came from (news.article
    .pages_policy): the guarded client, and a plain one, both tell it."""
    server.put("/feed.xml", FEED)
    async with make_client(UA) as guarded, httpx.AsyncClient() as plain:
        for client in (guarded, plain):
            fetched = await fetch(client, server.url("/feed.xml"), LOOPBACK)
            assert fetched.address == "127.0.0.1"


LOOPBACK_ONLY = replace(LOOPBACK, public=False)


@pytest.mark.asyncio
async def test_without_public_networks_a_public_address_is_refused_by_name(
    server: FeedServer, dns: FakeDNS
) -> None:
    """ALLOW_PUBLIC_NETWORKS=false (and every bot a test starts): a public answer is refused
    with its own reason, a private one outside the allowed networks as before, and the allowed
    network is still read."""
    server.put("/feed.xml", FEED)
    dns.answers["public.test"] = ["8.8.8.8"]
    dns.answers["lan.test"] = ["10.0.0.1"]
    error = await guarded_error("http://public.test/feed.xml", LOOPBACK_ONLY)
    assert (error.code, error.detail) == ("outside_networks", "8.8.8.8")
    with pytest.raises(FetchError) as caught:
        await check_url("http://8.8.4.4/feed.xml", LOOPBACK_ONLY)
    assert caught.value.code == "outside_networks"
    assert (await guarded_error("http://lan.test/feed.xml", LOOPBACK_ONLY)).code == \
        "blocked_address"
    async with make_client(UA) as client:
        fetched = await fetch(client, server.url("/feed.xml"), LOOPBACK_ONLY)
    assert fetched.status == 200 and b"<rss" in fetched.body


def test_public_addresses_are_permitted_only_when_public_networks_are() -> None:
    assert permitted(ipaddress.ip_address("8.8.8.8"), ())
    assert not permitted(ipaddress.ip_address("8.8.8.8"), (), public=False)
    assert permitted(ipaddress.ip_address("127.0.0.1"), LOOPBACK.allowed_networks, public=False)
