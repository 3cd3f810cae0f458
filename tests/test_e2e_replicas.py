"""The replica test (issue 14 item 3): three `python bot.py` processes on one PostgreSQL database,
against one Bot API emulator enforcing Telegram's limits, one LLM emulator and one feed server,
while a replica is SIGKILLed and restarted every few seconds.

Sizes. The issue asks for 100 sources, 500 chats, stories arriving for 2 minutes and a kill
every 20 s. That run would take about 6 minutes (estimated, not run: the sending alone is about
3,000 alerts at 30/s, then the 60 s delivery lease after the last kill), too long for CI on 2
cores shared with the rest of the suite, so CI runs a scaled-down world: 30 sources, 150 chats,
stories arriving for 60 s, a kill every 15 s (3 kills); it takes 80-90 s.
`TIDINGS_REPLICA_FULL=1` runs the issue's full size. Both keep the load per chat and per second
alike: each chat follows one topic (some two), each event names one topic (some two), a third
of the events are reported by 2 or 3 sources at the same moment, and chats speak English,
French or Chinese (one brief per language).

Who dies. The first kill takes the replica holding the sending role, the second the one holding
the receiver role, the rest a random replica (seeded: TIDINGS_REPLICA_SEED): so every run loses
both roles at least once. Each is restarted at once.

Chats and subscriptions are written to the database before the bots start (faster than hundreds
of /subscribe commands); a few more chats subscribe by command during the run, which exercises
the receiver role and the matcher caches' refresh across replicas.

Result: every chat gets every story it follows exactly once (a duplicate is allowed only for a
send in flight at a kill: at most kills × PACING.in_flight), one story and one alert per event
(edited to list every source), one LLM call per story and language (a call in flight at a kill
may be repeated: at most kills × LLM_CONCURRENCY), zero 429s, at most 30 sends in any second.
Figures are printed (run with -s) for README.md's "Several replicas"."""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from jobs.pacing import PACING
from storage.db import make_engine, migrate, session_scope
from storage.models import Chat, Delivery, Item, Source, Subscription
from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.llm import LlmServer
from tests.fakes.telegram import BotApiEmulator, Limits, SentMessage
from tests.harness import TOKEN, env_for

