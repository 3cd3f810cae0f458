"""Every table of Tidings; uniqueness and foreign keys live here, not in Python checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def system_clock() -> datetime:
    return datetime.now(UTC)


# The process's clock: the one function every read of it goes through, so a test can run a
# replica whose clock is off (tests/test_clock.py). Times other replicas compare come from
# the database's clock instead (storage.db.database_now).
process_clock: Callable[[], datetime] = system_clock


def utcnow() -> datetime:
    """Aware UTC, from this process's clock; SQLModel's UTCDateTime keeps it aware on SQLite."""
    return process_clock()


def _default(value: str) -> dict[str, str]:
    """A server default too, so migrations can add the column to tables that hold rows."""
    return {"server_default": value}


class Chat(SQLModel, table=True):
    """A private chat, group or channel that can receive alerts."""

    __tablename__ = "chats"

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    type: str = Field(max_length=20)
    title: str | None = None
    language: str = Field(max_length=16)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    # /settings: how alerts arrive (used by the delivery issue; stored and shown now).
    mode: str = Field(default="instant", max_length=16, sa_column_kwargs=_default("instant"))
    digest_time: str = Field(default="08:00", max_length=5, sa_column_kwargs=_default("08:00"))
    timezone: str = Field(default="UTC", max_length=64, sa_column_kwargs=_default("UTC"))
    quiet_start: str | None = Field(default=None, max_length=5)
    quiet_end: str | None = Field(default=None, max_length=5)
    last_digest_at: datetime | None = None
    # /settings trend on: the digest carries the week's chart of each topic, once a week.
    weekly_trend: bool = Field(default=False, sa_column_kwargs=_default("0"))
    weekly_trend_at: datetime | None = None
    # /settings weekly: each topic's storyline of the week, on an ISO weekday (1 = Monday) at
    # a local time; `weekly_brief_at` is when the last one went out (claimed: once a week).
    weekly_brief: bool = Field(default=False, sa_column_kwargs=_default("0"))
    weekly_day: int = Field(default=1, sa_column_kwargs=_default("1"))
    weekly_time: str = Field(default="09:00", max_length=5, sa_column_kwargs=_default("09:00"))
    weekly_brief_at: datetime | None = None


class Subscription(SQLModel, table=True):
    """One topic query a chat follows; alerts only stories that arrive after `created_at`."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("chat_id", "thread_id", "query"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(
        sa_column=Column(
            BigInteger, ForeignKey("chats.id", ondelete="CASCADE", onupdate="CASCADE"),
            nullable=False, index=True,
        )
    )
    query: str = Field(max_length=500)
    # A forum topic's message_thread_id; 0 for the chat itself.
    thread_id: int = Field(default=0, sa_column_kwargs=_default("0"))
    created_at: datetime = Field(default_factory=utcnow)
    # When the query last changed (the matchers go by `revision`).
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    # "Track closely" (/subscribe !query, the 📌 button): its stories are level 1 for this chat.
    pinned: bool = Field(default=False, sa_column_kwargs=_default("0"))
    # The subscriptions revision (revisions row "subscriptions") of its last change that matters
    # to matching: a cached matcher reads only the rows above the revision it has seen.
    revision: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, index=True,
                                                        server_default="0"))


class SubscriptionRemoval(SQLModel, table=True):
    """A removed subscription, so cached matchers learn of it by revision like of any change.
    One row per subscription id (an id SQLite hands out again gets its row back up to date);
    kept for a day (storage.subscriptions.prune_removals)."""

    __tablename__ = "subscription_removals"

    subscription_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    revision: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    # By the database's clock: a day later the row is pruned (subscriptions.prune_removals),
    # and a reader that has not caught up by then reads every subscription again.
    removed_at: datetime = Field(default_factory=utcnow)


