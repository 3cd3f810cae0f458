"""The note admins get when a source is paused names its last error as the source stored it."""

from __future__ import annotations

from jobs.poll import _paused, _stored
from locales import Safe, catalog
from news.feeds import NotAFeed
from news.fetch import FetchError
from storage.errors import StoredError
from storage.sources import PAUSE_AFTER, DueSource

SOURCE = DueSource(3, "http://harbour.test/rss", "Harbour <News>", None, None)


def test_the_notice_explains_a_fetch_error_with_its_detail() -> None:
    notice = _paused(catalog, SOURCE, _stored(FetchError("http_status", "503")), "en")
    assert "HTTP error 503" in notice and "Harbour &lt;News&gt;" in notice
    assert f"failed {PAUSE_AFTER} times" in notice and "/resumesource 3" in notice


def test_the_notice_is_in_the_admins_language_whatever_the_error_kind() -> None:
    error = NotAFeed("entities", code="xml_entities", detail="lol")
    assert _stored(error) == StoredError("xml_entities", "lol")
    explained = Safe(catalog.text("fr", "fetch.error.xml_entities", detail="lol"))
    assert _paused(catalog, SOURCE, _stored(error), "fr") == catalog.text(
        "fr", "sources.auto_paused", id=3, name=SOURCE.name, count=PAUSE_AFTER, error=explained)
    assert _stored(None) == StoredError("not_a_feed")
