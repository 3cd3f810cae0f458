"""WebSub (W3C Recommendation, 2018), the pure parts: which hub a feed names, and whether a
push carries its subscription's signature.

A publisher names its hub and the feed's own URL (the topic) in the HTTP Link header, which
subscribers read first (§4), or in the feed (`<link rel="hub">` in Atom, `<atom:link>` in RSS,
`hubs` in JSON Feed). Each push is signed with the secret we gave at subscription: an HMAC of
the raw body in `X-Hub-Signature: method=hex` (§8).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

# §8: sha1, sha256, sha384 and sha512 are the methods a hub may sign with.
METHODS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
           "sha512": hashlib.sha512}
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


def link_header(value: str, base: str) -> dict[str, list[str]]:
    """RFC 8288 Link header values by relation, absolute: `<https://hub>; rel="hub"`."""
    found: dict[str, list[str]] = {}
    for match in _LINK.finditer(value or ""):
        rel = _REL.search(match.group(2))
        if rel is None:
            continue
        for name in (rel.group(1) or rel.group(2) or "").lower().split():
            found.setdefault(name, []).append(urljoin(base, match.group(1).strip()))
    return found


def advertised(hubs: Sequence[str], self_url: str, links: str, url: str) -> tuple[str, str]:
    """The hub to subscribe at ("" when none, or none that is http(s)) and the topic to name:
    the Link header first, then the feed; the topic is the feed's own URL for itself, else
    the URL it was fetched from."""
    header = link_header(links, url)
    hub = next((candidate for candidate in [*header.get("hub", []),
                                             *(urljoin(url, h) for h in hubs)]
                if _web(candidate)), "")
    topic = next((candidate for candidate in [*header.get("self", []),
                                               *([urljoin(url, self_url)] if self_url else [])]
                  if _web(candidate)), url)
    return hub, topic


def _web(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def signature_method(header: str) -> str | None:
    """The method of an `X-Hub-Signature` value when it is one WebSub names and the value is
    hex of the right length; None for a push that cannot be signed by our hub."""
    method, _, digest = header.strip().partition("=")
    maker = METHODS.get(method.strip().lower())
    if maker is None or len(digest.strip()) != maker().digest_size * 2:
        return None
    try:
        bytes.fromhex(digest.strip())
    except ValueError:
        return None
    return method.strip().lower()


def signed(header: str, body: bytes, secret: str) -> bool:
    """Whether the push's body carries the HMAC of our secret, compared in constant time."""
    method = signature_method(header)
    if method is None:
        return False
    expected = hmac.new(secret.encode(), body, METHODS[method]).hexdigest()
    given = header.strip().partition("=")[2].strip().lower()
    return hmac.compare_digest(expected.encode(), given.encode())


def sign(body: bytes, secret: str, method: str = "sha256") -> str:
    """An `X-Hub-Signature` value, as a hub writes it (the tests' hub emulator)."""
    return f"{method}={hmac.new(secret.encode(), body, METHODS[method]).hexdigest()}"