class Suggestion(SQLModel, table=True):
    """A one-tap refinement offered after /subscribe: an alias to add or a sense to exclude."""

    __tablename__ = "suggestions"

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(foreign_key="subscriptions.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=8)  # "alias" or "exclude"
    text: str = Field(max_length=120)


class Source(SQLModel, table=True):
    """A feed URL polled on its own interval; conditional-GET validators kept between polls.
    A news-search provider is a row too (`kind` names it), so its health, pause and items
    are a source's: its `interval_seconds` is the least time between two of its requests."""

    __tablename__ = "sources"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(sa_column=Column(Text, unique=True, nullable=False))
    name: str
    interval_seconds: int
    next_poll_at: datetime = Field(default_factory=utcnow, index=True)
    etag: str | None = None
    last_modified: str | None = None
    last_polled_at: datetime | None = None
    last_ok_at: datetime | None = None
    failing_since: datetime | None = None
    # The last failure (storage.errors): the code keys fetch.error.<code> in the catalogue.
    error_code: str | None = None
    error_detail: str | None = None
    failures: int = Field(default=0, sa_column_kwargs=_default("0"))  # in a row
    paused: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    # Items stored before migration 0008 were told apart by link and text too, not by guid
    # alone: the source's next poll stores the entries those rules took as seen, unalerted.
    legacy_identity: bool = Field(default=False, sa_column_kwargs=_default("0"))
    kind: str = Field(default="feed", max_length=16, sa_column_kwargs=_default("feed"))


class WebSub(SQLModel, table=True):
    """A feed's subscription at the WebSub hub it advertises (news.websub): the hub pushes new
    entries to our callback, and while the lease holds the feed is polled only as a safety net.
    `callback` is the random last segment of the callback URL, so a post names its row."""

    __tablename__ = "websub"

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="sources.id", unique=True, ondelete="CASCADE")
    hub_url: str = Field(sa_column=Column(Text, nullable=False))
    topic_url: str = Field(sa_column=Column(Text, nullable=False))
    callback: str = Field(max_length=64, unique=True)
    secret: str = Field(max_length=128)  # the HMAC key the hub signs each push with
    # new, requested (hub said 202, verification awaited), active, failed, denied, lapsed
    state: str = Field(default="new", max_length=16)
    requested_at: datetime | None = None  # a subscribe request is outstanding since
    lease_expires_at: datetime | None = None
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    failures: int = Field(default=0, sa_column_kwargs=_default("0"))  # in a row
    error_code: str | None = Field(default=None, max_length=32)  # keys fetch.error.<code>
    error_detail: str | None = Field(default=None, max_length=500)
    last_push_at: datetime | None = None
    poll_interval_seconds: int  # the safety net's interval while the lease holds


class WebSubRetired(SQLModel, table=True):
    """A WebSub subscription we dropped (its source removed, or its feed no longer naming that
    hub or topic), to be cancelled at its hub (`hub.mode=unsubscribe`, news.websub). The row
    outlives its source so the hub's verification of intent finds what we asked to cancel, and
    so pushes the hub still sends meanwhile are acknowledged and ignored; it goes at
    `keep_until`, when no lease the hub could still hold remains."""

    __tablename__ = "websub_retired"

    id: int | None = Field(default=None, primary_key=True)
    hub_url: str = Field(sa_column=Column(Text, nullable=False))
    topic_url: str = Field(sa_column=Column(Text, nullable=False))
    callback: str = Field(max_length=64, unique=True)  # the callback URL's last segment
    # pending (to send, or to send again), requested (the hub said 2xx, verification awaited),
    # verified (the hub confirmed it), given_up (no more tries; the lease runs out on its own)
    state: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0, sa_column_kwargs=_default("0"))
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    keep_until: datetime = Field(index=True)
    error_code: str | None = Field(default=None, max_length=32)  # the last failure, for logs


