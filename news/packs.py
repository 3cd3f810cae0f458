"""Starter packs: curated OPML files of public feeds, one per language and subject, so that a
fresh bot has sources in one command (packs/SOURCE.md says where they come from)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from news.opml import NotOpml, Outline, parse_opml

log = logging.getLogger(__name__)

SUBJECTS = ("news", "business", "tech", "science")  # the order packs are listed in
DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "packs"
_NAME = re.compile(r"([a-z]{2,3})-([a-z]+)")


@dataclass(frozen=True)
class Pack:
    """`en-tech`: its language, its subject and its feeds."""

    name: str
    language: str
    subject: str
    outlines: tuple[Outline, ...]


def load_packs(directory: Path) -> list[Pack]:
    """Every `LANGUAGE-SUBJECT.opml` in `directory` with at least one feed, by language and
    subject. A file that is not one is left out with a warning: a bad file costs its pack,
    never the bot's start."""
    packs: list[Pack] = []
    for path in sorted(directory.glob("*.opml")) if directory.is_dir() else ():
        named = _NAME.fullmatch(path.stem.lower())
        if named is None or named.group(2) not in SUBJECTS:
            log.warning("starter pack %s left out: not named LANGUAGE-SUBJECT.opml with a "
                        "subject of %s", path.name, ", ".join(SUBJECTS))
            continue
        try:
            outlines = parse_opml(path.read_bytes())
        except (NotOpml, OSError) as error:
            log.warning("starter pack %s left out: %s", path.name, error)
            continue
        if outlines:
            packs.append(Pack(named.group(0), named.group(1), named.group(2), tuple(outlines)))
    return sorted(packs, key=lambda pack: (pack.language, SUBJECTS.index(pack.subject)))


def find(packs: Iterable[Pack], name: str) -> Pack | None:
    """The pack by name, whatever its case (`EN-Tech`)."""
    wanted = name.strip().lower()
    return next((pack for pack in packs if pack.name == wanted), None)


def missing(packs: Iterable[Pack], languages: Sequence[str]) -> dict[str, list[str]]:
    """Per language, the subjects no pack covers, so a listing can say what the source list
    lacks instead of leaving it unsaid."""
    have = {(pack.language, pack.subject) for pack in packs}
    gaps = {language: [subject for subject in SUBJECTS if (language, subject) not in have]
            for language in languages}
    return {language: subjects for language, subjects in gaps.items() if subjects}
