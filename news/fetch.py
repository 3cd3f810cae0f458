"""URL -> bytes, guarded: http(s) only, public addresses on every hop, capped size and time,
and a bounded number of requests in flight to any one host. The address check itself lives in
news.guard, under the connection, so the address checked is the address connected to."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from news.guard import (
    ALLOWED_NETWORKS,
    PUBLIC,
    AddressRefused,
    GuardedClient,
    Network,
    Resolver,
    checked_addresses,
    system_resolver,
)

MAX_REDIRECTS = 5
# Only what _read_decoded can inflate under the cap; left to httpx, br and zstd would be offered
# whenever their packages happen to be installed.
ACCEPT_ENCODING = "gzip, deflate"
GZIP_WBITS = 16 + zlib.MAX_WBITS


class FetchError(Exception):
    """A fetch that failed for a reason we can name to the user (`code` keys the catalogue)."""

    def __init__(self, code: str, detail: str = "", retry_after: int = 0) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after  # seconds the server asked us to wait (429, 503)


class _Slot:
    """A host's semaphore, with how many tasks hold or await it, so an idle one can be dropped."""

    __slots__ = ("semaphore", "users")

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0


class HostSlots:
    """Per-host semaphores, made on demand and dropped the moment nobody holds or awaits them.

    Keyed by (event loop, host): a semaphore binds to the first loop that waits on it, while a
    policy outlives loops (asyncio.run, one loop per test). Dropping idle entries bounds the
    registry by the hosts being fetched now, not by every host ever seen.
    """

    def __init__(self) -> None:
        self._slots: dict[tuple[asyncio.AbstractEventLoop, str], _Slot] = {}

    def __len__(self) -> int:
        return len(self._slots)

    @contextlib.asynccontextmanager
    async def hold(self, host: str, limit: int) -> AsyncIterator[None]:
        """One of `host`'s `limit` slots, awaited in turn (the limit of whoever came first)."""
        key = (asyncio.get_running_loop(), host)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(limit)
        slot.users += 1
        try:
            async with slot.semaphore:
                yield
        finally:
            slot.users -= 1
            if not slot.users:
                del self._slots[key]


