"""Feeds real publishers served (../shared/corpus/real-world, MIT; a committed sample under
tests/fixtures/real-world for clones without it): each is accepted as feedparser reads it, and a
post the publisher adds later, in the feed's own format and encoding, reaches a subscriber
exactly once, with clean text, its own link and a plausible date.

Ingestion runs through the pipeline functions the bot runs (check_feed, add_source, poll) over
loopback HTTP into a SQLite database; one podcast runs through the real bot end to end.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from jobs.pacing import PACING
from locales import catalog
from news.adding import add_source, check_feed
from news.alerts import render_delivery
from news.briefing import write_missing_briefs
from news.briefs import BriefWriter
from news.items import clean_link
from news.newsroom import Newsroom
from news.poll import poll
from storage import deliveries, subscriptions
from storage.chats import ensure_chat
from storage.db import make_engine, migrate, session_scope
from storage.models import Delivery, Item, utcnow
from tests.fakes.feeds import FeedServer
from tests.fakes.telegram_html import parse_html
from tests.harness import ADMIN_ID, LOOPBACK, World, claim, http_client, in_session, say

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "corpus" / "real-world"
SAMPLE = REPO / "tests" / "fixtures" / "real-world"
CORPUS = SHARED if SHARED.is_dir() else SAMPLE
NOT_FEEDS = {"LICENSE", "README.md", "manifest.json"}
FILES = sorted(str(path.relative_to(CORPUS)) for path in CORPUS.rglob("*")
               if path.is_file() and path.name not in NOT_FEEDS)
# The JSON Feed with the version URL many feeds wrote before the spec moved to https
# (Pixel Envy's): the same file, its version field only changed.
HTTP_JSON_FEED = "feedjira/json_feed.json?version=http"

TITLE = "Zephyr quokka & the café: naïve “smiles” 软银"
TEXT = ("<p>The Zephyr quokka &amp; its friends <b>smile</b> at the café.</p>"
        "<p>Rangers say they are only panting in the heat; 软银 was not involved.</p>")
PLAIN = ("The Zephyr quokka & its friends smile at the café.\n"
         "Rangers say they are only panting in the heat; 软银 was not involved.")
MOJIBAKE = re.compile("Ã|Â|â€|ï¿½|\ufffd|è½¯")


def test_the_corpus_is_there() -> None:
    """The committed sample keeps the feeds that showed the bugs, and its licence."""
    assert (SAMPLE / "LICENSE").is_file()
    assert {"rssparser/itunes-missing-image.rss", "feedjira/json_feed.json",
            "rssparser/encoding.rss"} <= {str(p.relative_to(SAMPLE)) for p in SAMPLE.rglob("*")}
    if CORPUS is SHARED:
        assert len(FILES) == 48


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'real.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def body_of(name: str) -> bytes:
    if name == HTTP_JSON_FEED:
        document = json.loads((CORPUS / "feedjira/json_feed.json").read_bytes())
        document["version"] = "http://jsonfeed.org/version/1"
        return json.dumps(document).encode()
    return (CORPUS / name).read_bytes()


def is_json(body: bytes) -> bool:
    return body.lstrip(b"\xef\xbb\xbf \r\n\t")[:1] == b"{"


@dataclass(frozen=True)
class Expected:
    """What feedparser (or, for JSON Feed, the JSON itself) says the feed holds."""

    title: str
    tracked: int
    identified: bool  # entries carry guids/ids
    first_link: str


def _bare(value: str) -> str:
    return re.sub(r"<[^>]*>", "", value or "").strip()


def expected_of(body: bytes) -> Expected:
    """Entries with a title or text, one per guid (or link where there is none)."""
    if is_json(body):
        document = json.loads(body)
        entries = [{"id": str(item.get("id") or ""), "link": item.get("url") or "",
                    "title": item.get("title") or "",
                    "summary": item.get("content_html") or item.get("content_text") or ""}
                   for item in document["items"]]
        title = document.get("title", "")
    else:
        parsed = feedparser.parse(body)
        entries = [dict(entry) for entry in parsed.entries]
        title = parsed.feed.get("title", "")
    keys = set()
    for entry in entries:
        text = _bare(entry.get("title", "")) + _bare(entry.get("summary", "")) + "".join(
            _bare(part.get("value", "")) for part in entry.get("content") or [])
        if text:
            keys.add(str(entry.get("id") or "").strip() or entry.get("link") or text)
    identified = bool(entries) and all(str(entry.get("id") or "").strip() for entry in entries)
    first_link = next((str(entry.get("link")) for entry in entries if entry.get("link")), "")
    return Expected(title.strip(), len(keys), identified, first_link)


def new_link(expected: Expected, feed_url: str) -> tuple[str, str]:
    """The new post's link and guid. Where entries carry guids, it shares the first entry's
    link (a podcast's home page, a day's page); where they do not, the link is the identity,
    and differs from the first entry's by its fragment only."""
    shared = urljoin(feed_url, expected.first_link) if expected.first_link else ""
    if shared and "utm_" in shared:
        shared = ""
    if expected.identified:
        return shared or "http://news.test/real-world/new", "tidings-new-post-1"
    base = shared.split("#")[0] if shared else "http://news.test/real-world/day.html"
    return f"{base}#tidings-new", ""


