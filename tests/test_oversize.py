"""Stored names and titles are capped, and the LLM's input budget counts the title too."""

from __future__ import annotations

from sqlalchemy import Engine

from news.briefs import StoryText, estimate_tokens, fenced
from news.items import normalize
from news.text import TITLE_CHARS, clip
from news.types import NAME_CHARS


def test_clip_cuts_at_a_word_boundary_with_an_ellipsis() -> None:
    assert clip("short", 10) == "short"
    assert clip("alpha beta gamma delta", 12) == "alpha beta…"
    assert len(clip("alpha beta gamma delta", 12)) <= 12
    assert clip("x" * 50, 10) == "x" * 9 + "…", "one long word is cut inside it"


def test_an_entry_title_is_capped_when_it_becomes_an_item() -> None:
    draft = normalize({"title": "word " * 2000, "id": "g1", "summary": "text"},
                      "http://feed.test/")
    assert draft is not None
    assert len(draft.title) <= TITLE_CHARS and draft.title.endswith("…")


def test_the_title_counts_against_the_llm_input_budget() -> None:
    story = StoryText(title="Headline " * 4000, text="A sentence here. " * 2000, source_count=1)
    prompt = fenced(story, 500)
    assert estimate_tokens(prompt) < 600, "title and body together stay near the budget"


def test_source_names_are_capped_when_stored(engine: Engine) -> None:
    from sqlmodel import Session

    from storage import sources

    with Session(engine) as session:
        source = sources.add(session=session, url="http://feed.test/", name="Name " * 2000,
                             interval_seconds=300)
        assert len(source.name) <= NAME_CHARS
