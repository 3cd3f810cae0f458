"""Ingest under hostile input: the feedparser corpus end to end, bombs, drips and redirects.

Everything goes through what the bot really runs: `check_feed` (what /addsource calls), then
`add_source` or `poll` against a temporary SQLite database, over HTTP on loopback. A bad source
must end in a clear error (FetchError or NotAFeed, recorded on the source by `poll`), never in an
unhandled exception, a hang, or a process that balloons.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import resource
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine, event, func
from sqlmodel import select

from news import article, heap
from news import poll as polling
from news.adding import add_source, check_feed
from news.feeds import DeclaresEntities, NotAFeed
from news.fetch import FetchError, FetchPolicy
from news.ingest import Outcome
from news.newsroom import Newsroom
from news.poll import poll
from storage import items as storage_items
from storage import sources
from storage.db import make_engine, migrate, session_scope
from storage.errors import StoredError, last_error
from storage.models import Item, Source, utcnow
from storage.sources import DueSource
from tests.fakes.feeds import FeedServer, html_page, rss
from tests.harness import LOOPBACK, claim, http_client, store_source

REPO = Path(__file__).resolve().parent.parent
SHARED_CORPUS = REPO.parent / "shared" / "corpus" / "feedparser-tests"
FIXTURE_CORPUS = REPO / "tests" / "fixtures" / "feedparser-corpus"
MiB = 1 << 20
MEMORY_LIMIT = 500 * MiB  # the whole test process, bombs included
CLEAR_ERRORS = (FetchError, NotAFeed)
HANG = 30.0  # seconds any single source may take before it counts as a hang
# Corpus files that cannot be a feed whatever the parser: they must fail, and clearly.
NEVER_FEEDS = frozenset({"illformed/rss_empty_document.xml"})


# ---------------------------------------------------------------- shared helpers


@pytest.fixture
def room(db: Engine) -> Newsroom:
    """The story index and matcher cache a bot keeps, for this test's database."""
    return Newsroom(db)


async def snippets_stay(client: Any, drafts: list[Any], policy: Any, **_: Any) -> list[Any]:
    return drafts


