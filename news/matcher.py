"""The matcher for the current subscriptions, kept between ingests, rebuilt off their path."""

from __future__ import annotations

import threading

from sqlmodel import Session

from news.matching import Matcher
from news.types import Topic
from storage import subscriptions
from storage.items import NewStory


class Layered:
    """A big matcher built once, plus a small one for the topics added or edited since, less
    the ones removed or edited: what one subscription change costs is rebuilding the small
    layer, never the whole automaton (16.5 s at 100,000 topics) inside an ingest."""

    def __init__(self, base: Matcher, base_topics: frozenset[Topic],
                 current: frozenset[Topic]) -> None:
        self.base, self.base_topics = base, base_topics
        self.gone = {topic.id for topic in base_topics - current}
        self.added = current - base_topics
        self.layer = Matcher(sorted(self.added, key=lambda t: t.id))

    def match(self, text: str) -> list[Topic]:
        found = [t for t in self.base.match(text) if t.id not in self.gone]
        return sorted([*found, *self.layer.match(text)], key=lambda t: t.id)


class MatcherCache:
    """The matcher for the current subscriptions, refreshed whenever their fingerprint changes
    (in any process). A change is applied as a small layer over the last full build; once the
    layer passes `rebuild_after` topics, a full build runs in a thread of its own and is
    swapped in when done, so polling never waits for it."""

    def __init__(self, rebuild_after: int = 500) -> None:
        self.key: object = None
        self.rebuild_after = rebuild_after
        self.base_topics: frozenset[Topic] = frozenset()
        self.base = Matcher([])
        self.matcher: Layered = Layered(self.base, self.base_topics, frozenset())
        self.building: threading.Thread | None = None
        self.built: tuple[Matcher, frozenset[Topic]] | None = None
        self.lock = threading.Lock()

    def get(self, session: Session) -> Layered:
        key = subscriptions.fingerprint(session=session)
        with self.lock:
            swapped = self.built is not None
            if self.built is not None:
                self.base, self.base_topics = self.built
                self.built, self.building = None, None
        if key != self.key or swapped:
            current = frozenset(subscriptions.all_topics(session=session))
            if not self.base_topics and current and self.building is None:
                self.base, self.base_topics = Matcher(sorted(current, key=lambda t: t.id)), current
            self.matcher = Layered(self.base, self.base_topics, current)
            self.key = key
            if len(self.matcher.added) + len(self.matcher.gone) > self.rebuild_after:
                self._rebuild(current)
        return self.matcher

    def _rebuild(self, topics: frozenset[Topic]) -> None:
        """A full build off the ingest path; the next get() after it finishes swaps it in."""
        if self.building is not None:
            return

        def build() -> None:
            matcher = Matcher(sorted(topics, key=lambda t: t.id))
            with self.lock:
                self.built = (matcher, topics)

        self.building = threading.Thread(target=build, name="matcher-build", daemon=True)
        self.building.start()


def match(story: NewStory, matcher: Matcher | Layered) -> set[int]:
    """The subscriptions that want this story. Their chats are looked up when the deliveries
    are written (deliveries.enqueue_matches): the cached matcher may predate a migration."""
    return {topic.id for topic in matcher.match(story.text)}
