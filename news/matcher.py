"""The matcher for the current subscriptions, kept up to date by revision (issue 24).

Every process keeps the revision of the subscriptions it has seen. Asking whether anything
changed is one keyed read of the revisions counter; when it moved, only the subscriptions
stamped since (and the tombstones of removed ones) are read, through their revision indexes,
and applied to the matcher in place. Other replicas' changes arrive the same way.

The full build, which reads every row, runs once, when the process first matches, and again
only if tombstones it had not read yet were pruned (storage.subscriptions.prune_removals: the
same keyed read says so). Terms no
query had before go to the matcher's small second automaton; once there are `compact_after`
of them a new big automaton is built in a thread of its own and swapped in when done, so
ingesting never waits for it.
"""

from __future__ import annotations

import threading

from sqlmodel import Session

from news.matching import Compacted, Matcher
from storage import subscriptions
from storage.items import NewStory


class MatcherCache:
    def __init__(self, compact_after: int = 1000) -> None:
        self.compact_after = compact_after
        self.matcher = Matcher([])
        self.revision = -1  # none seen: the first get() builds from every row
        self.building: threading.Thread | None = None
        self._built: tuple[Matcher, Compacted] | None = None
        self._lock = threading.Lock()

    def get(self, session: Session) -> Matcher:
        """The matcher as of the newest committed revision this session can see."""
        head = subscriptions.head(session=session)
        # first use, the counter reset, or tombstones it never read were pruned: every row
        if self.revision < 0 or head.revision < self.revision or head.pruned > self.revision:
            self._build(session)
        elif head.revision != self.revision:
            changes = subscriptions.changes_since(session=session, revision=self.revision,
                                                  upto=head.revision)
            if changes.pruned > self.revision:  # pruned while it read: a removal may be missing
                self._build(session)
            else:
                self.matcher.apply(changes.removed, changes.changed)
                self.revision = changes.revision
        self._compact()
        return self.matcher

    def _build(self, session: Session) -> None:
        # the revision is read first: what changes while the rows are read is read again later
        latest = subscriptions.head(session=session).revision
        self.matcher = Matcher(subscriptions.all_topics(session=session))
        self.revision = latest

    def _compact(self) -> None:
        with self._lock:
            built, self._built = self._built, None
        if built is not None:
            matcher, compacted = built
            if matcher is self.matcher:  # not a build for a matcher since replaced
                matcher.install(compacted)
            self.building = None
        if self.building is not None or len(self.matcher.fresh) <= self.compact_after:
            return
        matcher = self.matcher
        build = matcher.compaction()

        def run() -> None:
            compacted = build()
            with self._lock:
                self._built = matcher, compacted

        self.building = threading.Thread(target=run, name="matcher-compaction", daemon=True)
        self.building.start()


def match(story: NewStory, matcher: Matcher) -> set[int]:
    """The subscriptions that want this story. Their chats are looked up when the deliveries
    are written (deliveries.enqueue_matches): the cached matcher may predate a migration."""
    return set(matcher.match_ids(story.text))
