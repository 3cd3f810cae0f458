"""The SSRF guard under fetching: each connection resolves its host once, judges every address,
and connects to one that passed, so no second look-up can lead elsewhere.

httpcore opens connections through a network backend that is handed the very host and port it
will dial (httpx's IDNA 2008 form of the name, never the 2003 form Python's socket module would
make of it). Our backend resolves that name, refuses the connection if any address is outside
the public internet and the allowed networks, and dials a checked address itself. TLS and the
Host header still carry the name: httpcore takes both from the request URL, not from the socket.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import httpcore
import httpx

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to, as text; OSError or UnicodeError when it cannot
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

# The request extension through which fetch() names the networks allowed besides the public
# internet; a request without it may reach public addresses only.
ALLOWED_NETWORKS = "tidings.allowed_networks"
# The request extension that says whether the public internet may be reached at all (False for
# a deployment with ALLOW_PUBLIC_NETWORKS=false, and for every bot the tests start, so that a
# test that forgot to point a provider at its emulator fails loudly instead of reaching out).
PUBLIC = "tidings.public"

# IPv6 forms whose low 32 bits are an IPv4 address that packets end up at (RFC 6052 NAT64,
# RFC 8215 local-use NAT64, whose /96s DNS64 synthesizes like the well-known one's, RFC 4291
# IPv4-compatible and IPv4-mapped, RFC 2765 IPv4-translated). 6to4 (2002::/16) carries its
# address in bits 16-47 and is read by ipaddress itself.
_EMBEDDING_96 = tuple(
    ipaddress.IPv6Network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0/96", "::ffff:0:0:0/96")
)


class AddressRefused(Exception):
    """A connection the guard would not open; `code` keys fetch.error.<code> in the catalogue."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer, off the event loop (getaddrinfo blocks)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form reaches, for the forms that carry one."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if any(address in net for net in _EMBEDDING_96):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def permitted(address: Address, allowed_networks: Iterable[Network], public: bool = True) -> bool:
    """Public unicast (unless `public` is False), or inside an allowed network; an IPv6 form
    that carries an IPv4 address is judged by that address, since that is where its packets
    go. ipaddress calls multicast global, but it is no web server."""
    target = embedded_ipv4(address) or address
    if any(candidate in net for net in allowed_networks for candidate in (address, target)):
        return True
    return public and target.is_global and not target.is_multicast


async def checked_addresses(
    host: str, port: int, allowed_networks: Sequence[Network], resolver: Resolver,
    public: bool = True,
) -> list[Address]:
    """Every address `host` resolves to, once; refused if any one is not permitted, since a name
    that mixes public and private answers is up to no good."""
    try:
        addresses: list[Address] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            answers = await resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise AddressRefused("dns", host) from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(answer) for answer in answers))
    if not addresses:
        raise AddressRefused("dns", host)
    for address in addresses:
        if not permitted(address, allowed_networks, public):
            public_one = not public and permitted(address, allowed_networks)
            raise AddressRefused("outside_networks" if public_one else "blocked_address",
                                 str(address))
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's way out to the network, opened only to checked addresses."""

    def __init__(
        self,
        allowed_networks: Sequence[Network],
        resolver: Resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
        public: bool = True,
    ) -> None:
        self._allowed = tuple(allowed_networks)
        self._public = public
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """The first checked address that answers; the inner backend is handed a literal, so
        it has nothing left to resolve."""
        failure: Exception | None = None
        for address in await checked_addresses(host, port, self._allowed, self._resolver,
                                                 self._public):
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # checked_addresses never answers an empty list
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A fetched URL never names a socket file; refuse rather than reach a local service."""
        raise AddressRefused("blocked_address", path)

    async def sleep(self, seconds: float) -> None:
        """httpcore's retry pause, left to the backend that does the real work."""
        await self._inner.sleep(seconds)


class _PoolTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request conversion, error mapping) over a guarded pool: httpx
    takes no network backend, so the pool it builds is replaced before any use."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits,
                 backend: httpcore.AsyncNetworkBackend) -> None:
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class GuardedTransport(httpx.AsyncBaseTransport):
    """One guarded pool per set of allowed networks, chosen by the request's extension, so a
    connection opened under a looser policy is never reused under a stricter one."""

    def __init__(self, limits: httpx.Limits, resolver: Resolver = system_resolver,
                 verify: ssl.SSLContext | bool = True) -> None:
        self._limits = limits
        self._resolver = resolver
        self._ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._pools: dict[tuple[frozenset[Network], bool], _PoolTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Hand the request to the pool of its networks; the first request of a set makes it."""
        networks: Sequence[Network] = request.extensions.get(ALLOWED_NETWORKS, ())
        public: bool = request.extensions.get(PUBLIC, True)
        key = (frozenset(networks), public)
        pool = self._pools.get(key)
        if pool is None:
            backend = GuardedBackend(tuple(key[0]), self._resolver, public=public)
            pool = self._pools[key] = _PoolTransport(self._ssl_context, self._limits, backend)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        """Close every pool, so no connection outlives the client."""
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()


class GuardedClient(httpx.AsyncClient):
    """An httpx client whose every connection goes through the guard. Environment proxies are
    ignored: a proxy would connect on our behalf to whatever the name resolves to there."""

    def __init__(self, *, resolver: Resolver = system_resolver,
                 verify: ssl.SSLContext | bool = True,
                 limits: httpx.Limits | None = None, **kwargs: Any) -> None:
        transport = GuardedTransport(limits or httpx.Limits(), resolver, verify)
        super().__init__(transport=transport, trust_env=False, **kwargs)