@pytest.fixture(autouse=True)
def no_article_fetches(monkeypatch: pytest.MonkeyPatch) -> None:
    """poll fetches the article behind each snippet entry (news.article.complete). Entry links
    in the corpus and in these feeds name hosts on the internet: leave them alone (DNS here
    can stall 5 s a lookup), except in the test of hostile article links, which serves its own."""
    monkeypatch.setattr(polling, "complete", snippets_stay, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database of its own (the shared `engine` fixture also runs PostgreSQL)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'robust.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


def peak_rss() -> int:
    """This process's peak resident size in bytes (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def assert_memory_ok() -> None:
    assert peak_rss() < MEMORY_LIMIT, f"peak RSS {peak_rss() / MiB:.0f} MiB"


async def clear_error(url: str, policy: FetchPolicy = LOOPBACK) -> BaseException:
    """check_feed must refuse the URL with FetchError or NotAFeed, within HANG seconds (a
    deadline for a hang, not a measurement: how it was refused says why it was quick)."""
    async with http_client() as client:
        with pytest.raises(CLEAR_ERRORS) as caught:
            await asyncio.wait_for(check_feed(client, url, policy), HANG)
    return caught.value


def code_of(error: BaseException) -> str:
    return error.code if isinstance(error, FetchError | NotAFeed) else "not_a_feed"


def item_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(Item)).one())


def source_row(engine: Engine, url: str) -> Source:
    with session_scope(engine) as session:
        source = sources.by_url(session=session, url=url)
        assert source is not None
        return source


# ---------------------------------------------------------------- a: the feedparser corpus


@dataclass
class CorpusResult:
    path: str
    check: str = ""  # "ok", "ok (discovered)" or the error code check_feed raised
    crash: str = ""  # anything that is not a clear error, or a hang


def corpus_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name != "LICENSE")


async def run_corpus(root: Path, engine: Engine, server: FeedServer) -> list[CorpusResult]:
    """Every file served twice: /add/<path> goes through check_feed and add_source (what
    /addsource does), /poll/<path> is stored with sources.add and polled (what the job does)."""
    files = corpus_files(root)
    for rel in files:
        kind = "application/json" if rel.endswith(".json") else "application/xml"
        body = (root / rel).read_bytes()
        for prefix in ("/add/", "/poll/"):
            server.put(quote(prefix + rel), body, content_type=kind)
    limit = asyncio.Semaphore(24)
    room = Newsroom(engine)

    async def one(client: httpx.AsyncClient, rel: str) -> CorpusResult:
        result = CorpusResult(rel)
        async with limit:
            try:
                try:
                    checked = await asyncio.wait_for(
                        check_feed(client, server.url(quote("/add/" + rel)), LOOPBACK), HANG)
                except CLEAR_ERRORS as exc:
                    result.check = code_of(exc)
                else:
                    result.check = "ok (discovered)" if checked.discovered else "ok"
                    await asyncio.to_thread(add_source, room, checked, rel, 3600)
                due = await asyncio.to_thread(store_source, engine,
                                              server.url(quote("/poll/" + rel)), rel)
                await asyncio.wait_for(poll(room, client, LOOPBACK, due), HANG)
            except TimeoutError:
                result.crash = f"hang: no answer within {HANG:.0f}s"
            except Exception as exc:
                result.crash = f"{type(exc).__name__}: {exc}"[:300]
        return result

    async with http_client() as client:
        return list(await asyncio.gather(*(one(client, rel) for rel in files)))


async def check_corpus(root: Path, engine: Engine, server: FeedServer) -> list[CorpusResult]:
    results = await run_corpus(root, engine, server)
    crashes = [f"{r.path}: {r.crash}" for r in results if r.crash]
    assert not crashes, f"{len(crashes)} of {len(results)} crashed:\n" + "\n".join(crashes[:20])
    with session_scope(engine) as session:
        listed = {source.url: source for source, _ in sources.listing(session=session)}
    for r in results:
        polled = listed[server.url(quote("/poll/" + r.path))]
        assert polled.last_polled_at is not None, r.path
        # ok, or a clear error recorded on the source by poll: never neither, never both
        assert (polled.last_ok_at is None) == bool(last_error(polled)), r.path
        # the same bytes: add and poll agree (an HTML page may lead check_feed elsewhere)
        if r.check != "ok (discovered)":
            assert (r.check == "ok") == (last_error(polled) is None), (r.path,
                                                                         last_error(polled))
        if r.check.startswith("ok"):
            added = listed[server.url(quote("/add/" + r.path))]
            assert added.last_ok_at is not None and added.etag, r.path
        if r.path in NEVER_FEEDS:
            assert last_error(polled), r.path
    assert item_count(engine) > 0  # the feeds' entries were stored, not only looked at
    return results


@pytest.mark.asyncio
async def test_full_feedparser_corpus_ends_ok_or_in_a_clear_error(
    db: Engine, server: FeedServer
) -> None:
    if not SHARED_CORPUS.is_dir():
        pytest.skip("feedparser corpus not present (../shared is not part of a clone)")
    results = await check_corpus(SHARED_CORPUS, db, server)
    assert len(results) > 2000
    ok = sum(r.check.startswith("ok") for r in results)
    assert ok >= 0.95 * len(results), f"only {ok} of {len(results)} read as feeds"
    assert_memory_ok()


@pytest.mark.asyncio
async def test_committed_corpus_sample_ends_ok_or_in_a_clear_error(
    db: Engine, server: FeedServer
) -> None:
    """The same test on tests/fixtures/feedparser-corpus, a sample that travels with a clone."""
    results = await check_corpus(FIXTURE_CORPUS, db, server)
    assert len(results) >= 30
    kinds = {r.path.split("/")[0] for r in results}
    assert kinds == {"encoding", "entities", "illformed", "json", "wellformed"}
    ok = [r.path for r in results if r.check.startswith("ok")]
    assert len(ok) >= len(results) - 3, [r for r in results if not r.check.startswith("ok")]
    assert "json/example.json" in ok
    if SHARED_CORPUS.is_dir():  # the sample is still a faithful copy
        for r in results:
            assert (FIXTURE_CORPUS / r.path).read_bytes() == (SHARED_CORPUS / r.path).read_bytes()
    assert_memory_ok()


# ---------------------------------------------------------------- b: hostile sources


class RawServer:
    """A loopback TCP server whose handler writes raw bytes, for what FeedServer cannot do:
    endless chunked bodies, bytes dripped one at a time. One thread per connection."""

    Send = Callable[[bytes], bool]

    def __init__(self, handler: Callable[[Send, threading.Event], None]) -> None:
        self.handler = handler
        self.stopping = threading.Event()
        self.sent = 0  # bytes handlers wrote, all connections together
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str = "/feed.xml") -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}{path}"

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopping.set()
        self._acceptor.join()
        for thread in self._threads:
            thread.join()
        self._listener.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.5)
            head = b""
            deadline = time.monotonic() + 10
            while b"\r\n\r\n" not in head and time.monotonic() < deadline:
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                head += data
            self.handler(lambda data: self._send(conn, data), self.stopping)

    def _send(self, conn: socket.socket, data: bytes) -> bool:
        """Write it all; False once the client is gone or the server stops."""
        view = memoryview(data)
        while view and not self.stopping.is_set():
            try:
                n = conn.send(view)
            except TimeoutError:
                continue
            except OSError:
                return False
            with self._lock:
                self.sent += n
            view = view[n:]
        return not view


RSS_HEAD = b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>t</title>'


def endless_chunked(total: int) -> Callable[[RawServer.Send, threading.Event], None]:
    """A 200 OK with no Content-Length whose chunked body goes on for `total` bytes."""
    item = b"<item><title>more</title><link>http://ex.test/more</link></item>\n"
    piece = item * (64 * 1024 // len(item))
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

    def handler(send: RawServer.Send, stopping: threading.Event) -> None:
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        if not send(head + f"{len(RSS_HEAD):x}\r\n".encode() + RSS_HEAD + b"\r\n"):
            return
        for _ in range(total // len(piece)):
            if not send(chunk):
                return
        send(b"0\r\n\r\n")

    return handler


def drip(payload: bytes, every: float = 2.0) -> Callable[[RawServer.Send, threading.Event], None]:
    """One byte of `payload`, then a pause of `every` seconds, and so on."""

    def handler(send: RawServer.Send, stopping: threading.Event) -> None:
        for i in range(len(payload)):
            if not send(payload[i:i + 1]) or stopping.wait(every):
                return

    return handler


def gzip_bomb(size: int, prefix: bytes = b"") -> bytes:
    """A gzip stream that inflates to `size` bytes: `prefix`, then spaces. A full flush after each
    MiB makes every MiB compress to the same ~1 KB, so this costs nothing to build. The trailer is
    left off: nothing reads that far."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(b" " * MiB) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + segment * (size // MiB)


def gzipped(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def entity_doctype(root: str, declarations: str) -> str:
    return f'<?xml version="1.0"?>\n<!DOCTYPE {root} [\n{declarations}\n]>\n'


def billion_laughs() -> bytes:
    """The classic: ten levels of ten references, 10^9 "lol"s (3 GB) from under 1 KB."""
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    return (entity_doctype("lolz", "\n".join(levels)) + "<lolz>&lol9;</lolz>").encode()


def billion_laughs_in_rss() -> bytes:
    """The same declarations, referenced from inside a real RSS feed."""
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    return (entity_doctype("rss", "\n".join(levels)) + '<rss version="2.0"><channel>'
            "<title>&lol9;</title><item><title>&lol9;</title><description>&lol9;</description>"
            "<link>http://ex.test/1</link></item></channel></rss>").encode()


def quadratic_blowup(refs: int = 20_000, size: int = 10_000) -> bytes:
    """One flat entity of `size` characters referenced `refs` times: no nesting for a depth
    limit to catch, and a flat value is one feedparser deems "safe" and keeps. 70 KB of RSS
    that expand to 200 MB."""
    return (entity_doctype("rss", f'<!ENTITY a "{"x" * size}">') + '<rss version="2.0">'
            f"<channel><title>t</title><item><title>t</title><description>{'&a;' * refs}"
            "</description><link>http://ex.test/1</link></item></channel></rss>").encode()


# A child process runs check_feed where a bug would take the memory of the test process (or the
# machine) with it: its address space is capped, and it reports its own peak RSS.
CHILD = textwrap.dedent("""
    import asyncio, ipaddress, json, resource, sys, time
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import httpx
    from news.feeds import DeclaresEntities, NotAFeed
    from news.fetch import FetchError, FetchPolicy
    from news.adding import check_feed

    async def main(url):
        policy = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
        report, entries = {}, []
        try:
            async with httpx.AsyncClient(trust_env=False) as client:
                checked = await asyncio.wait_for(check_feed(client, url, policy), hang)
            report["outcome"], entries = "ok", checked.feed.entries
        except TimeoutError:
            report["outcome"] = "hang"
        except FetchError as exc:
            report["outcome"] = "FetchError:" + exc.code
        except NotAFeed:
            report["outcome"] = "NotAFeed"
        except BaseException as exc:
            report["outcome"] = "unhandled:" + type(exc).__name__
        report["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        report["longest_field"] = max(
            (len(v) for e in entries for v in e.values() if isinstance(v, str)), default=0)
        print(json.dumps(report))

    hang = float(sys.argv[3])
    asyncio.run(main(sys.argv[1]))
""")


def check_feed_in_child(url: str, address_space: int = 2048 * MiB) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, url, str(address_space), str(HANG)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"outcome": f"died: rc={done.returncode} {done.stderr[-500:]}",
                "peak_rss": 0, "longest_field": 0}
    report: dict[str, Any] = json.loads(lines[-1])
    return report


@pytest.mark.asyncio
async def test_billion_laughs_is_not_a_feed(server: FeedServer) -> None:
    server.put("/lol.xml", billion_laughs(), content_type="application/xml")
    error = await clear_error(server.url("/lol.xml"))
    assert isinstance(error, DeclaresEntities)  # refused by the scan, before any parser
    assert_memory_ok()


@pytest.mark.asyncio
async def test_billion_laughs_inside_rss_is_not_expanded(server: FeedServer) -> None:
    """Readable as a feed, or refused: either way the references stay unexpanded."""
    body = billion_laughs_in_rss()
    server.put("/lol.xml", body, content_type="application/rss+xml")
    async with http_client() as client:
        try:
            checked = await asyncio.wait_for(check_feed(client, server.url("/lol.xml"),
                                                        LOOPBACK), HANG)
        except CLEAR_ERRORS:
            pass
        else:
            longest = max(len(str(v)) for e in checked.feed.entries for v in e.values())
            assert longest <= len(body) and len(checked.feed.title) <= len(body)
    assert_memory_ok()


def test_quadratic_entity_blowup_is_refused_or_left_unexpanded(server: FeedServer) -> None:
    body = quadratic_blowup()
    server.put("/blowup.xml", body, content_type="application/rss+xml")
    report = check_feed_in_child(server.url("/blowup.xml"))
    assert report["outcome"] in ("ok", "NotAFeed"), report  # not "hang": ended within HANG
    # An undeclared entity stays as escaped text (&amp;a;): twice its size, never a blowup.
    assert report["longest_field"] <= 2 * len(body), report
    assert report["peak_rss"] < MEMORY_LIMIT, report


@pytest.mark.asyncio
async def test_external_entities_are_never_fetched_nor_read(server: FeedServer) -> None:
    secret = server.url("/secret")
    server.put("/secret", "TOP-SECRET-TOKEN", content_type="text/plain")
    declarations = (f'<!ENTITY web SYSTEM "{secret}">\n'
                    '<!ENTITY file SYSTEM "file:///etc/hostname">\n'
                    f'<!ENTITY % remote SYSTEM "{secret}">\n%remote;')
    body = (entity_doctype("rss", declarations) + '<rss version="2.0"><channel><title>t</title>'
            "<item><title>&web;</title><description>&file;</description>"
            "<link>http://ex.test/1</link></item></channel></rss>")
    server.put("/xxe.xml", body, content_type="application/rss+xml")
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    async with http_client() as client:
        try:
            checked = await check_feed(client, server.url("/xxe.xml"), LOOPBACK)
        except CLEAR_ERRORS:
            pass
        else:
            text = repr(checked.feed)
            assert "TOP-SECRET-TOKEN" not in text
            assert not hostname or hostname not in text
    assert server.hits("/secret") == 0


@pytest.mark.asyncio
async def test_endless_body_without_content_length_is_cut_at_the_cap() -> None:
    total = 200 * MiB
    with RawServer(endless_chunked(total)) as raw:
        error = await clear_error(raw.url())
        sent = raw.sent
    assert code_of(error) == "too_large"
    # the cap is 10 MB; what the server got out besides is what the socket buffers held
    assert sent < LOOPBACK.max_bytes + 30 * MiB, f"server wrote {sent / MiB:.0f} MiB"
    assert_memory_ok()


@pytest.mark.asyncio
async def test_gzip_bomb_is_cut_at_the_cap(server: FeedServer) -> None:
    bomb = gzip_bomb(1024 * MiB, RSS_HEAD)  # ~1 MB on the wire, 1 GiB inflated
    assert len(bomb) < 2 * MiB
    server.put("/bomb.xml", bomb, content_type="application/rss+xml",
               headers={"Content-Encoding": "gzip"})
    error = await clear_error(server.url("/bomb.xml"))
    assert code_of(error) == "too_large"
    assert_memory_ok()


def test_stacked_gzip_bomb_is_cut_at_the_cap(server: FeedServer) -> None:
    bomb = gzipped(gzip_bomb(4096 * MiB, RSS_HEAD))  # ~10 KB on the wire, 4 GiB inflated
    assert len(bomb) < 64 * 1024
    server.put("/bomb.xml", bomb, content_type="application/rss+xml",
               headers={"Content-Encoding": "gzip, gzip"})
    report = check_feed_in_child(server.url("/bomb.xml"))
    assert report["outcome"] == "FetchError:too_large", report
    assert report["peak_rss"] < MEMORY_LIMIT, report


@pytest.mark.asyncio
@pytest.mark.parametrize("stage", ["status-line", "body"])
async def test_a_drip_feed_server_times_out(stage: str) -> None:
    """One byte every two seconds never trips a read timeout; the total timeout must."""
    feed = rss("Drip", [{"title": "slow", "link": "http://ex.test/1"}]).encode()
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
            b"Content-Length: " + str(len(feed)).encode() + b"\r\n\r\n")

    def head_then_drip(send: RawServer.Send, stopping: threading.Event) -> None:
        if send(head):
            drip(feed)(send, stopping)

    handler = drip(head + feed) if stage == "status-line" else head_then_drip
    policy = replace(LOOPBACK, timeout_seconds=3.0)
    with RawServer(handler) as raw:
        error = await clear_error(raw.url(), policy)
    # the policy's total timeout (a read timeout would be a "network" error: none came)
    assert code_of(error) == "timeout"
    assert_memory_ok()


