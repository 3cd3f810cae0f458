"""Starter packs (news.packs): which files are packs, and the packs this repository ships."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from locales import catalog
from news.opml import Outline, export_opml
from news.packs import DEFAULT_DIRECTORY, SUBJECTS, Pack, find, load_packs, missing

FEED = [Outline("https://example.com/feed.xml", "Example")]


def write(directory: Path, name: str, data: bytes) -> None:
    (directory / name).write_bytes(data)


def test_packs_are_named_language_subject_and_listed_in_order(tmp_path: Path) -> None:
    write(tmp_path, "fr-news.opml", export_opml(FEED))
    write(tmp_path, "en-tech.opml", export_opml(FEED * 2))
    write(tmp_path, "en-news.opml", export_opml(FEED))
    packs = load_packs(tmp_path)
    assert [(p.name, p.language, p.subject) for p in packs] == [
        ("en-news", "en", "news"), ("en-tech", "en", "tech"), ("fr-news", "fr", "news")]
    assert packs[1].outlines == tuple(FEED), "duplicates are dropped, as /importopml does"


@pytest.mark.parametrize(("name", "data"), [
    ("en-sports.opml", export_opml(FEED)),  # not one of the subjects
    ("english.opml", export_opml(FEED)),  # no subject at all
    ("en-news.opml", b"<html>not opml</html>"),
    ("en-news.opml", b'<!DOCTYPE x [<!ENTITY a "aaaa">]><opml><body/></opml>'),
    ("en-news.opml", export_opml([])),  # a pack with no feed is no pack
])
def test_a_file_that_is_no_pack_is_left_out_with_a_warning(
    tmp_path: Path, name: str, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, name, data)
    write(tmp_path, "de-news.opml", export_opml(FEED))
    with caplog.at_level(logging.WARNING, logger="news.packs"):
        assert [pack.name for pack in load_packs(tmp_path)] == ["de-news"]
    if data != export_opml([]):
        assert name in caplog.text


def test_no_directory_is_no_packs(tmp_path: Path) -> None:
    assert load_packs(tmp_path / "absent") == []


def test_find_ignores_case_and_spaces() -> None:
    pack = Pack("en-news", "en", "news", tuple(FEED))
    assert find([pack], " EN-News ") is pack
    assert find([pack], "en") is None


def test_missing_names_every_subject_a_language_lacks() -> None:
    packs = [Pack("en-news", "en", "news", tuple(FEED)), Pack("en-tech", "en", "tech", ())]
    assert missing(packs, ["en", "ar"]) == {"en": ["business", "science"],
                                            "ar": list(SUBJECTS)}
    assert missing([Pack(f"en-{s}", "en", s, ()) for s in SUBJECTS], ["en"]) == {}


def test_the_shipped_packs() -> None:
    """The packs in packs/: the 8 languages where the source list has feeds, every feed
    public http(s), the upstream licence and the note of where they come from beside them."""
    packs = load_packs(DEFAULT_DIRECTORY)
    names = {pack.name for pack in packs}
    assert {"en-news", "en-business", "en-tech", "en-science"} <= names
    assert {f"{code}-news" for code in ("de", "es", "fr", "ja", "ru", "zh")} <= names
    assert {pack.language for pack in packs} <= set(catalog.languages)
    assert missing(packs, catalog.languages)["ar"] == list(SUBJECTS), "none invented"
    for pack in packs:
        assert len(pack.outlines) >= 2, pack.name
        assert all(o.url.startswith(("http://", "https://")) for o in pack.outlines), pack.name
    assert "CC0 1.0 Universal" in (DEFAULT_DIRECTORY / "LICENSE").read_text(encoding="utf-8")
    note = (DEFAULT_DIRECTORY / "SOURCE.md").read_text(encoding="utf-8")
    assert "plenaryapp/awesome-rss-feeds" in note and "9ff012e4371" in note
