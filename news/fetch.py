"""URL -> bytes, guarded: http(s) only, public addresses on every hop, capped size and time."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_REDIRECTS = 5


class FetchError(Exception):
    """A fetch that failed for a reason we can name to the user (`code` keys the catalogue)."""

    def __init__(self, code: str, detail: str = "", retry_after: int = 0) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after  # seconds the server asked us to wait (429, 503)


@dataclass(frozen=True)
class FetchPolicy:
    """The limits of SPEC §8, built once from settings."""

    allowed_networks: Sequence[Network] = ()
    max_bytes: int = 10 * 1024 * 1024
    timeout_seconds: float = 20.0


@dataclass(frozen=True)
class Fetched:
    """A response body, or `not_modified` when the validators still hold."""

    url: str
    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


async def check_url(url: str, policy: FetchPolicy) -> None:
    """Refuse non-http(s) URLs and hosts that resolve to private or reserved addresses."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range or not a number, a broken IPv6 literal
        raise FetchError("bad_url", url) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("bad_url", url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError("dns", parts.hostname) from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not _public(address) and not any(address in net for net in policy.allowed_networks):
            raise FetchError("blocked_address", str(address))


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global unicast address: ipaddress calls multicast global, but it is no web server."""
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return all(
        candidate.is_global and not candidate.is_multicast
        for candidate in (address, mapped) if candidate is not None
    )


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
        async with asyncio.timeout(policy.timeout_seconds):
            return await _follow(client, url, policy, etag, last_modified)
    except TimeoutError as exc:
        raise FetchError("timeout", url) from exc
    except httpx.InvalidURL as exc:  # not an HTTPError: a URL httpx cannot send
        raise FetchError("bad_url", url) from exc
    except httpx.HTTPError as exc:
        raise FetchError("network", type(exc).__name__) from exc


async def _follow(
    client: httpx.AsyncClient,
    url: str,
    policy: FetchPolicy,
    etag: str | None,
    last_modified: str | None,
) -> Fetched:
    headers = {"Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
               "application/xml;q=0.9, text/html;q=0.8, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    for _ in range(MAX_REDIRECTS + 1):
        await check_url(url, policy)
        request = client.build_request("GET", url, headers=headers)
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if response.is_redirect and "location" in response.headers:
                url = _joined(url, response.headers["location"])
                continue
            if response.status_code == 304:
                return _result(url, response, b"")
            if response.status_code >= 400:
                raise FetchError("http_status", str(response.status_code),
                                 _retry_after(response.headers.get("retry-after", "")))
            return _result(url, response, await _read_capped(response, policy.max_bytes))
        finally:
            await response.aclose()
    raise FetchError("too_many_redirects", url)


def _joined(base: str, location: str) -> str:
    """A redirect target made absolute; a Location urllib cannot read is a bad URL."""
    try:
        return urljoin(base, location)
    except ValueError as exc:
        raise FetchError("bad_url", location) from exc


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """Stop reading as soon as the cap is passed, whatever Content-Length claimed.

    Stacked encodings (gzip, gzip) are refused: httpx inflates a whole read through every
    layer before we can count, and two layers turn kilobytes into gigabytes.
    """
    if "," in response.headers.get("content-encoding", ""):
        raise FetchError("too_large", "stacked content encodings")
    return await _read_decoded(response, max_bytes)


async def _read_decoded(response: httpx.Response, max_bytes: int) -> bytes:
    """Stop reading as soon as the cap is passed, whatever Content-Length claimed."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError("too_large", str(size))
        chunks.append(chunk)
    return b"".join(chunks)


def _result(url: str, response: httpx.Response, body: bytes) -> Fetched:
    return Fetched(
        url=url,
        status=response.status_code,
        body=body,
        content_type=response.headers.get("content-type", ""),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )


def _retry_after(value: str) -> int:
    """Retry-After in seconds (the HTTP-date form is rare for feeds and read as no hint)."""
    value = value.strip()
    return min(int(value), 7 * 24 * 3600) if value.isdigit() else 0