def append_entry(body: bytes, link: str, guid: str, when: datetime) -> bytes:
    """The new post, first, written as the feed writes its entries, in the feed's encoding."""
    if is_json(body):
        document = json.loads(body)
        item: dict[str, Any] = {"id": guid, "url": link, "title": TITLE, "content_html": TEXT,
                                "date_published": when.isoformat()}
        document["items"] = [item, *document["items"]]
        return json.dumps(document, ensure_ascii=False).encode()
    parsed = feedparser.parse(body)  # the encoding it declares, or the one it is written in
    version, encoding = parsed.version, parsed.get("encoding") or "utf-8"
    cdata = f"<![CDATA[{TEXT}]]>"
    title = html.escape(TITLE, quote=False)
    if version.startswith("atom"):
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = (f'<entry><title type="html">{title}</title>'
                 f'<link rel="alternate" type="text/html" href="{html.escape(link)}"/>'
                 f"<id>{guid}</id><updated>{stamp}</updated><issued>{stamp}</issued>"
                 f"<published>{stamp}</published>"
                 f'<content type="html">{cdata}</content></entry>')
        closing = rb"</(?:\w+:)?feed>"
    elif version in ("rss10", "rss090"):
        entry = (f'<item rdf:about="{html.escape(guid or link)}"><title>{title}</title>'
                 f"<link>{html.escape(link)}</link><description>{cdata}</description>"
                 '<dc:date xmlns:dc="http://purl.org/dc/elements/1.1/">'
                 f'{when.strftime("%Y-%m-%dT%H:%M:%SZ")}</dc:date></item>')
        closing = rb"</(?:\w+:)?RDF>"
    else:
        guid_tag = f'<guid isPermaLink="false">{guid}</guid>' if guid else ""
        entry = (f"<item><title>{title}</title><link>{html.escape(link)}</link>{guid_tag}"
                 f"<description>{cdata}</description>"
                 f"<pubDate>{format_datetime(when)}</pubDate></item>")
        closing = rb"</channel>"
    written = entry.encode(encoding, "xmlcharrefreplace")
    if version.startswith("atom") or version in ("rss10", "rss090"):
        at = [m.start() for m in re.finditer(closing, body, re.IGNORECASE)][-1]
    else:  # first in the channel, after its own elements: before its first item
        first = re.search(rb"<item[\s>]", body, re.IGNORECASE)
        at = first.start() if first else [m.start() for m in
                                          re.finditer(closing, body, re.IGNORECASE)][-1]
    return body[:at] + written + body[at:]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", [*FILES, HTTP_JSON_FEED])
async def test_a_real_feed_is_read_whole_and_its_next_post_is_alerted_once(
    db: Engine, name: str
) -> None:
    body = body_of(name)
    expected = expected_of(body)
    room = Newsroom(db)
    with FeedServer() as server:
        server.put("/feed", body)
        url = server.url("/feed")
        async with http_client() as client:
            checked = await check_feed(client, url, LOOPBACK)
            assert checked.feed.title == expected.title
            _, tracked = add_source(room, checked, checked.feed.title or url, 3600)
            assert tracked == expected.tracked
            with session_scope(db) as session:
                ensure_chat(session=session, chat_id=1, chat_type="private", title=None,
                            language="en")
                subscriptions.add(session=session, chat_id=1, query="Zephyr")
            link, guid = new_link(expected, url)
            when = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
            server.put("/feed", append_entry(body, link, guid, when))
            for _ in range(2):
                polled = await poll(room, client, LOOPBACK, claim(db, url), full_text=False)
                assert polled.error is None
    with session_scope(db) as session:
        sent = session.exec(select(Delivery)).all()
        assert len(sent) == 1, "alerted exactly once"
        items = session.exec(select(Item).where(Item.story_id == sent[0].story_id)).all()
        assert [item.title for item in items] == [TITLE]
        assert items[0].summary == PLAIN
        assert items[0].link == clean_link(link)
        assert items[0].published_at == when
        assert session.exec(select(Item)).all().__len__() == expected.tracked + 1
    await write_missing_briefs(db, BriefWriter(None, "none"))
    with session_scope(db) as session:
        claimed = deliveries.claim(session=session, now=utcnow(), lease=PACING.lease)
    alert = in_session(db, render_delivery, claimed=claimed[0],
                       t=lambda key, **values: catalog.text("en", key, **values))
    text = parse_html(alert.html)
    assert TITLE in text and "Zephyr quokka & its friends smile at the café." in text
    for dirt in ("<b>", "</p>", "&amp;", "&lt;", "CDATA", "]]>"):
        assert dirt not in text, dirt
    assert not MOJIBAKE.search(text), text
    assert f'href="{html.escape(clean_link(link))}"' in alert.html
    assert f"{when:%Y-%m-%d}" in text


PODCAST = "rssparser/itunes-missing-image.rss"


def test_a_podcast_whose_episodes_all_link_home_gets_its_new_episode_alerted(
    world: World,
) -> None:
    """Every episode of this show links to its home page; a new one, with its own guid, must
    reach the subscriber like any post (it used to be taken for an old episode)."""
    telegram, feeds = world.telegram, world.feeds
    body = (CORPUS / PODCAST).read_bytes()
    expected = expected_of(body)
    feeds.put("/podcast.rss", body)
    admin = telegram.user(ADMIN_ID, "Ada")
    reply = say(telegram, telegram.private_chat(admin), admin,
                f"/addsource {feeds.url('/podcast.rss')}")
    assert f"Entries now in the feed: {expected.tracked};" in reply, reply
    user = telegram.user(8101, "Pod", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/subscribe Zephyr")
    count = len(telegram.messages(chat["id"]))
    home = expected.first_link
    assert urlsplit(home).path in ("", "/") or home.endswith("/"), home
    when = utcnow() - timedelta(minutes=1)
    feeds.put("/podcast.rss", append_entry(body, home, "tidings-episode-132", when))
    alert = telegram.wait_for_messages(chat["id"], count + 1, timeout=30)[count]
    assert TITLE in alert.text
    assert f'href="{html.escape(home)}"' in alert.html
    time.sleep(3)  # a few more polls (one a second): still one alert
    assert len(telegram.messages(chat["id"])) == count + 1

