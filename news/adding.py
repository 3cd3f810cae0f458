"""A new source: its feed checked now, then stored with its current entries as a baseline."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from news.feeds import NotAFeed, ParsedFeed
from news.fetch import FetchPolicy, fetch
from news.ingest import clustered, store_drafts
from news.newsroom import Newsroom
from news.parsing import FeedReader, drafts_of
from news.poll import INLINE
from storage import sources


@dataclass(frozen=True)
class CheckedFeed:
    """A URL that turned out to be (or to point at) a readable feed."""

    url: str
    feed: ParsedFeed
    discovered: bool
    etag: str | None = None
    last_modified: str | None = None
    links: str = ""  # the response's Link header (a WebSub hub may be named there)


async def check_feed(
    client: httpx.AsyncClient, url: str, policy: FetchPolicy, reader: FeedReader | None = None
) -> CheckedFeed:
    """Fetch and parse now, in the reader's worker processes (never on the event loop); an
    HTML page is searched for its advertised feed. A feed refused for what it is (entities,
    a parse that overran) is not searched: only a page that is no feed at all may link one."""
    reader = reader or INLINE
    fetched = await fetch(client, url, policy)
    try:
        feed = await reader.parse(fetched.body)
        return CheckedFeed(fetched.url, feed, False, fetched.etag, fetched.last_modified,
                           fetched.links)
    except NotAFeed as exc:
        if exc.code != NotAFeed.code:
            raise
        links = await reader.discover(fetched.body, fetched.url)
        if not links:
            raise
    fetched = await fetch(client, links[0], policy)
    feed = await reader.parse(fetched.body)
    return CheckedFeed(fetched.url, feed, True, fetched.etag, fetched.last_modified,
                       fetched.links)


def add_source(
    room: Newsroom, checked: CheckedFeed, name: str, interval_seconds: int
) -> tuple[int, int]:
    """Store the source and its current entries as a baseline that is never alerted; its id
    and how many entries it tracks."""
    with clustered(room) as (session, clusters):
        source = sources.add(session=session, url=checked.url, name=name,
                             interval_seconds=interval_seconds)
        assert source.id is not None
        sources.record_success(session=session, source_id=source.id, etag=checked.etag,
                               last_modified=checked.last_modified)
        stored = store_drafts(session, clusters, source.id, source.name,
                              drafts_of(checked.feed, checked.url))
        return source.id, stored.items
