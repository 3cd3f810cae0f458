"""One story per event: signatures, overlap, and the index that finds the same story."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from news.items import ItemDraft
from news.stories import (
    THRESHOLD,
    Clusters,
    StoryIndex,
    overlap,
    signature,
    signature_text,
    similarity,
)

SAME = [
    ("SoftBank pledges billions for an AI valley in Hauts-de-France",
     "SoftBank has pledged a major investment in Hauts-de-France.",
     "Hauts-de-France: SoftBank pledges billions to build AI valley",
     "The Japanese group SoftBank pledged a huge investment in the Hauts-de-France region."),
    ("软银承诺在上法兰西大区巨额投资",
     "软银承诺在上法兰西大区进行巨额投资，推动当地打造人工智能谷。",
     "软银承诺向上法兰西大区巨额投资 打造人工智能谷",
     "据报道，软银承诺在上法兰西大区进行巨额投资。"),
]
DIFFERENT = [
    ("SoftBank pledges billions for an AI valley in Hauts-de-France",
     "SoftBank has pledged a major investment in Hauts-de-France.",
     "Nvidia unveils new chips for data centers", "Nvidia said on Monday its new chips ship soon."),
    ("SoftBank pledges billions for an AI valley", "SoftBank pledged a major investment.",
     "软银承诺在上法兰西大区巨额投资", "软银承诺在上法兰西大区进行巨额投资。"),
]


# words and numbers: the index must weigh differing numbers as similarity() does
WORDS = [str(n) if n % 4 == 0 else f"w{chr(97 + n % 26)}{chr(97 + n // 26)}" for n in range(60)]


@pytest.mark.parametrize(("t1", "l1", "t2", "l2"), SAME)
def test_rephrased_reports_of_one_event_overlap(t1: str, l1: str, t2: str, l2: str) -> None:
    assert overlap(signature(t1, l1), signature(t2, l2)) >= THRESHOLD


@pytest.mark.parametrize(("t1", "l1", "t2", "l2"), DIFFERENT)
def test_different_events_and_languages_do_not(t1: str, l1: str, t2: str, l2: str) -> None:
    assert overlap(signature(t1, l1), signature(t2, l2)) < THRESHOLD


def test_short_signatures_never_merge() -> None:
    assert overlap(signature("Rain", ""), signature("Rain", "")) == 0.0


def test_the_index_agrees_with_pairwise_similarity() -> None:
    rng = random.Random(5)
    words = WORDS[:60]
    index = StoryIndex()
    stored = {}
    for story_id in range(1, 300):
        tokens = frozenset(rng.sample(words, rng.randint(3, 12)))
        index.add(story_id, signature_text(tokens))
        stored[story_id] = tokens
    for _ in range(200):
        probe = frozenset(rng.sample(words, rng.randint(3, 12)))
        best = max((similarity(probe, t), sid) for sid, t in stored.items())
        found = index.same_story(signature_text(probe))
        if best[0] >= THRESHOLD:
            assert found is not None and similarity(probe, stored[found]) == best[0]
        else:
            assert found is None


def test_clusters_forget_stories_older_than_the_window() -> None:
    clusters = Clusters(window=timedelta(hours=48))
    draft = ItemDraft("g", "http://a.test/1", *SAME[0][:2], None)
    now = datetime(2026, 11, 24, tzinfo=UTC)
    clusters.load([(7, draft.signature, now - timedelta(hours=50), None, None)], now)
    assert clusters.same_story(draft) is None
    clusters.load([(8, draft.signature, now - timedelta(hours=1), None, None)], now)
    assert clusters.same_story(draft) == 8 and clusters.last_id == 8


def test_place_joins_recent_stories_and_groups_batch_mates() -> None:
    clusters = Clusters()
    now = datetime(2026, 11, 24, tzinfo=UTC)
    known = ItemDraft("k", "http://a.test/known", *SAME[0][:2], None)
    clusters.load([(3, known.signature, now, None, None)], now)
    rephrased = ItemDraft("r", "http://b.test/r", *SAME[0][2:], None)
    by_link = ItemDraft("l", "http://c.test/linked", "Unrelated words entirely here", "", None)
    first = ItemDraft("f", "http://d.test/1", *DIFFERENT[0][2:], None)
    same_link = ItemDraft("s", "http://d.test/1", "Another headline", "Other text.", None)
    mate = ItemDraft("m", "http://e.test/2", "Nvidia unveils new chips for big data centers",
                     "Nvidia said on Monday its new chips will ship soon.", None)
    alone = ItemDraft("a", "http://f.test/3", *SAME[1][:2], None)
    placement = clusters.place([rephrased, by_link, first, same_link, mate, alone],
                               {"http://c.test/linked": 9})
    assert placement.joins == [(rephrased, 3), (by_link, 9)]
    assert placement.groups == [[first, same_link, mate], [alone]]


def test_the_index_agrees_with_pairwise_overlap_as_stories_come_and_go() -> None:
    rng = random.Random(9)
    words = WORDS[:40]
    index = StoryIndex()
    stored: dict[int, frozenset[str]] = {}
    for step in range(1, 3000):  # slots are freed and reused, the size array grows past 1024
        if stored and rng.random() < 0.3:
            gone = rng.choice(list(stored))
            index.forget([gone])
            del stored[gone]
        else:
            key = step if rng.random() < 0.5 else -step  # provisional keys are negative
            stored[key] = frozenset(rng.sample(words, rng.randint(3, 14)))
            index.add(key, signature_text(stored[key]))
        if step % 25 == 0:
            probe = frozenset(rng.sample(words, rng.randint(3, 14)))
            best = max((similarity(probe, t) for t in stored.values()), default=0.0)
            found = index.same_story(signature_text(probe))
            if best >= THRESHOLD:
                assert found in stored and similarity(probe, stored[found]) == best
            else:
                assert found is None
    assert set(index.signatures) == set(stored)
    assert all(index.key_of[slot] == key for key, slot in index.slot_of.items())