class Search(SQLModel, table=True):
    """When a search provider was last asked about one distinct followed query; no row yet
    means its first search, which only records what is already there."""

    __tablename__ = "searches"
    __table_args__ = (UniqueConstraint("source_id", "query"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="sources.id", index=True, ondelete="CASCADE")
    query: str = Field(max_length=500)
    searched_at: datetime = Field(default_factory=utcnow, index=True)


class Story(SQLModel, table=True):
    """One event; several items from several sources may join it."""

    __tablename__ = "stories"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    # Tokens of headline and lead (news.stories.signature), for near-duplicate detection.
    signature: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class Item(SQLModel, table=True):
    """A normalized feed entry; `guid` (the entry's id, or its link when it has none) is its
    identity, unique per source, so a re-fetched entry is not new."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("source_id", "guid"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("sources.id", ondelete="SET NULL"), nullable=True, index=True),
    )
    source_name: str
    story_id: int = Field(foreign_key="stories.id", index=True, ondelete="CASCADE")
    guid: str = Field(sa_column=Column(Text, nullable=False))
    link: str = Field(sa_column=Column(Text, nullable=False, index=True))
    title: str = Field(sa_column=Column(Text, nullable=False))
    summary: str = Field(sa_column=Column(Text, nullable=False))
    # sha1 of title and text (it told re-published entries apart before migration 0008).
    content_hash: str = Field(default="", max_length=40, index=True,
                              sa_column_kwargs=_default(""))
    published_at: datetime | None = None
    fetched_at: datetime = Field(default_factory=utcnow, index=True)


class Brief(SQLModel, table=True):
    """One brief per story and language, written once and reused by every chat of that language."""

    __tablename__ = "briefs"
    __table_args__ = (UniqueConstraint("story_id", "language"),)

    id: int | None = Field(default=None, primary_key=True)
    story_id: int = Field(foreign_key="stories.id", index=True, ondelete="CASCADE")
    language: str = Field(max_length=16)
    origin: str = Field(max_length=16)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    tokens_in: int = 0
    tokens_out: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    """The outbox: one row per chat and story, written before anything is sent."""

    __tablename__ = "deliveries"
    # (state, id): a claim reads the waiting rows in id order a page at a time, however many
    # wait and however many were sent before them (storage.deliveries.claim).
    __table_args__ = (UniqueConstraint("chat_id", "thread_id", "story_id"),
                      Index("ix_deliveries_state_id", "state", "id"))

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(
        sa_column=Column(
            BigInteger, ForeignKey("chats.id", ondelete="CASCADE", onupdate="CASCADE"),
            nullable=False, index=True,
        )
    )
    story_id: int = Field(foreign_key="stories.id", index=True, ondelete="CASCADE")
    thread_id: int = Field(default=0, sa_column_kwargs=_default("0"))
    topics: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    message_id: int | None = None
    # A source joined the story after it was sent: the message is edited to list it.
    needs_edit: bool = Field(default=False, sa_column_kwargs=_default("0"))
    # Why it was parked or retried (storage.errors): the code keys delivery.error.<code>.
    error_code: str | None = None
    error_detail: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # Who holds the lease: only the claim that set it may send the row or record the outcome.
    claim_token: str | None = Field(default=None, max_length=32)
    # Seconds spent waiting out 429s; past a cap the row is parked (a 429 is not an attempt).
    throttled_seconds: int = Field(default=0, sa_column_kwargs=_default("0"))


class Admin(SQLModel, table=True):
    """Admins added by command; ADMIN_IDS from the environment are permanent and not stored."""

    __tablename__ = "admins"

    user_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    added_by: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class LlmUsage(SQLModel, table=True):
    """LLM calls and tokens per UTC day: for /stats and for the daily token budget."""

    __tablename__ = "llm_usage"

    day: date = Field(primary_key=True)
    calls: int = 0
    failures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    offline_briefs: int = 0
    budget_notified: bool = False


class PaidBroadcast(SQLModel, table=True):
    """Alerts sent with allow_paid_broadcast per UTC day (0.1 Star each), against the day's
    Star budget; and whether Telegram refused one for want of Stars (then none more that day)."""

    __tablename__ = "paid_broadcast"

    day: date = Field(primary_key=True)
    messages: int = 0
    refused: bool = False


class BriefClaim(SQLModel, table=True):
    """A brief being written: until `claimed_until` no other replica asks the LLM for it."""

    __tablename__ = "brief_claims"

    story_id: int = Field(foreign_key="stories.id", primary_key=True, ondelete="CASCADE")
    language: str = Field(primary_key=True, max_length=16)
    claimed_until: datetime


class Revision(SQLModel, table=True):
    """A counter bumped in the transaction of every change to what processes cache (the
    matcher's subscriptions): a cache that read another value is stale, whatever the clocks."""

    __tablename__ = "revisions"

    name: str = Field(primary_key=True, max_length=32)
    value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class Vote(SQLModel, table=True):
    """One person's 👍 or 👎 on one alert: the schema counts each person once per alert."""

    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("delivery_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="deliveries.id", index=True, ondelete="CASCADE")
    user_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    value: str = Field(max_length=4)  # "up" or "down"
    # The topic the alert came for, so /topics can count its votes after its query changes.
    subscription_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("subscriptions.id", ondelete="SET NULL"), nullable=True,
                         index=True),
    )
    created_at: datetime = Field(default_factory=utcnow, index=True)


class FeedbackChoice(SQLModel, table=True):
    """A choice offered under 👎 ("less about", "mute", "not relevant"); its button carries
    only this id, since callback data is limited to 64 bytes."""

    __tablename__ = "feedback_choices"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="deliveries.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=12)  # "less", "mute" or "irrelevant"
    text: str = Field(max_length=120)  # the term, or the source's name
    source_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("sources.id", ondelete="SET NULL"), nullable=True),
    )
    applied: bool = False
    # JSON list of the subscription ids the choice changed, so undo changes only those.
    changed: str = Field(default="[]", sa_column=Column(Text, nullable=False,
                                                        server_default="[]"))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Mute(SQLModel, table=True):
    """A source muted for one topic by feedback: /topics lists it and can undo it."""

    __tablename__ = "mutes"
    __table_args__ = (UniqueConstraint("subscription_id", "source_id"),)

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(foreign_key="subscriptions.id", index=True, ondelete="CASCADE")
    source_id: int = Field(foreign_key="sources.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


class StoryEmbedding(SQLModel, table=True):
    """A story's embedding (news.embeddings), written once: float32 bytes, `dims` of them. A
    row without a vector is a new story waiting for its embedding, to be matched against the
    semantic topics when it has one (news.semantic_round)."""

    __tablename__ = "story_embeddings"

    story_id: int = Field(sa_column=Column(ForeignKey("stories.id", ondelete="CASCADE"),
                                           primary_key=True, autoincrement=False))
    model: str = Field(default="", max_length=200)
    dims: int = 0
    vector: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class MeaningEmbedding(SQLModel, table=True):
    """The embedding of a semantic topic's meaning (news.semantic), one per model, size and
    folded wording, shared by every chat that follows it."""

    __tablename__ = "meaning_embeddings"
    __table_args__ = (UniqueConstraint("model", "dims", "meaning"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=200)
    dims: int
    meaning: str = Field(max_length=300)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class WeeklyBrief(SQLModel, table=True):
    """A topic's storyline of one ISO week in one language: one LLM call, shared by every chat
    and replica. `origin` is "" while a replica holds the claim (until `claimed_until`), then
    "llm" or "offline" (the model failed: chats get the week's stories by level instead)."""

    __tablename__ = "weekly_briefs"
    __table_args__ = (UniqueConstraint("query", "week", "language"),)

    id: int | None = Field(default=None, primary_key=True)
    query: str = Field(max_length=500)
    week: str = Field(max_length=8)  # ISO week, `2026-W49`
    language: str = Field(max_length=16)
    origin: str = Field(default="", max_length=16)
    claimed_until: datetime | None = None
    payload: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The stories the model was given, as cited: [{"story_id", "headline", "link"}], numbered
    # from 1 in this order.
    stories: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    tokens_in: int = 0
    tokens_out: int = 0
    created_at: datetime = Field(default_factory=utcnow)
