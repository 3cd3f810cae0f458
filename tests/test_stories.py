"""One story per event: signatures, overlap, and the index that finds the same story."""

from __future__ import annotations

import random
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from news.feeds import parse_feed
from news.items import ItemDraft
from news.parsing import drafts_of
from news.stories import (
    MIN_SHARED,
    SAME_SOURCE_THRESHOLD,
    THRESHOLD,
    Clusters,
    StoryIndex,
    boilerplate,
    conflicts,
    lead_of,
    overlap,
    same_story,
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
    assert clusters.same_story(draft) == 8
    assert clusters.seen_until == now - timedelta(hours=1)


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
    assert {key: index.signature(key) for key in index.slot_of} == {
        key: signature_text(tokens) for key, tokens in stored.items()}
    assert all(index.key_of[slot] == key for key, slot in index.slot_of.items())


def test_a_sentence_that_recurs_across_a_feed_is_left_out_of_signatures() -> None:
    """Hacker News: every item's lead is the link text "Comments"."""
    body = ("<rss version='2.0'><channel><title>HN</title>"
            "<item><title>Show HN: MetricFlow – open-source metric framework</title>"
            "<link>https://a.test/1</link><description>Comments</description></item>"
            "<item><title>Show HN: Tilepieces – An open source project for visually editing "
            "HTML documents</title><link>https://a.test/2</link>"
            "<description>Comments</description></item>"
            "<item><title>Ask HN: Who is hiring?</title><link>https://a.test/3</link>"
            "<description>Comments</description></item></channel></rss>").encode()
    drafts = drafts_of(parse_feed(body), "https://news.test/rss")
    assert boilerplate(d.summary for d in drafts) == {"comments"}
    assert all("comments" not in d.signature.split() for d in drafts)
    assert "show" not in drafts[0].signature.split()  # a kicker that recurs ("Show HN") too
    clusters = Clusters()
    placement = clusters.place(drafts, {}, source=1)
    assert placement.groups == [[d] for d in drafts]
    # the old signature kept both: the two posts merged
    assert overlap(signature(drafts[0].title, "Comments"),
                   signature(drafts[1].title, "Comments")) >= THRESHOLD


def test_a_lead_seen_once_is_kept_and_the_next_sentence_replaces_boilerplate() -> None:
    skip = boilerplate(["Welcome to Typepad 101! Adding Amazon items to your sidebar.",
                        "Welcome to Typepad 101! Add a background image to your bar.",
                        "Each week we scout for great blogs."])
    assert skip == {"welcome to typepad 101!"}
    assert lead_of("Welcome to Typepad 101! Adding Amazon items.", skip) == "Adding Amazon items."
    kept = "Each week we scout for great blogs."
    assert lead_of(kept, skip) == kept


@pytest.mark.parametrize(("a", "b"), [
    (("Taverncast: After Hours 9", "Laid back, unedited fun at the tavern."),
     ("Taverncast: After Hours 1", "Laid back, unedited fun at the tavern.")),
    (("Announcing v201605 of the AdWords API", "Today we're announcing the AdWords API v201605."),
     ("Announcing v201603 of the AdWords API", "Today we're announcing the AdWords API v201603.")),
    (("Slack (NASDAQ:WORK) CEO Sells $91750.00 in Stock",
      "Slack (NASDAQ:WORK) CEO Stewart Butterfield sold 2,500 shares of the firm's stock."),
     ("Slack (NASDAQ:WORK) CFO Sells $19407875.75 in Stock",
      "Slack (NASDAQ:WORK) CFO Allen Shim sold 502,925 shares of the company's stock.")),
    (("Giant Bombcast E3 2010 Day Three", "E3 2010 is over, and we talk about the show."),
     ("Giant Bombcast E3 2010 Day Two", "E3 2010 is over, and we talk about the show.")),
    (("Nvidia market value tops $1 trillion", "Nvidia is valued at $1 trillion on AI chips."),
     ("Nvidia market value tops $2 trillion", "Nvidia, worth $1 trillion last year, on AI chips.")),
])
def test_differing_numbers_count_against_a_merge(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    first, second = signature(*a), signature(*b)
    assert conflicts(first, second) > 0
    assert not same_story(first, second, same_source=False)
    assert len(first & second) >= MIN_SHARED  # the words alone are close


def test_a_number_on_one_side_only_is_detail_not_disagreement() -> None:
    first = signature("Tesla recalls vehicles to fix Autopilot",
                      "Tesla is recalling vehicles in the US to fix its Autopilot system.")
    second = signature("Tesla recalls 2 million vehicles to fix Autopilot",
                       "Tesla is recalling 2 million vehicles in the US to fix Autopilot.")
    assert conflicts(first, second) == 0 and same_story(first, second)


def test_items_of_one_source_need_stronger_evidence_than_items_of_two() -> None:
    lead = "SoftBank pledged a major investment in the Hauts-de-France region on Monday."
    known = ItemDraft("k", "http://a.test/1", "SoftBank pledges billions for AI in France", lead,
                      None)
    other = ItemDraft("o", "http://a.test/2", "SoftBank plans an AI valley with Nvidia chips",
                      "SoftBank pledged a major investment in an AI valley on Monday.", None)
    score = similarity(frozenset(known.signature.split()), frozenset(other.signature.split()))
    assert THRESHOLD <= score < SAME_SOURCE_THRESHOLD
    now = datetime(2026, 11, 24, tzinfo=UTC)
    for source, expected in ((1, None), (2, 5)):  # story 5 came from source 1
        clusters = Clusters()
        clusters.load([(5, known.signature, now, 1, None)], now)
        assert clusters.same_story(other, source) == expected


def test_items_published_further_apart_than_the_window_never_merge() -> None:
    """A yearly post in the same words (the GTAC diversity scholarship, 2016 and 2017)."""
    title = "GTAC Diversity Scholarship"
    lead = "We will offer travel scholarships to GTAC this year."
    now = datetime(2017, 5, 22, tzinfo=UTC)
    post = ItemDraft("2017", "http://a.test/2017", title, lead, now)
    clusters = Clusters()
    clusters.load([(5, post.signature, now, 1, now - timedelta(days=383))], now)
    assert clusters.same_story(post, 2) is None
    clusters.load([(6, post.signature, now, 1, now - timedelta(hours=3))], now)
    assert clusters.same_story(post, 2) == 6


def test_the_index_stays_whole_when_most_of_it_is_forgotten() -> None:
    """Forgotten slots' tokens leave the pool (compacted), and the rest still answer."""
    rng = random.Random(11)
    index = StoryIndex()
    stored: dict[int, frozenset[str]] = {}
    for key in range(1, 2001):
        stored[key] = frozenset(rng.sample(WORDS[:80], rng.randint(5, 14)))
        index.add(key, signature_text(stored[key]))
    gone = [key for key in stored if key % 10]
    index.forget(gone)
    for key in gone:
        del stored[key]
    assert len(index.pool) == sum(map(len, stored.values()))  # compacted
    for key in range(3001, 3101):  # slots and token numbers are reused
        stored[key] = frozenset(rng.sample(WORDS[:90], rng.randint(5, 14)))
        index.add(key, signature_text(stored[key]))
    assert {key: index.signature(key) for key in index.slot_of} == {
        key: signature_text(tokens) for key, tokens in stored.items()}
    for tokens in stored.values():
        assert similarity(tokens, stored[index.same_story(signature_text(tokens))]) == 1.0


def test_clusters_forget_thousands_of_expired_stories_in_order() -> None:
    clusters = Clusters(window=timedelta(hours=48))
    now = datetime(2026, 11, 24, tzinfo=UTC)
    def word(n: int) -> str:  # a made-up word of its own for each number
        return "".join(chr(ord("b") + int(digit)) for digit in f"{n:05d}")

    drafts = [ItemDraft(f"g{n}", f"http://a.test/{n}", f"Storm {word(n)} meets {word(n + 5000)}",
                        f"Report on {word(n)} and {word(n + 9000)} here.", None)
              for n in range(3000)]
    rows = [(n + 1, draft.signature, now - timedelta(hours=60) + timedelta(minutes=n), None,
             None) for n, draft in enumerate(drafts)]
    clusters.load(rows, now - timedelta(hours=12))
    assert all(clusters.same_story(draft) == n + 1 for n, draft in enumerate(drafts))
    clusters.load([], now)  # stories created before now - 48 h (the first 720) expire
    assert [clusters.same_story(draft) for draft in drafts[719:722]] == [None, 721, 722]
    assert sum(clusters.same_story(draft) is None for draft in drafts) == 720
    clusters.load([], now + timedelta(hours=36))  # then all but the last 120
    assert [n for n, draft in enumerate(drafts) if clusters.same_story(draft)] == list(
        range(2880, 3000))


def test_the_index_holds_a_story_in_a_few_hundred_bytes() -> None:
    """A replica holds every story of the window (200,000 for 10,000 feeds): a story costs
    its tokens' postings and numbers, a dict entry and its columns, no objects of its own."""
    rng = random.Random(3)
    vocabulary = ["".join(rng.choices("bcdfghklmnprstvz", k=8)) for _ in range(3000)]
    start = datetime(2026, 11, 24, tzinfo=UTC)
    tracemalloc.start()
    try:  # the rows as a load reads them, then dropped: what the index keeps stays
        rows = [(story_id, signature_text(frozenset(rng.sample(vocabulary, 30))),
                 start + timedelta(seconds=story_id), story_id % 50 + 1, None)
                for story_id in range(1, 20_001)]
        clusters = Clusters()
        clusters.load(rows, start + timedelta(hours=6))
        del rows
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clusters.same_story(ItemDraft("g", "", "", "", None)) is None
    assert held / 20_000 < 600  # 780 when each kept its signature string and expiry tuple