@dataclass(frozen=True)
class FetchPolicy:
    """The limits of SPEC §8, built once from settings.

    `slots` is not an init field, so dataclasses.replace() gives the copy slots of its own: a
    limit is shared by the fetches of one policy, and a copy may have another `per_host`.
    """

    allowed_networks: Sequence[Network] = ()
    max_bytes: int = 10 * 1024 * 1024
    timeout_seconds: float = 20.0
    per_host: int = 4  # requests in flight to one host, whatever the overall concurrency
    public: bool = True  # False: the allowed networks only (ALLOW_PUBLIC_NETWORKS=false)
    slots: HostSlots = field(default_factory=HostSlots, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.per_host < 1:
            raise ValueError(f"per_host must be at least 1, not {self.per_host}")


def make_client(
    user_agent: str, *, resolver: Resolver = system_resolver,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """The one client polling shares. Its pool never makes a request wait: the callers bound
    what is in flight (polls, article fetches per poll, slots per host), and a wait for a
    connection would run on fetch()'s clock and blame the site. Few idle connections are
    kept: httpcore checks every pooled connection (a poll() system call for each idle one)
    whenever it assigns a request, so a pool full of idle keep-alives costs more CPU than the
    reconnects it saves. Every connection it opens goes through news.guard (`resolver` and
    `verify` are there for tests: names that resolve where a test says, a test CA)."""
    return GuardedClient(
        headers={"User-Agent": user_agent}, resolver=resolver, verify=verify,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=8))


@dataclass(frozen=True)
class Fetched:
    """A response body, or `not_modified` when the validators still hold."""

    url: str
    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    address: str | None = None  # the server's address, when the connection tells it
    links: str = ""  # the Link header, where a feed may name its WebSub hub (news.hubs)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _target(url: str) -> httpx.URL:
    """The URL as httpx will send it: http(s), a host and a port in range, or a bad URL. The
    host is httpx's own reading of it (IDNA 2008), which is the name the guard resolves."""
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:  # a port that is no number, a broken IPv6 literal
        raise FetchError("bad_url", url) from exc
    port = target.port
    if target.scheme not in ("http", "https") or not target.raw_host or (
        port is not None and not 0 < port < 65536
    ):
        raise FetchError("bad_url", url)
    return target


async def check_url(url: str, policy: FetchPolicy, resolver: Resolver = system_resolver) -> None:
    """Refuse what fetch() would refuse before connecting: non-http(s) URLs and hosts that
    resolve to private or reserved addresses. A client from make_client() needs no such check
    (its connections are judged as they are opened); fetch() runs it for any other client."""
    target = _target(url)
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        await checked_addresses(
            target.raw_host.decode("ascii"), port, policy.allowed_networks, resolver,
            policy.public)
    except AddressRefused as exc:
        raise FetchError(exc.code, exc.detail) from exc


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    policy: FetchPolicy,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """Fetch with conditional-GET validators, following redirects by hand so each hop is checked."""
    try:
        async with asyncio.timeout(policy.timeout_seconds) as clock:
            return await _follow(client, url, policy, _headers(etag, last_modified), clock)
    except TimeoutError as exc:
        raise FetchError("timeout", url) from exc
    except AddressRefused as exc:  # the guard, refusing a connection on some hop
        raise FetchError(exc.code, exc.detail) from exc
    except httpx.InvalidURL as exc:  # not an HTTPError: a URL httpx cannot send
        raise FetchError("bad_url", url) from exc
    except httpx.HTTPError as exc:
        raise FetchError("network", type(exc).__name__) from exc


async def post_form(
    client: httpx.AsyncClient, url: str, form: dict[str, str], policy: FetchPolicy
) -> int:
    """POST a form (a WebSub hub's subscribe request) under the same guard, limits and clock
    as a fetch; redirects are not followed (a hub answers where it is). The status."""
    try:
        async with asyncio.timeout(policy.timeout_seconds) as clock:
            target = _target(url)
            if not isinstance(client, GuardedClient):
                await check_url(url, policy)
            async with _host_slot(policy, target.host, clock):
                request = client.build_request(
                    "POST", url, data=form,
                    extensions={ALLOWED_NETWORKS: tuple(policy.allowed_networks),
                                PUBLIC: policy.public})
                response = await client.send(request, stream=True, follow_redirects=False)
                await response.aclose()  # what a hub says besides its status is not read
                return response.status_code
    except TimeoutError as exc:
        raise FetchError("timeout", url) from exc
    except AddressRefused as exc:
        raise FetchError(exc.code, exc.detail) from exc
    except httpx.InvalidURL as exc:
        raise FetchError("bad_url", url) from exc
    except httpx.HTTPError as exc:
        raise FetchError("network", type(exc).__name__) from exc


def _headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers = {"Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
               "application/xml;q=0.9, text/html;q=0.8, */*;q=0.5",
               "Accept-Encoding": ACCEPT_ENCODING}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


async def _follow(
    client: httpx.AsyncClient,
    url: str,
    policy: FetchPolicy,
    headers: dict[str, str],
    clock: asyncio.Timeout,
) -> Fetched:
    """Each hop takes its own host's slot and gives it back before the next: a redirect may lead
    to another host, and holding one slot while awaiting another could deadlock a busy host.

    A client from make_client() judges each address as it connects; any other client (a test's
    MockTransport) gets check_url() first, which cannot stop a second look-up from differing."""
    for _ in range(MAX_REDIRECTS + 1):
        target = _target(url)
        if not isinstance(client, GuardedClient):
            await check_url(url, policy)
        async with _host_slot(policy, target.host, clock):
            hop = await _hop(client, url, headers, policy)
        if isinstance(hop, Fetched):
            return hop
        url = hop
    raise FetchError("too_many_redirects", url)


@contextlib.asynccontextmanager
async def _host_slot(policy: FetchPolicy, host: str, clock: asyncio.Timeout) -> AsyncIterator[None]:
    """The clock stops while queued for the slot: that wait is our politeness, not the site's
    slowness, and "took too long" would blame the site. Every holder runs on its own clock, so
    the wait stays bounded."""
    async with contextlib.AsyncExitStack() as stack:
        with _stopped(clock):
            await stack.enter_async_context(policy.slots.hold(host, policy.per_host))
        yield


@contextlib.contextmanager
def _stopped(clock: asyncio.Timeout) -> Iterator[None]:
    """Hold the timeout's remaining time while the block runs, then let it count down again."""
    deadline = clock.when()
    if deadline is None:
        yield
        return
    loop = asyncio.get_running_loop()
    left = deadline - loop.time()
    clock.reschedule(None)
    try:
        yield
    finally:
        clock.reschedule(loop.time() + left)


async def _hop(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], policy: FetchPolicy
) -> Fetched | str:
    """One request: its answer, or the absolute URL it redirects to. The request carries the
    policy's allowed networks to the guard, which connects nowhere else."""
    request = client.build_request("GET", url, headers=headers,
                                   extensions={ALLOWED_NETWORKS: tuple(policy.allowed_networks),
                                               PUBLIC: policy.public})
    response = await client.send(request, stream=True, follow_redirects=False)
    address = _peer(response)  # now: once the body is read, the connection may be closed
    try:
        if response.is_redirect and "location" in response.headers:
            return _joined(url, response.headers["location"])
        if response.status_code == 304:
            return _result(url, response, b"", address)
        if response.status_code >= 400:
            raise FetchError("http_status", str(response.status_code),
                             _retry_after(response.headers.get("retry-after", "")))
        return _result(url, response, await _read_capped(response, policy.max_bytes), address)
    finally:
        await response.aclose()