@pytest.mark.asyncio
async def test_redirect_to_the_metadata_address_is_blocked(server: FeedServer) -> None:
    server.put("/feed.xml", "", status=302,
               headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    error = await clear_error(server.url("/feed.xml"))
    assert code_of(error) == "blocked_address"


@pytest.mark.asyncio
async def test_feed_link_to_the_metadata_address_is_blocked(server: FeedServer) -> None:
    """Autodiscovery is a second fetch: it must be checked as the first one is."""
    server.put("/page", html_page("Blog", "http://169.254.169.254/latest/meta-data/"),
               content_type="text/html; charset=utf-8")
    error = await clear_error(server.url("/page"))
    assert code_of(error) == "blocked_address"


@pytest.mark.asyncio
@pytest.mark.parametrize("hops", [1, 2])
async def test_redirect_loop_ends(server: FeedServer, hops: int) -> None:
    for n in range(hops):
        server.put(f"/loop/{n}", "", status=302, headers={"Location": f"/loop/{(n + 1) % hops}"})
    error = await clear_error(server.url("/loop/0"))
    assert code_of(error) == "too_many_redirects"
    assert sum(server.hits(f"/loop/{n}") for n in range(hops)) <= 10


@pytest.mark.asyncio
async def test_html_page_without_a_feed_is_not_a_feed(server: FeedServer) -> None:
    server.put("/", html_page("Just a blog"), content_type="text/html; charset=utf-8")
    error = await clear_error(server.url("/"))
    assert isinstance(error, NotAFeed)


@pytest.mark.asyncio
async def test_html_page_advertising_itself_is_not_a_feed(server: FeedServer) -> None:
    """Autodiscovery follows one link, once: a page pointing at itself cannot loop."""
    server.put("/", html_page("Mirror", "/"), content_type="text/html; charset=utf-8")
    error = await clear_error(server.url("/"))
    assert isinstance(error, NotAFeed)
    assert server.hits("/") == 2


@pytest.mark.asyncio
async def test_server_error_is_an_http_status(server: FeedServer) -> None:
    server.put("/feed.xml", "Internal Server Error", status=500, content_type="text/plain")
    error = await clear_error(server.url("/feed.xml"))
    assert code_of(error) == "http_status"
    assert isinstance(error, FetchError) and error.detail == "500"


@pytest.mark.asyncio
async def test_a_hostile_source_is_recorded_by_poll(
    db: Engine, room: Newsroom, server: FeedServer
) -> None:
    """The job's side: poll never raises, and the source carries the error."""
    server.put("/lol.xml", billion_laughs(), content_type="application/xml")
    server.put("/500.xml", "no", status=500, content_type="text/plain")
    server.put("/meta.xml", "", status=302, headers={"Location": "http://169.254.169.254/"})
    async with http_client() as client:
        for path in ("/lol.xml", "/500.xml", "/meta.xml"):
            due = store_source(db, server.url(path), path)
            await asyncio.wait_for(poll(room, client, LOOPBACK, due), HANG)
    errors = {path: last_error(source_row(db, server.url(path))) or StoredError("")
              for path in ("/lol.xml", "/500.xml", "/meta.xml")}
    assert errors["/lol.xml"].code == "xml_entities", errors
    assert errors["/500.xml"] == StoredError("http_status", "500"), errors
    assert errors["/meta.xml"].code == "blocked_address", errors
    assert item_count(db) == 0


ARTICLE = ("<html><head><title>Harbour</title></head><body><nav>Home</nav><article>"
           "<h1>Harbour budget</h1>" + "".join(
               f"<p>{'The council approved the harbour budget after a long debate. ' * 4}"
               f"Paragraph {n}.</p>" for n in range(4)) + "</article></body></html>")


@pytest.mark.asyncio
async def test_hostile_article_links_cost_poll_nothing_but_time(
    db: Engine, room: Newsroom, server: FeedServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each snippet entry's link is fetched for its article text (news.article): a URL the feed's
    author chose. Hostile ones must leave the item its snippet, within the fetch limits."""
    monkeypatch.setattr(polling, "complete", article.complete)
    feed = rss("Drip", [{"title": "x", "link": "http://ex.test/x"}]).encode()
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
            b"Content-Length: " + str(len(feed)).encode() + b"\r\n\r\n")
    server.put("/good", ARTICLE, content_type="text/html; charset=utf-8")
    server.put("/meta", "", status=302, headers={"Location": "http://169.254.169.254/"})
    server.put("/500", "no", status=500, content_type="text/plain")
    server.put("/bomb", gzip_bomb(1024 * MiB, b"<html><body><p>"), content_type="text/html",
               headers={"Content-Encoding": "gzip"})
    policy = replace(LOOPBACK, timeout_seconds=3.0)
    with RawServer(drip(head + feed)) as raw:
        links = {"good": server.url("/good"), "meta": server.url("/meta"),
                 "500": server.url("/500"), "bomb": server.url("/bomb"), "drip": raw.url()}
        entries = [{"title": f"Story {name}", "link": link, "guid": name}
                   for name, link in links.items()]
        server.put("/feed.xml", rss("News", entries))
        url = server.url("/feed.xml")
        store_source(db, url, "News")
        with caplog.at_level(logging.DEBUG, logger="news.article"):
            async with http_client() as client:
                await asyncio.wait_for(poll(room, client, policy, claim(db, url)), HANG)
    # the drip was ended by the fetch's own timeout, not by the article batch's 15 s
    assert f"article fetch failed for {links['drip']}: timeout" in caplog.text
    assert "article batch ran past" not in caplog.text
    with session_scope(db) as session:
        stored = {row.guid: row.summary for row in session.exec(select(Item)).all()}
    assert set(stored) == set(links)
    assert "harbour budget" in stored["good"]
    assert all("harbour" not in stored[name] for name in links if name != "good")
    assert last_error(source_row(db, url)) is None
    assert_memory_ok()


INTRANET_PAGE = ("<html><body><article><h1>Remote access</h1>" + "".join(
    f"<p>{'The VPN password is hunter2, the intranet page says. ' * 4}Line {n}.</p>"
    for n in range(4)) + "</article></body></html>")


@pytest.mark.asyncio
@pytest.mark.parametrize(("feed_host", "link_host", "networks", "fetched"), [
    ("93.184.216.34", "10.1.2.3", ["10.0.0.0/8"], False),  # a public feed's intranet link
    ("93.184.216.34", "93.184.216.35", ["10.0.0.0/8"], True),  # its public link
    ("10.0.0.5", "10.1.2.3", ["10.0.0.0/8"], True),  # an intranet feed, into its own network
    ("10.0.0.5", "192.168.1.5", ["10.0.0.0/8", "192.168.0.0/16"], False),  # into another one
    ("::ffff:10.0.0.5", "10.1.2.3", ["10.0.0.0/8"], True),  # its own, the IPv4 it carries
])
async def test_article_pages_reach_allowed_networks_only_from_inside_them(
    db: Engine, room: Newsroom, monkeypatch: pytest.MonkeyPatch, feed_host: str,
    link_host: str, networks: list[str], fetched: bool,
) -> None:
    """An item's link is chosen by the feed's publisher, not by the admin who allowed an
    intranet network for their own feeds: article pages are judged by the public-only rule,
    unless the feed itself came from an allowed network and the link points into that one."""
    monkeypatch.setattr(polling, "complete", article.complete)
    feed_url = f"http://{feed_host if ':' not in feed_host else f'[{feed_host}]'}/feed.xml"
    link = f"http://{link_host}/vpn"
    hits: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        hits.append(str(request.url))
        page = str(request.url) == link
        body = (INTRANET_PAGE if page
                else rss("News", [{"title": "Remote access", "link": link}])).encode()

        async def streamed() -> AsyncIterator[bytes]:  # as a server sends it: fetch streams
            yield body

        return httpx.Response(200, content=streamed(), headers={
            "content-type": "text/html; charset=utf-8" if page else "application/rss+xml"})

    policy = FetchPolicy(allowed_networks=tuple(ipaddress.ip_network(n) for n in networks))
    store_source(db, feed_url, "News")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        await asyncio.wait_for(poll(room, client, policy, claim(db, feed_url)), HANG)
    with session_scope(db) as session:
        [summary] = [row.summary for row in session.exec(select(Item)).all()]
    assert (link in hits) is fetched, hits
    assert ("hunter2" in summary) is fetched, summary


# ---------------------------------------------------------------- c: conditional GET


ENTRIES = [{"title": f"Story {n}", "link": f"http://ex.test/{n}", "guid": f"g{n}"}
           for n in range(5)]


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """What poll fetched (statuses) and how often it parsed, seen from inside news.poll."""
    seen: dict[str, list[Any]] = {"statuses": [], "parsed": []}
    real_fetch, real_read = polling.fetch, polling.INLINE.read

    async def fetch(*args: Any, **kwargs: Any) -> Any:
        fetched = await real_fetch(*args, **kwargs)
        seen["statuses"].append(fetched.status)
        return fetched

    async def read(body: bytes, url: str) -> Any:
        seen["parsed"].append(url)
        return await real_read(body, url)

    monkeypatch.setattr(polling, "fetch", fetch)
    monkeypatch.setattr(polling.INLINE, "read", read)
    return seen


@pytest.mark.asyncio
async def test_unchanged_feed_costs_a_304_and_parses_nothing(
    db: Engine, room: Newsroom, server: FeedServer, watched: dict[str, list[Any]]
) -> None:
    server.put("/feed.xml", rss("News", ENTRIES))
    url = server.url("/feed.xml")
    store_source(db, url, "News")
    async with http_client() as client:
        await poll(room, client, LOOPBACK, claim(db, url))
        assert item_count(db) == len(ENTRIES)
        second = claim(db, url)
        assert second.etag == server.etag("/feed.xml")
        await poll(room, client, LOOPBACK, second)
    assert watched["statuses"] == [200, 304]
    assert watched["parsed"] == [url]  # the first poll only
    assert item_count(db) == len(ENTRIES)
    sent = [headers for path, headers in server.requests if path == "/feed.xml"]
    assert len(sent) == 2 and "if-none-match" not in sent[0]
    assert sent[1]["if-none-match"] == server.etag("/feed.xml")
    row = source_row(db, url)
    assert last_error(row) is None and row.etag == server.etag("/feed.xml")


@pytest.mark.asyncio
async def test_first_poll_after_addsource_is_already_a_304(
    db: Engine, room: Newsroom, server: FeedServer, watched: dict[str, list[Any]]
) -> None:
    """/addsource stores the validators of its check, so the job's first poll parses nothing."""
    server.put("/feed.xml", rss("News", ENTRIES))
    url = server.url("/feed.xml")
    async with http_client() as client:
        checked = await check_feed(client, url, LOOPBACK)
        _, baseline = add_source(room, checked, "News", 3600)
        assert baseline == item_count(db) == len(ENTRIES)
        for seen in watched.values():  # forget the check's own fetch and parse
            seen.clear()
        for _ in range(2):
            await poll(room, client, LOOPBACK, claim(db, url))
    assert watched["statuses"] == [304, 304] and watched["parsed"] == []
    assert item_count(db) == len(ENTRIES)
    assert server.hits("/feed.xml") == 3


@pytest.mark.asyncio
async def test_a_changed_feed_after_a_304_is_fetched_and_parsed(
    db: Engine, room: Newsroom, server: FeedServer, watched: dict[str, list[Any]]
) -> None:
    """The control: validators that no longer match bring the new body, and only its news."""
    server.put("/feed.xml", rss("News", ENTRIES))
    url = server.url("/feed.xml")
    store_source(db, url, "News")
    async with http_client() as client:
        await poll(room, client, LOOPBACK, claim(db, url))
        await poll(room, client, LOOPBACK, claim(db, url))
        more = [*ENTRIES, {"title": "Story 5", "link": "http://ex.test/5", "guid": "g5"}]
        server.put("/feed.xml", rss("News", more))
        await poll(room, client, LOOPBACK, claim(db, url))
    assert watched["statuses"] == [200, 304, 200]
    assert len(watched["parsed"]) == 2
    assert item_count(db) == len(ENTRIES) + 1


@pytest.mark.asyncio
async def test_full_entries_skip_the_look_up_before_article_fetches_and_are_stored_once(
    db: Engine, room: Newsroom, server: FeedServer, watched: dict[str, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no snippet among the entries there is no article to fetch, so no look-up for
    unseen entries before it; the ingest's own look-up keeps what is stored from coming twice."""
    looked_up: list[int] = []
    real_unseen = polling.unseen

    def unseen(*, session: Any, source: DueSource, drafts: Any) -> Any:
        looked_up.append(len(drafts))
        return real_unseen(session=session, source=source, drafts=drafts)

    monkeypatch.setattr(polling, "unseen", unseen)
    full = " ".join(f"Sentence {n} of a full article about tidal power in Brittany." for n in
                    range(8))
    entries = [{"title": f"Full story {n}", "link": f"http://ex.test/full/{n}", "guid": f"f{n}",
                "description": full} for n in range(3)]
    server.put("/feed.xml", rss("News", entries))
    url = server.url("/feed.xml")
    store_source(db, url, "News")
    async with http_client() as client:
        await poll(room, client, LOOPBACK, claim(db, url))
        more = [*entries, {**entries[0], "title": "Full story 3", "link": "http://ex.test/full/3",
                           "guid": "f3", "description": full.replace("tidal", "wind")}]
        server.put("/feed.xml", rss("News", more))
        await poll(room, client, LOOPBACK, claim(db, url))
        assert looked_up == [], "no snippet, no look-up before the (absent) article fetches"
        server.put("/feed.xml", rss("News", [*more, {"title": "A teaser", "guid": "t",
                                                     "link": "http://ex.test/teaser"}]))
        await poll(room, client, LOOPBACK, claim(db, url))
    assert looked_up == [5], "a snippet among them: all five entries looked up first"
    assert watched["statuses"] == [200, 200, 200]
    assert item_count(db) == 5


@pytest.mark.asyncio
async def test_poll_without_full_text_still_stores_new_entries(
    db: Engine, room: Newsroom, server: FeedServer
) -> None:
    """FULL_TEXT off skips the article fetches, not the ingest (it once sat inside that `if`)."""
    server.put("/feed.xml", rss("News", ENTRIES))
    url = server.url("/feed.xml")
    store_source(db, url, "News")
    async with http_client() as client:
        await poll(room, client, LOOPBACK, claim(db, url), full_text=False)
    assert item_count(db) == len(ENTRIES)


@pytest.mark.asyncio
async def test_near_duplicates_in_one_poll_make_one_story(
    db: Engine, room: Newsroom, server: FeedServer
) -> None:
    title = "Harbour council approves record budget for the new bridge project"
    lead = "The harbour council approved a record budget for the bridge on Monday after a debate."
    server.put("/feed.xml", rss("News", [
        {"title": title, "link": "http://ex.test/a", "guid": "a", "description": lead},
        {"title": title + " (updated)", "link": "http://ex.test/b", "guid": "b",
         "description": lead},
    ]))
    url = server.url("/feed.xml")
    store_source(db, url, "News")
    async with http_client() as client:
        await poll(room, client, LOOPBACK, claim(db, url))
    with session_scope(db) as session:
        stories = {row.story_id for row in session.exec(select(Item)).all()}
    assert item_count(db) == 2
    assert len(stories) == 1, stories


# ---------------------------------------------------------------- ingest at scale


@pytest.mark.asyncio
async def test_ingest_finds_items_through_indexes(
    db: Engine, room: Newsroom, server: FeedServer
) -> None:
    """Every query an ingest sends to the items table searches an index, none scans it: a
    lookup by link once scanned every recent item (no index on items.link) and made a poll
    cycle quadratic (bench/poll.py: 20 ms a lookup at 45,000 items)."""
    server.put("/feed.xml", rss("News", ENTRIES))
    url = server.url("/feed.xml")
    store_source(db, url, "News")
    sent: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM items" in statement:
            sent.append((statement, parameters))

    event.listen(db, "before_cursor_execute", grab)
    try:
        async with http_client() as client:
            await poll(room, client, LOOPBACK, claim(db, url))
    finally:
        event.remove(db, "before_cursor_execute", grab)
    assert item_count(db) == len(ENTRIES)
    assert any("items.guid" in statement for statement, _ in sent)  # identity (SPEC §2)
    with db.connect() as connection:
        for statement, parameters in sent:
            plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                              parameters).fetchall()
            detail = " | ".join(str(row[-1]) for row in plan)
            assert "SCAN items" not in detail, (statement, detail)
            if "items.link" in statement and "items.source_id" not in statement:
                assert "link" in detail.split("USING")[-1], (statement, detail)


@pytest.mark.asyncio
async def test_a_poll_pass_gives_what_it_freed_back_to_the_system(
    db: Engine, room: Newsroom, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """news.heap.release once after a pass that polled, not on every idle tick."""
    server.put("/f.xml", rss("Feed", [{"title": "A story", "guid": "1", "link": "http://ex.test/1"}]))
    store_source(db, server.url("/f.xml"), "Feed")
    with session_scope(db) as session:
        for source in session.exec(select(Source)).all():
            source.next_poll_at = utcnow() - timedelta(seconds=1)
    released: list[int] = []
    monkeypatch.setattr(heap, "release", lambda: released.append(item_count(db)) or True)
    async with http_client() as client:
        polled = await polling.poll_due(room, client, LOOPBACK, full_text=False)
        assert len(polled) == 1 and released == [1], "after the pass's items were stored"
        assert await polling.poll_due(room, client, LOOPBACK, full_text=False) == []
    assert released == [1]


@pytest.mark.asyncio
async def test_poll_due_polls_each_due_source_once_and_survives_a_failing_one(
    db: Engine, room: Newsroom, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = []
    for n in range(12):
        server.put(f"/f{n}.xml", rss(f"Feed {n}", [{"title": f"Feed {n} story", "guid": f"{n}",
                                                  "link": f"http://ex.test/{n}"}]))
        urls.append(server.url(f"/f{n}.xml"))
        store_source(db, urls[-1], f"Feed {n}")
    with session_scope(db) as session:
        for source in session.exec(select(Source)).all():
            source.next_poll_at = utcnow() - timedelta(seconds=1)
    real_store = storage_items.store

    def store(**kwargs: Any) -> storage_items.Stored:
        if kwargs["source_name"] == "Feed 3":
            raise RuntimeError("database lost")
        return real_store(**kwargs)

    monkeypatch.setattr(storage_items, "store", store)
    real_ingest_each, batches = polling.ingest_each, []

    def ingest_each(
        newsroom: Newsroom, outcomes: list[Outcome]
    ) -> Sequence[int | Exception]:
        """The first transaction is slow, so the polls that finish meanwhile share the next."""
        batches.append([outcome.source.name for outcome in outcomes])
        if len(batches) == 1:
            time.sleep(0.5)
        return real_ingest_each(newsroom, outcomes)

    monkeypatch.setattr(polling, "ingest_each", ingest_each)
    async with http_client() as client:
        polled = await polling.poll_due(room, client, LOOPBACK, concurrency=4, full_text=False)
        again = await polling.poll_due(room, client, LOOPBACK, concurrency=4, full_text=False)
    assert max(len(batch) for batch in batches) > 1, batches
    assert len(polled) == 11 and sum(result.new for result in polled) == 11
    assert again == [], "every source was claimed once, for its next interval"
    assert item_count(db) == 11
    assert source_row(db, urls[3]).last_ok_at is None
    assert all(source_row(db, url).last_ok_at is not None for url in urls if url != urls[3])
