"""A WebSub hub on loopback, speaking the W3C protocol over real HTTP, that fails like one.

Subscribers POST `hub.mode=subscribe` forms to it; it answers 202, then verifies the intent with
a GET to the callback carrying `hub.challenge` (the subscription holds only if the challenge
comes back), and pushes what `publish` is given to every verified subscriber of a topic, signed
with the subscriber's secret. `hub.mode=unsubscribe` is verified the same way (no lease), and
once the challenge comes back the subscriber is pushed nothing more. A test can make it refuse
(`status`), fail the next few requests (`fail_next`: 5xx, or no answer at all until the
subscriber gives up), stop verifying (a lease then lapses unrenewed), deny, push with a wrong
signature, and go away altogether (`go_down`).
"""

from __future__ import annotations

import http.client
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from news.hubs import sign


@dataclass
class Subscriber:
    """A verified subscription: where to push, what to sign with, until when."""

    callback: str
    topic: str
    secret: str
    expires: float


@dataclass(frozen=True)
class Verification:
    """One intent verification the hub made, and how the subscriber answered it."""

    callback: str
    topic: str
    status: int
    echoed: bool
    mode: str = "subscribe"


STALL = -1  # in `fail_next`: no answer, the connection held open until the subscriber gives up


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        hub = self.server.hub
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.close_connection = True
        with hub.lock:
            hub.requests.append(form)
            status = hub.upcoming.pop(0) if hub.upcoming else hub.status
        if status == STALL:  # a hub that hangs: the subscriber's timeout is what ends it
            hub.stopping.wait(hub.stall_seconds)
            return
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        if status == 202 and form.get("hub.mode") in ("subscribe", "unsubscribe") and hub.verify:
            threading.Thread(target=hub._verify, args=(form,), daemon=True).start()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: HubEmulator


class HubEmulator:
    """The hub; `url` is what a feed names in `<link rel="hub">`."""

    def __init__(self, lease_seconds: int = 3600) -> None:
        self.lease_seconds = lease_seconds  # what the hub grants, whatever was asked
        self.status = 202  # what subscribe requests get: 503, 429... to refuse them
        self.upcoming: list[int] = []  # what the next requests get first (fail_next)
        self.stall_seconds = 30.0  # how long a STALL holds a request unanswered at most
        self.stopping = threading.Event()
        self.verify = True  # False: requests are accepted, never verified (leases lapse)
        self.requests: list[dict[str, str]] = []
        self.verifications: list[Verification] = []
        self.subscribers: dict[str, Subscriber] = {}  # by callback
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hub"

    def start(self) -> HubEmulator:
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.hub = self
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def go_down(self) -> None:
        """Gone: connections to its URL are refused until `come_back`."""
        self.stopping.set()  # stalled requests end now
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def come_back(self) -> None:
        """Serving again on the same URL (subscriptions it had are kept, as a real hub's)."""
        self.stopping.clear()
        self.start()

    def __enter__(self) -> HubEmulator:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.go_down()

    def fail_next(self, *outcomes: int) -> None:
        """The next requests, of any mode, get these before `status` again: an HTTP status
        (503, 500...) or STALL (no answer at all, as a hub that hangs)."""
        with self.lock:
            self.upcoming.extend(outcomes)

    def subscribe_requests(self, topic: str | None = None) -> list[dict[str, str]]:
        return self._requests("subscribe", topic)

    def unsubscribe_requests(self, topic: str | None = None) -> list[dict[str, str]]:
        return self._requests("unsubscribe", topic)

    def _requests(self, mode: str, topic: str | None) -> list[dict[str, str]]:
        with self.lock:
            return [form for form in self.requests if form.get("hub.mode") == mode
                    and (topic is None or form.get("hub.topic") == topic)]

    def subscriber(self, topic: str) -> Subscriber | None:
        """The live subscriber of a topic, if any."""
        with self.lock:
            return next((one for one in self.subscribers.values()
                         if one.topic == topic and one.expires > time.time()), None)

    def _verify(self, form: dict[str, str]) -> None:
        """§5.3: a GET with a challenge the subscriber must echo; only then a subscription
        holds, or an unsubscription takes it away (an unechoed one leaves it as it was)."""
        callback, topic = form.get("hub.callback", ""), form.get("hub.topic", "")
        mode, challenge = form.get("hub.mode", ""), secrets.token_urlsafe(16)
        query = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            query["hub.lease_seconds"] = str(self.lease_seconds)
        status, body = _request("GET", _with_query(callback, query))
        echoed = status == 200 and body == challenge.encode()
        with self.lock:
            self.verifications.append(Verification(callback, topic, status, echoed, mode))
            if echoed and mode == "subscribe":
                self.subscribers[callback] = Subscriber(
                    callback, topic, form.get("hub.secret", ""),
                    time.time() + self.lease_seconds)
            elif echoed:  # §5.3: confirmed, the hub stops pushing that topic to it
                held = self.subscribers.get(callback)
                if held is not None and held.topic == topic:
                    del self.subscribers[callback]

    def deny(self, topic: str, reason: str = "not allowed") -> int:
        """§5.2: the hub refuses a subscription it had accepted; the subscriber's status."""
        with self.lock:
            forms = [f for f in self.requests if f.get("hub.topic") == topic]
        callback = forms[-1]["hub.callback"]
        query = {"hub.mode": "denied", "hub.topic": topic, "hub.reason": reason}
        return _request("GET", _with_query(callback, query))[0]

    def publish(self, topic: str, body: bytes, *, method: str = "sha256",
                content_type: str = "application/atom+xml") -> list[int]:
        """§7: the new content to every live subscriber of the topic, each signed with its
        own secret; their statuses."""
        with self.lock:
            live = [one for one in self.subscribers.values()
                    if one.topic == topic and one.expires > time.time()]
        return [push(one.callback, body, sign(body, one.secret, method), content_type, topic,
                     self.url) for one in live]


def push(callback: str, body: bytes, signature: str | None, content_type: str, topic: str,
         hub: str) -> int:
    """One content distribution request; the subscriber's status."""
    headers = {"Content-Type": content_type,
               "Link": f'<{hub}>; rel="hub", <{topic}>; rel="self"'}
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    return _request("POST", callback, body, headers)[0]


def _with_query(url: str, query: dict[str, str]) -> str:
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(query)}"


def _request(method: str, url: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A request on loopback; status 0 when the subscriber hung up or is not there."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        connection.close()