def _joined(base: str, location: str) -> str:
    """A redirect target made absolute; a Location urllib cannot read is a bad URL."""
    try:
        return urljoin(base, location)
    except ValueError as exc:
        raise FetchError("bad_url", location) from exc


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """Stop reading as soon as the cap is passed, whatever Content-Length claimed.

    Stacked encodings (gzip, gzip) are refused: no feed needs them, and each layer multiplies
    what a few kilobytes on the wire can become.
    """
    encoding = response.headers.get("content-encoding", "")
    if "," in encoding:
        raise FetchError("too_large", "stacked content encodings")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", declared)
    return await _read_decoded(response, _decoder(encoding), max_bytes)


async def _read_decoded(response: httpx.Response, decoder: _Decoder, max_bytes: int) -> bytes:
    """Decode the raw bytes ourselves: httpx's decoders inflate a whole network read (64 KB of
    gzipped zeros is 64 MB) before a caller can count, so the cap must act inside inflation."""
    body = _Body(max_bytes)
    async for raw in response.aiter_raw():
        decoder.feed(raw, body)
    decoder.finish()
    return body.joined()


class _Body:
    """The decoded body so far, refused the moment it passes the cap."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._chunks: list[bytes] = []

    @property
    def room(self) -> int:
        return self._limit - self._size

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise FetchError("too_large", f"over {self._limit} bytes")
        self._chunks.append(chunk)

    def joined(self) -> bytes:
        return b"".join(self._chunks)


class _Plain:
    """identity, or no Content-Encoding: the bytes are the body."""

    def feed(self, data: bytes, body: _Body) -> None:
        body.add(data)

    def finish(self) -> None:
        pass


class _Inflater:
    """gzip or deflate, inflated into at most one byte past the room left: enough to know the
    body is over the cap, never the megabytes a bomb would make of the same read."""

    def __init__(self, wbits: int | None) -> None:
        self._wbits = wbits  # None: deflate, zlib-wrapped or raw, told by its first two bytes
        self._head = b""  # bytes held until the stream's kind is known
        self._engine: zlib._Decompress | None = None

    def feed(self, data: bytes, body: _Body) -> None:
        engine = self._engine
        if engine is None:
            self._head += data
            wbits = self._wbits if self._wbits is not None else _deflate_wbits(self._head)
            if wbits is None or not self._head:
                return
            engine = self._engine = zlib.decompressobj(wbits)
            data, self._head = self._head, b""
        try:
            while data and not engine.eof:  # what follows the end of the stream is ignored
                body.add(engine.decompress(data, body.room + 1))
                data = engine.unconsumed_tail
        except zlib.error as exc:
            raise FetchError("network", "bad compressed body") from exc

    def finish(self) -> None:
        """A stream cut short is as broken as a corrupt one; no bytes at all is an empty body."""
        if self._head or (self._engine is not None and not self._engine.eof):
            raise FetchError("network", "truncated compressed body")


_Decoder = _Plain | _Inflater


def _decoder(encoding: str) -> _Decoder:
    """Refuse what we cannot inflate under the cap rather than hand the parser compressed bytes."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return _Plain()
    if name in ("gzip", "x-gzip"):  # RFC 9110 §8.4.1.3: x-gzip is gzip
        return _Inflater(GZIP_WBITS)
    if name == "deflate":
        return _Inflater(None)
    raise FetchError("network", f"unsupported content encoding {name}")


def _deflate_wbits(head: bytes) -> int | None:
    """RFC 9110's deflate is zlib-wrapped, but servers send raw deflate too, and browsers take
    both. A zlib header's low nibble is 8 and its two bytes are a multiple of 31; no raw stream a
    real encoder writes begins that way."""
    if len(head) < 2:
        return None
    wrapped = head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and int.from_bytes(head[:2]) % 31 == 0
    return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS


def _result(url: str, response: httpx.Response, body: bytes, address: str | None) -> Fetched:
    return Fetched(
        url=url,
        status=response.status_code,
        body=body,
        content_type=response.headers.get("content-type", ""),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        address=address,
        links=", ".join(response.headers.get_list("link")),
    )


def _peer(response: httpx.Response) -> str | None:
    """The address the answer came from (a feed's article links are judged by it), from
    httpcore's connection; None where there is no socket (a test's MockTransport)."""
    stream = response.extensions.get("network_stream")
    try:
        peer = stream.get_extra_info("server_addr") if stream is not None else None
    except Exception:  # a transport's own stream that knows no such thing
        return None
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def _retry_after(value: str) -> int:
    """Retry-After in seconds (the HTTP-date form is rare for feeds and read as no hint)."""
    value = value.strip()
    return min(int(value), 7 * 24 * 3600) if value.isdigit() else 0