FULL = os.environ.get("TIDINGS_REPLICA_FULL") == "1"
SEED = int(os.environ.get("TIDINGS_REPLICA_SEED", "14"))
REPLICAS = 3
SOURCES = 100 if FULL else 30
CHATS = 500 if FULL else 150
ARRIVAL_SECONDS = 120.0 if FULL else 60.0  # events are published for this long
KILL_EVERY = 20.0 if FULL else 15.0  # a replica is SIGKILLed this often while events arrive
KILLS = int((ARRIVAL_SECONDS - 1) // KILL_EVERY)  # 5 full size, 3 in CI
EVENT_EVERY = 1.0 if FULL else 1.5  # seconds between two events
TOPIC_COUNT = 20 if FULL else 10  # each chat follows one of these (every 7th chat two)
SHARED_EVERY = 3  # every third event is reported by 2 or 3 sources at the same moment
COMMAND_CHATS = 4  # chats that subscribe by /subscribe during the run
GROUP_EVERY = 10  # every tenth seeded chat is a group (20 messages a minute)
LANGUAGES = ("en", "fr", "zh")
SOURCE_INTERVAL = 2  # seconds between two polls of a source
LLM_CONCURRENCY = 4  # LLM_CONCURRENCY's default: briefs one replica may have in flight
LLM_TIMEOUT = 5  # seconds; a brief claimed by a killed replica is free again after ~2 of these
SETTLE_SECONDS = 300.0  # after the last event: everything delivered and recorded by then
FIRST_CHAT = 300_000
# The bot paces 28 sends a second by its own clock (jobs.pacing); five busy processes on 2
# shared cores delay requests in bunches, and with 100 ms of slack 30 sends still arrived
# within 0.9 s now and then (all 429s seen were overall ones). 150 ms absorbs that jitter:
# 30 sends in any 0.85 s is still refused, and the long-run rate is checked by max_rate.
SLACK = 0.15
CODE_BASE = 4000  # event n is "project P{CODE_BASE + n}" in its headline, a number of its own

TOPICS = ("Airbus", "Siemens", "Nokia", "Toyota", "Nestle", "Philips", "Ericsson", "Danone",
          "Renault", "Heineken", "Unilever", "Volvo", "Bayer", "Carlsberg", "Lufthansa",
          "Maersk", "Novartis", "Vestas", "Spotify", "Ikea")[:TOPIC_COUNT]
ACTIONS = ("opens a new plant", "signs a supply contract", "announces a joint venture",
           "wins a rail tender", "starts a battery factory", "buys a software startup",
           "expands its research centre", "launches a recycling line")
PLACES = ("Lille", "Porto", "Gdansk", "Turin", "Leipzig", "Bilbao", "Aarhus", "Brno", "Ghent",
          "Tampere", "Graz", "Cork")
LEADS = ("{topic} {action} in {place} as part of project {code}, the company said today.",
         "The group {topic} {action} in {place} under project {code}, officials confirmed.",
         "{topic} {action} in {place} with project {code}, people familiar with it said.")
CODE = re.compile(r"P(\d{4})")


@dataclass
class Event:
    """One piece of news: published at `at` (seconds into the arrival) by 1 to 3 sources."""

    number: int
    at: float
    topics: tuple[str, ...]
    sources: tuple[int, ...]
    action: str
    place: str
    published: float = 0.0  # time.monotonic() of its publication

    @property
    def code(self) -> str:
        return f"P{CODE_BASE + self.number}"

    @property
    def title(self) -> str:
        return f"{self.topics[0]} {self.action} in {self.place}, project {self.code}"

    def lead(self, variant: int) -> str:
        lead = LEADS[variant % len(LEADS)].format(topic=self.topics[0], action=self.action,
                                                  place=self.place, code=self.code)
        if len(self.topics) > 1:
            lead += f" {self.topics[1]} is its partner."
        return lead


def plan_events(rng: random.Random) -> list[Event]:
    events = []
    for number in range(int(ARRIVAL_SECONDS / EVENT_EVERY)):
        topics: tuple[str, ...] = (TOPICS[number % len(TOPICS)],)
        if number % 5 == 4:  # names a second topic: its followers get it too, once
            topics = tuple(dict.fromkeys((*topics, TOPICS[(number * 3 + 1) % len(TOPICS)])))
        reporters = rng.choice((2, 3)) if number % SHARED_EVERY == 1 else 1
        events.append(Event(number, number * EVENT_EVERY, topics,
                            tuple(rng.sample(range(SOURCES), reporters)),
                            rng.choice(ACTIONS), rng.choice(PLACES)))
    return events


@dataclass
class Reader:
    """A chat and the topics it follows; `since` is when a command subscription took effect
    (None: seeded, following from the start)."""

    chat_id: int
    language: str
    topics: tuple[str, ...]
    since: float | None = None
    asked: float | None = None  # when its /subscribe was sent

    def wants(self, event: Event) -> bool:
        return bool(set(self.topics) & set(event.topics))

    def must_get(self, event: Event) -> bool:
        """Seeded chats get every matching event; command ones those published after their
        subscription was confirmed (earlier ones may come, once)."""
        return self.wants(event) and (self.since is None or event.published > self.since)


def seeded_readers() -> list[Reader]:
    readers = []
    for n in range(CHATS):
        chat_id = FIRST_CHAT + n
        chat_id = -chat_id if n % GROUP_EVERY == GROUP_EVERY - 1 else chat_id
        topics: tuple[str, ...] = (TOPICS[n % len(TOPICS)],)
        if n % 7 == 3:  # a second topic: a story naming both still comes once
            topics = tuple(dict.fromkeys((*topics, TOPICS[(n // 7) % len(TOPICS)])))
        readers.append(Reader(chat_id, LANGUAGES[n % len(LANGUAGES)], topics))
    return readers


def seed(database_url: str, readers: list[Reader], feed_urls: list[str]) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    with session_scope(engine) as session:
        session.add_all(Source(url=url, name=source_name(n), interval_seconds=SOURCE_INTERVAL)
                        for n, url in enumerate(feed_urls))
        session.add_all(Chat(id=r.chat_id, type="group" if r.chat_id < 0 else "private",
                             title="Desk" if r.chat_id < 0 else None, language=r.language)
                        for r in readers)
        session.flush()
        session.add_all(Subscription(chat_id=r.chat_id, query=topic)
                        for r in readers for topic in r.topics)
    engine.dispose()


def source_name(n: int) -> str:
    return f"Wire {n:03d}"


BRIEF_TEXT = {
    "en": ("{topic} launches project {code}",
           "{topic} started project {code}, a new industrial investment. It matters for its "
           "suppliers and for the region.", "Industrial group", "A project worth following."),
    "fr": ("{topic} lance le projet {code}",
           "{topic} a lancé le projet {code}, un nouvel investissement industriel. C'est "
           "important pour ses fournisseurs et pour toute la région.", "Groupe industriel",
           "Un projet à suivre de près."),
    "zh": ("{topic}启动{code}项目",
           "{topic}启动了{code}项目，这是一项新的工业投资。此事对其供应商和所在地区都很重要。",
           "工业集团", "值得持续关注的项目。"),
}
LANGUAGE_NAMES = {"English": "en", "French": "fr", "Chinese": "zh"}


def language_of(request: dict[str, Any]) -> str:
    system = request["messages"][0]["content"]
    found = re.search(r"briefs for professionals, in (\w+)", system)
    assert found and found[1] in LANGUAGE_NAMES, system[:200]
    return LANGUAGE_NAMES[found[1]]


def is_brief(request: dict[str, Any]) -> bool:
    return "news briefs" in request["messages"][0]["content"]


def respond(request: dict[str, Any]) -> str:
    """A valid brief in the asked language, naming the event's code; no alias suggestions."""
    if not is_brief(request):
        return json.dumps({"aliases": [], "exclusions": []})
    article = request["messages"][1]["content"]
    code = CODE.search(article)
    topic = article.split("<<<ARTICLE\n", 1)[1].split(" ", 1)[0]
    assert code is not None, article
    headline, core, role, reason = BRIEF_TEXT[language_of(request)]
    brief = {"headline": headline.format(topic=topic, code=code[0]),
             "core_point": core.format(topic=topic, code=code[0]),
             "key_players": [{"name": topic, "name_in_source": topic, "role": role}],
             "industry_impact": [], "tracking_level": 2, "tracking_reason": reason}
    return json.dumps(brief, ensure_ascii=False)


@dataclass
class Replica:
    """One bot process, restarted under the same name; `since` is where its current run's
    lines start in its log (the file is appended to across restarts)."""

    name: str
    bot: BotProcess
    since: int = 0
    starts: int = 0

    def start(self) -> None:
        self.since = len(self.bot.log) if self.bot.log_path.exists() else 0
        self.bot.start()
        self.starts += 1

    def current_log(self) -> str:
        return self.bot.log[self.since:]

    def holds(self, taken: str, lost: str) -> bool:
        log = self.current_log()
        return log.rfind(taken) > log.rfind(lost)

    def kill(self) -> None:
        self.bot.kill()


@dataclass
class Feeds:
    """Each source's feed: its newest entries, republished as events arrive."""

    server: FeedServer
    entries: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    @staticmethod
    def path(n: int) -> str:
        return f"/wire{n:03d}.xml"

    def publish(self, event: Event) -> None:
        now = datetime.now(UTC)
        for variant, n in enumerate(event.sources):
            entry = {"title": event.title, "description": event.lead(variant),
                     "link": f"http://news.example/{n}/{event.code}",
                     "guid": f"wire{n}-{event.code}", "pub_date": now}
            self.entries[n] = [entry, *self.entries[n]][:30]
        for n in event.sources:  # every source at the same moment: replicas race to place them
            self.server.put(self.path(n), rss(source_name(n), self.entries[n]))


def alerts(telegram: BotApiEmulator, chat_id: int) -> list[SentMessage]:
    """Alerts only (they carry the feedback keyboard), not replies to commands."""
    return [m for m in telegram.messages(chat_id)
            if any(button.get("callback_data", "").startswith("up:")
                   for row in (m.reply_markup or {}).get("inline_keyboard", []) for button in row)]


def code_in(text: str) -> str:
    found = CODE.search(text)
    assert found, text
    return found[0]


def code_of(message: SentMessage) -> str:
    return code_in(message.text)


def logged(replicas: list[Replica], needle: str) -> bool:
    return any(needle in replica.current_log() for replica in replicas)


def wait_until(what: str, condition: Callable[[], bool], deadline: float,
               status: Callable[[], str]) -> None:
    next_report = time.monotonic() + 15
    while not condition():
        now = time.monotonic()
        assert now < deadline, f"{what} not reached in time: {status()}"
        if now > next_report:
            print(f"  waiting for {what}: {status()}", flush=True)
            next_report = now + 15
        time.sleep(0.5)


def unsettled(database_url: str) -> dict[str, int]:
    """Deliveries not yet sent, and sent alerts still to be edited: 0 and 0 once settled."""
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            states = dict(session.exec(select(Delivery.state, func.count())
                                       .group_by(Delivery.state)).all())
            edits = session.exec(select(func.count()).select_from(Delivery)
                                 .where(col(Delivery.needs_edit))).one()
    finally:
        engine.dispose()
    return {state: int(n) for state, n in states.items() if state != "sent"} | {
        "to_edit": int(edits)}


def stories_by_event(database_url: str) -> dict[str, set[int]]:
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            rows = session.exec(select(Item.title, Item.story_id)).all()
    finally:
        engine.dispose()
    found: dict[str, set[int]] = defaultdict(set)
    for title, story_id in rows:
        if code := CODE.search(title):
            found[code[0]].add(story_id)
    return found


@pytest.mark.timeout(ARRIVAL_SECONDS + SETTLE_SECONDS + 300)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_three_replicas_killed_in_turn_deliver_everything_once_within_telegrams_limits(
    database_url: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    rng = random.Random(SEED)
    events = plan_events(rng)
    readers = seeded_readers()
    started = time.monotonic()
    with (BotApiEmulator(token=TOKEN, enforce_limits=True, limits=Limits(slack=SLACK)) as telegram,
          LlmServer() as llm, FeedServer() as server):
        llm.responder = respond
        feeds = Feeds(server)
        for n in range(SOURCES):
            server.put(Feeds.path(n), rss(source_name(n), []))
        for reader in readers:
            if reader.chat_id < 0:
                telegram.group(reader.chat_id, "Desk")
            else:
                telegram.private_chat(telegram.user(reader.chat_id, "Reader",
                                                    language_code=reader.language))
        seed(database_url, readers, [server.url(Feeds.path(n)) for n in range(SOURCES)])

        replicas = []
        for n in range(REPLICAS):
            name = f"r{n}"
            (tmp_path / name).mkdir()
            env = env_for(telegram, database_url) | {
                "TELEGRAM_API_URL": f"{telegram.base_url}/{name}", "LOG_LEVEL": "INFO",
                "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": llm.base_url,
                "LLM_MODEL": "tiny", "LLM_TIMEOUT_SECONDS": str(LLM_TIMEOUT),
                "POLL_INTERVAL_SECONDS": str(SOURCE_INTERVAL),
                # Parser processes would outlive a SIGKILLed parent; a thread parses here.
                "PARSE_WORKERS": "0",
            }  # fmt: skip
            replicas.append(Replica(name, bot_process(tmp_path / name, env)))
        for replica in replicas:
            replica.start()
        deadline = time.monotonic() + 120
        for needle in ("this replica now holds the sending role", "receiver role taken"):
            wait_until(needle, partial(logged, replicas, needle), deadline,
                       lambda: "; ".join(r.current_log()[-300:] for r in replicas))

        commanders = []
        for n in range(COMMAND_CHATS):
            user = telegram.user(FIRST_CHAT + CHATS + n, "Cmd",
                                 language_code=LANGUAGES[n % len(LANGUAGES)])
            commanders.append((Reader(user["id"], LANGUAGES[n % len(LANGUAGES)],
                                      (TOPICS[n % len(TOPICS)],)),
                               telegram.private_chat(user), user))
        readers_by_id = {reader.chat_id: reader for reader in readers}

        # The run: events, kills and restarts, and command subscriptions, on one clock.
        kills: list[tuple[float, str, str]] = []
        plan: list[tuple[float, str, Any]] = [(e.at, "publish", e) for e in events]
        plan += [(KILL_EVERY * k, "kill", k - 1) for k in range(1, KILLS + 1)]
        plan += [(ARRIVAL_SECONDS * (n + 1) / (COMMAND_CHATS + 1) + 1.0, "subscribe", n)
                 for n in range(COMMAND_CHATS)]
        plan.sort(key=lambda step: step[0])
        begin = time.monotonic()
        for at, action, what in plan:
            while time.monotonic() < begin + at:
                time.sleep(0.02)
            if action == "publish":
                what.published = time.monotonic()
                feeds.publish(what)
            elif action == "subscribe":
                reader, chat, user = commanders[what]
                reader.asked = time.monotonic()
                telegram.send_text(chat, user, f"/subscribe {reader.topics[0]}")
            else:
                if what == 0:
                    role, victims = "sending", [r for r in replicas if r.holds(
                        "this replica now holds the sending role", "lost the sending role")]
                elif what == 1:
                    role, victims = "receiver", [r for r in replicas if r.holds(
                        "receiver role taken", "receiver role lost")]
                else:
                    role, victims = "random", []
                victim = victims[0] if victims else rng.choice(replicas)
                victim.kill()
                kills.append((time.monotonic() - begin, victim.name, role))
                victim.start()
        arrival_end = time.monotonic()

        # Command subscriptions took effect when their confirmation was sent.
        deadline = arrival_end + SETTLE_SECONDS
        wait_until("subscription replies", lambda: all(telegram.send_times(r.chat_id)
                                                        for r, _, _ in commanders),
                   deadline, lambda: str([len(telegram.messages(r.chat_id))
                                          for r, _, _ in commanders]))
        for reader, _, _ in commanders:
            reader.since = telegram.send_times(reader.chat_id)[0]
            readers_by_id[reader.chat_id] = reader
        everyone = list(readers_by_id.values())
        multi = {e.code: {source_name(n) for n in e.sources} for e in events if len(e.sources) > 1}

        def missing() -> list[tuple[int, str]]:
            gaps = []
            for reader in everyone:
                got = {code_of(m) for m in alerts(telegram, reader.chat_id)}
                gaps += [(reader.chat_id, e.code) for e in events
                         if reader.must_get(e) and e.code not in got]
            return gaps

        def unedited() -> list[tuple[int, str]]:
            """Alerts of multi-source stories of which no copy in the chat lists every source.
            A copy a killed replica sent but never recorded is one of the duplicates allowed
            below, and can never be edited (its message id was lost with that replica)."""
            shown: dict[tuple[int, str], bool] = {}
            for reader in everyone:
                for m in alerts(telegram, reader.chat_id):
                    if (code := code_of(m)) in multi:
                        key = (reader.chat_id, code)
                        shown[key] = shown.get(key, False) or all(
                            name in m.text for name in multi[code])
            return [key for key, complete in shown.items() if not complete]

        def progress() -> str:
            gaps = missing()
            return (f"{len(gaps)} alerts missing (e.g. {gaps[:3]}), {len(unedited())} not yet "
                    f"edited, unsettled {unsettled(database_url)}, "
                    f"{telegram.too_many_requests} 429s")

        wait_until("every alert", lambda: not missing(), deadline, progress)
        wait_until("every edit, and no delivery left to send",
                   lambda: not unedited() and not any(unsettled(database_url).values()),
                   deadline, progress)
        settled = time.monotonic()

        # Figures and checks.
        counts: Counter[tuple[int, str]] = Counter()
        wrong = []
        for reader in everyone:
            for message in alerts(telegram, reader.chat_id):
                code = code_of(message)
                counts[(reader.chat_id, code)] += 1
                event = events[int(code[1:]) - CODE_BASE]
                if not reader.wants(event):
                    wrong.append((reader.chat_id, code))
        duplicates = sum(n - 1 for n in counts.values())
        expected = sum(1 for reader in everyone for e in events if reader.must_get(e))
        briefs_asked = Counter((code_in(r["messages"][1]["content"]), language_of(r))
                               for r in llm.requests if is_brief(r))
        briefs_needed = {(e.code, reader.language) for reader in everyone for e in events
                         if (reader.chat_id, e.code) in counts}
        stories = stories_by_event(database_url)
        sends = Counter(caller for caller, method in telegram.callers
                        if method in ("sendMessage", "editMessageText"))
        max_rate = telegram.max_rate()
        figures = {
            "full_size": FULL, "seed": SEED, "replicas": REPLICAS, "sources": SOURCES,
            "chats": CHATS + COMMAND_CHATS, "command_chats": COMMAND_CHATS,
            "events": len(events), "events_from_2_or_3_sources": len(multi),
            "arrival_s": ARRIVAL_SECONDS, "kills": [f"{at:.0f}s {name} ({role})"
                                                    for at, name, role in kills],
            "alerts_expected": expected, "alerts_sent": sum(counts.values()),
            "duplicates": duplicates, "duplicate_bound": len(kills) * PACING.in_flight,
            "edits": sum(m.edits for r in everyone for m in alerts(telegram, r.chat_id)),
            "sends_by_replica": dict(sorted(sends.items())),
            "llm_brief_calls": sum(briefs_asked.values()),
            "story_language_pairs": len(briefs_needed),
            "llm_repeats": sum(n - 1 for n in briefs_asked.values()),
            "too_many_requests": telegram.too_many_requests, "max_sends_in_1s": max_rate,
            "throttled": dict(Counter(window for _, _, window in telegram.throttled)),
            "settle_after_arrival_s": round(settled - arrival_end, 1),
            "wall_s": round(settled - started, 1),
        }
        print("\nreplica test figures:\n" + json.dumps(figures, indent=1), flush=True)
        repeats = sum(n - 1 for n in briefs_asked.values())

        assert not wrong, f"alerts for topics the chat does not follow: {wrong[:10]}"
        assert not missing()
        assert duplicates <= len(kills) * PACING.in_flight, figures
        assert all(len(ids) == 1 for ids in stories.values()), \
            {code: ids for code, ids in stories.items() if len(ids) > 1}
        assert set(stories) == {e.code for e in events}
        assert set(briefs_asked) == briefs_needed, set(briefs_asked) ^ briefs_needed
        assert repeats <= len(kills) * LLM_CONCURRENCY, briefs_asked.most_common(5)
        assert telegram.too_many_requests == 0, telegram.throttled
        assert max_rate <= 30, figures
        assert telegram.rejected == [], telegram.rejected[:5]
        assert telegram.errors == []
        for replica in replicas:
            assert "Traceback" not in replica.bot.log, replica.bot.log[-5000:]
