"""What the test modules share: the bot process's environment and chats, the emulated
world a test acts in, stored rows and fixtures of hostile input. Test modules import from
here, never from each other."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import httpx
from sqlalchemy import Engine, update
from sqlmodel import Session, col
from telegram.ext import ApplicationBuilder, CallbackContext

from jobs import Job
from locales import catalog
from news.fetch import FetchPolicy
from news.ingest import ingest
from news.items import ItemDraft
from news.newsroom import Newsroom
from services import KEY
from storage import chats, sources, subscriptions
from storage.db import session_scope
from storage.models import Subscription, SubscriptionRemoval, utcnow
from storage.sources import DueSource
from telegram_link import DEFAULTS
from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.llm import LlmServer
from tests.fakes.telegram import BotApiEmulator, SentMessage

# --- e2e_walkthrough ----------------------------------------------------------------

ADMIN_ID, READER_ID = 1001, 2002

T = TypeVar("T")
TOKEN = "123456:TEST-TOKEN"

BASELINE = [
    {"title": "SoftBank opens an office in Lille", "link": "http://news.test/a1", "guid": "a1",
     "description": "SoftBank already had staff there.",
     "pub_date": datetime(2026, 11, 1, tzinfo=UTC)},
    {"title": "Weather in Paris", "link": "http://news.test/a2", "guid": "a2",
     "description": "Rain all week.", "pub_date": datetime(2026, 11, 2, tzinfo=UTC)},
]

NEW_SOFTBANK = {
    "title": "SoftBank pledges billions for an AI valley in Hauts-de-France",
    "link": "http://news.test/b1?utm_source=rss", "guid": "b1",
    "description": "<p>SoftBank has pledged a major investment in Hauts-de-France. "
                   "Regional president Xavier Bertrand called it a game-changer. "
                   "Data centers come first.</p>",
    "pub_date": datetime(2026, 11, 20, tzinfo=UTC),
}


def env_for(telegram: BotApiEmulator, database_url: str) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.base_url,
        "DATABASE_URL": database_url,
        "ADMIN_IDS": str(ADMIN_ID),
        "POLL_INTERVAL_SECONDS": "1",
        "ALLOWED_SOURCE_NETWORKS": "127.0.0.0/8",
        "LOG_LEVEL": "DEBUG",
        "FULL_TEXT": "false",  # story links point nowhere; tests/test_e2e_fulltext.py covers it
        # Scripted users type faster than people; tests/test_e2e_limits.py sets its own limit.
        "COMMANDS_PER_MINUTE": "0",
    }


def say(telegram: BotApiEmulator, chat: dict, user: dict, text: str) -> str:
    """Send as the user and return the bot's next reply in that chat."""
    before = len(telegram.messages(chat["id"]))
    telegram.send_text(chat, user, text)
    return telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before].text


# --- e2e_briefs ---------------------------------------------------------------------

ZH_BRIEF = {
    "headline": "软银承诺巨资打造上法兰西大区“人工智能谷”",
    "core_point": "软银承诺在上法兰西大区进行巨额投资。地区主席称其将改变游戏规则。",
    "key_players": [{"name": "软银", "name_in_source": "SoftBank", "role": "日本科技集团"},
                    {"name": "Xavier Bertrand", "name_in_source": "Xavier Bertrand",
                     "role": "上法兰西大区主席"},
                    {"name": "马斯克", "name_in_source": "Elon Musk",
                     "role": "原文并未提及的人物"}],
    "industry_impact": [{"sector": "数据中心", "level": "high", "why": "大规模AI算力投资"}],
    "tracking_level": 1,
    "tracking_reason": "投资规模巨大，后续进展值得关注",
}

EN_BRIEF = {**ZH_BRIEF, "headline": "SoftBank pledges billions for an AI valley",
            "core_point": "SoftBank pledged a major investment in Hauts-de-France.",
            "key_players": [{"name": "SoftBank", "name_in_source": "SoftBank",
                             "role": "Japanese conglomerate"}],
            "industry_impact": [], "tracking_reason": "Large investment."}


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def brief_requests(llm: LlmServer) -> list[dict[str, Any]]:
    """Requests for briefs (alias suggestions after /subscribe are requests too)."""
    return [r for r in llm.requests if "news briefs" in r["messages"][0]["content"]]


def brief_for(request: dict[str, Any]) -> str:
    system = request["messages"][0]["content"]
    return json.dumps(ZH_BRIEF if "in Chinese" in system else EN_BRIEF, ensure_ascii=False)


def start_with_llm(
    telegram: BotApiEmulator, llm: LlmServer, feeds: FeedServer, tmp_path: Path,
    bot_process: type[BotProcess], extra_env: dict[str, str] | None = None,
) -> BotProcess:
    env = env_for(telegram, f"sqlite:///{tmp_path / 'tidings.db'}")
    env |= {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": llm.base_url, "LLM_MODEL": "tiny"}
    env |= extra_env or {}
    bot = bot_process(tmp_path, env).start()
    bot.wait_for_log("Tidings starting")
    assert "LLM tiny" in bot.log
    admin = telegram.user(ADMIN_ID, "Ada")
    say(telegram, telegram.private_chat(admin), admin, f"/addsource {feeds.url('/feed.xml')}")
    return bot


# --- e2e_topics ---------------------------------------------------------------------


class World:
    """The emulators, a running bot with one source, and helpers to act as users."""

    def __init__(self, telegram: BotApiEmulator, feeds: FeedServer, bot: BotProcess) -> None:
        self.telegram, self.feeds, self.bot = telegram, feeds, bot
        self.entries: list[dict[str, Any]] = list(BASELINE)

    def publish(self, *entries: dict[str, Any]) -> None:
        self.entries = [*entries, *self.entries]
        self.feeds.put("/feed.xml", rss("Test News", self.entries))

    def press(self, chat: dict, user: dict, message: SentMessage, data: str) -> str:
        """Press a button; returns the short answer Telegram shows."""
        query_id = self.telegram.press_button(chat, user, message.message_id, data)
        wait_until(lambda: bool(self.telegram.answered_callbacks(query_id)))
        return str(self.telegram.answered_callbacks(query_id)[0].get("text", ""))


def last_says(expected: str, telegram: BotApiEmulator, chat: dict) -> None:
    """A press is answered first (the spinner stops), then the bot sends or edits: wait."""
    wait_until(lambda: expected in telegram.messages(chat["id"])[-1].text)


def start_world(
    tmp_path: Path, bot_process: type[BotProcess], telegram: BotApiEmulator, feeds: FeedServer,
    extra_env: dict[str, str] | None = None,
) -> World:
    feeds.put("/feed.xml", rss("Test News", BASELINE))
    env = env_for(telegram, f"sqlite:///{tmp_path / 't.db'}") | (extra_env or {})
    bot = bot_process(tmp_path, env).start()
    bot.wait_for_log("Tidings starting")
    admin = telegram.user(ADMIN_ID, "Ada")
    say(telegram, telegram.private_chat(admin), admin, f"/addsource {feeds.url('/feed.xml')}")
    return World(telegram, feeds, bot)

ALIASES = {"aliases": ["软银", "ソフトバンク", "소프트뱅크", "SoftBank"], "exclusions": ["Hawks"]}


def alias_or_brief(request: dict[str, Any]) -> str:
    if "<<<TOPIC" in request["messages"][1]["content"]:
        return json.dumps(ALIASES, ensure_ascii=False)
    return "not json"  # briefs fall back to offline; this test is about aliases


# --- e2e_admin ----------------------------------------------------------------------


def wait_for_summary(telegram: BotApiEmulator, chat_id: int, message_id: int,
                     timeout: float = 30.0) -> str:
    """The import runs in the background and edits its progress message into the summary."""
    def summary() -> str:
        edited = [m for m in telegram.messages(chat_id) if m.message_id == message_id]
        return edited[0].text if edited and "added" in edited[0].text else ""
    wait_until(lambda: bool(summary()), timeout=timeout)
    return summary()


# --- e2e_feedback -------------------------------------------------------------------


def current(telegram: BotApiEmulator, message: SentMessage) -> SentMessage:
    return next(m for m in telegram.messages(message.chat_id) if m.message_id == message.message_id)


# --- e2e_channel_buttons ------------------------------------------------------------


def buttons(message: SentMessage) -> dict[str, str]:
    """Visible button label -> callback data."""
    assert message.reply_markup is not None, message.text
    return {b["text"]: b["callback_data"]
            for row in message.reply_markup["inline_keyboard"] for b in row}


# --- e2e_hostile --------------------------------------------------------------------


def peak_memory(pid: int) -> int:
    """A process's peak resident size (VmHWM) in bytes, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


# --- storage ------------------------------------------------------------------------


def in_session(engine: Engine, work: Callable[..., T], **values: Any) -> T:
    """`work(session=..., **values)` in one transaction, as storage.db.db runs it for async
    code, for tests that call it directly."""
    with session_scope(engine) as session:
        return work(session=session, **values)


def draft(guid: str, title: str) -> ItemDraft:
    return ItemDraft(guid=guid, link=f"http://news.test/{guid}", title=title, summary=title,
                     published_at=None)


def make_chat(engine: Engine, chat_id: int, language: str = "en") -> None:
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=chat_id, chat_type="private", title=None,
                          language=language)


def make_source(engine: Engine, url: str = "http://feeds.test/a.xml",
                name: str = "A") -> DueSource:
    with session_scope(engine) as session:
        source = sources.add(session=session, url=url, name=name, interval_seconds=60)
        assert source.id is not None
        return DueSource(source.id, source.url, source.name, None, None)


# --- replicas -----------------------------------------------------------------------


def named_source(engine: Engine, name: str) -> DueSource:
    with session_scope(engine) as session:
        row = sources.add(session=session, url=f"http://{name}.test/feed", name=name,
                          interval_seconds=60)
        assert row.id is not None
        return DueSource(row.id, row.url, row.name, None, None)


def subscribe(engine: Engine, chat_id: int, query: str) -> None:
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=chat_id, chat_type="private", title=None,
                          language="en")
        subscriptions.add(session=session, chat_id=chat_id, query=query)


def queue_stories(engine: Engine, titles: list[str]) -> None:
    """One story per title, due for an English and a Chinese chat: a brief in each language."""
    subscribe(engine, 1, "SoftBank")
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=2, chat_type="private", title=None,
                          language="zh")
        subscriptions.add(session=session, chat_id=2, query="SoftBank")
    source = named_source(engine, "wire")
    drafts = [ItemDraft(f"g{n}", f"http://wire.test/{n}", title, title, None)
              for n, title in enumerate(titles)]
    assert ingest(Newsroom(engine), source, drafts) == len(titles)


def run_job(job: Job, engine: Engine, telegram: BotApiEmulator,
            **services: Any) -> None:
    """One run of a job, as a replica with its own engine and bot runs it."""

    async def run() -> None:
        application = (ApplicationBuilder().token(telegram.token).defaults(DEFAULTS)
                       .base_url(f"{telegram.base_url}/bot").build())
        application.bot_data[KEY] = SimpleNamespace(
            engine=engine, catalog=catalog, stopping=asyncio.Event(), **services)
        async with application:
            await job(CallbackContext(application))

    asyncio.run(run())


# --- ingest_robustness --------------------------------------------------------------

LOOPBACK = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))


def http_client() -> httpx.AsyncClient:
    """Built as bot.py builds the bot's client."""
    return httpx.AsyncClient(headers={"User-Agent": "Tidings-test"}, trust_env=False,
                             limits=httpx.Limits(max_connections=64))


def store_source(engine: Engine, url: str, name: str) -> DueSource:
    """A source stored as /addsource stores it, handed to poll as claim_due would hand it."""
    with session_scope(engine) as session:
        source = sources.add(session=session, url=url, name=name, interval_seconds=3600)
        assert source.id is not None
        return DueSource(source.id, source.url, source.name, source.etag, source.last_modified)


def claim(engine: Engine, url: str) -> DueSource:
    """Make one source due now and claim it, with the validators its last poll stored."""
    with session_scope(engine) as session:
        source = sources.by_url(session=session, url=url)
        assert source is not None
        source.next_poll_at = utcnow() - timedelta(seconds=1)
    with session_scope(engine) as session:
        due = [d for d in sources.claim_due(session=session, now=utcnow()) if d.url == url]
    assert len(due) == 1
    return due[0]


# --- article ------------------------------------------------------------------------

HTML = "text/html; charset=utf-8"

SNIPPET = "Tidal power plant opens in Brittany. Read more…"

PARAGRAPHS = [
    "The tidal power plant in the Rance estuary reopened on Monday after an eighteen-month "
    "refurbishment that replaced all twenty-four of its turbines with quieter, more efficient "
    "units built in Grenoble.",
    "Engineers said the new turbines turn in both directions, so the plant can generate "
    "electricity on the rising as well as the falling tide, lifting its yearly output by "
    "roughly a tenth without any change to the barrage itself.",
    "Local fishermen, who had opposed the works because of the silt released during "
    "construction, said the estuary had cleared faster than they had feared and that sea bass "
    "were already returning to the basin above the dam.",
    "The operator plans to publish monthly output figures and a study of the estuary's "
    "wildlife, which regional officials say will guide decisions on two smaller tidal projects "
    "proposed for the Cotentin coast later this decade.",
]

FOOTER = "Copyright 2025 Coastal Daily Media Group. All rights reserved. Privacy policy"

COMMENT = "Great news, finally some clean energy from the sea in our region, said Yannick"


def article_page(title: str = "Rance tidal plant reopens with new turbines") -> str:
    """A news page as sites serve them: chrome around one article, comments under it."""
    body = "\n".join(f"<p>{paragraph}</p>" for paragraph in PARAGRAPHS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} | Coastal Daily</title>
<script>window.dataLayer = [];</script><style>body {{ font-family: serif; }}</style></head>
<body>
<header class="site-header"><a href="/" class="logo">Coastal Daily</a>
<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/business">Business</a></li><li><a href="/climate">Climate</a></li>
<li><a href="/subscribe">Subscribe</a></li><li><a href="/login">Sign in</a></li></ul></nav>
</header>
<main><article class="story">
<h1>{title}</h1>
<p class="byline">By Marie Le Goff, 3 March 2025</p>
<div class="story-body">
{body}
</div>
</article>
<section id="comments" class="comments"><h2>Comments</h2>
<div class="comment"><p>{COMMENT}</p></div>
<div class="comment"><p>Will the electricity bills go down now? Asked by Soazig</p></div>
</section>
<aside class="related"><h3>Most read</h3><ul><li><a href="/a">Storm warnings for the weekend</a>
</li><li><a href="/b">Ferry strike called off</a></li></ul></aside>
</main>
<footer class="site-footer"><p>{FOOTER}</p>
<ul><li><a href="/about">About us</a></li><li><a href="/contact">Contact</a></li></ul></footer>
</body></html>"""


def article_draft(link: str, summary: str = SNIPPET, guid: str = "") -> ItemDraft:
    return ItemDraft(guid=guid or link, link=link, title="Tidal plant", summary=summary,
                     published_at=None)


# --- xmlguard -----------------------------------------------------------------------

ITEM = ('<rss version="2.0"><channel><title>Bomb</title><item><title>t</title>'
        "<link>http://ex.test/1</link><description>{refs}</description></item></channel></rss>")


def flat_expansion(refs: int = 3000, size: int = 1000) -> str:
    """One flat entity referenced many times: the "safe" kind feedparser keeps and expands
    (38 KB of UTF-16 became a 30-million-character summary)."""
    return (f'<!DOCTYPE rss [\n<!ENTITY a "{"x" * size}">\n]>\n'
            + ITEM.format(refs="&a;" * refs))


def decoy_subset(refs: int = 3000, size: int = 1000) -> str:
    """An empty subset first, to use up a single regex match, then the real declarations."""
    return (f'<!DOCTYPE x [ ]>\n<!DOCTYPE rss [\n<!ENTITY a "{"x" * size}">\n]>\n'
            + ITEM.format(refs="&a;" * refs))


def backtracking(size: int = 200_000) -> str:
    """Repeated openings of a subset that never ends: quadratic for a `.*?` regex."""
    return "<!DOCTYPE a [" * (size // 13)


def billion_laughs() -> str:
    """Ten levels of ten references: 10^9 "lol"s from under 1 KB."""
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
    return ('<!DOCTYPE rss [\n' + "\n".join(levels) + "\n]>\n"
            + ITEM.format(refs="&lol9;"))

SHAPES = {"flat-expansion": flat_expansion, "decoy-subset": decoy_subset,
          "backtracking": backtracking, "billion-laughs": billion_laughs}

ENCODINGS = {"utf-8": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}


def encoded(text: str, encoding: str) -> bytes:
    """Declared, and for UTF-16 with its byte order mark, as a server would send it."""
    declaration = f'<?xml version="1.0" encoding="{encoding[:6].upper()}"?>\n'
    return ENCODINGS[encoding] + (declaration + text).encode(encoding)


def hostile() -> Iterator[tuple[str, bytes]]:
    for shape, build in SHAPES.items():
        text = build()
        for encoding in ENCODINGS:
            yield f"{shape}/{encoding}", encoded(text, encoding)

HOSTILE = dict(hostile())


# Issue 20, item 1: feedparser reads `encoding=` from any processing instruction on the first
# line, from the last one there, and past a `?>` inside quotes; the guard read only a leading
# `<?xml …?>`. When the two disagreed, the text checked was not the text parsed.
def utf7(text: str) -> str:
    """The markup an ASCII scan looks for, hidden as UTF-7 shifts (`<` is +ADw-)."""
    return text.replace("<!", "+ADw-!").replace("[", "+AFs-").replace("]", "+AF0-")


def encoding_tricks(bomb: str) -> dict[str, str]:
    """The bomb hidden from an ASCII scan in each way the second security review found, and
    in a multi-line declaration feedparser's rule misses but ours reads."""
    return {
        "first-line-pi/utf-7": '<?x encoding="utf-7"?>\n' + utf7(bomb),
        "after-the-declaration/utf-7":
            '<?xml version="1.0"?><?x encoding="utf-7"?>\n' + utf7(bomb),
        "quoted-end/utf-7": '<?xml version="1.0" x="?>" encoding="utf-7"?>\n' + utf7(bomb),
        "first-line-pi/unicode_escape": '<?x encoding="unicode_escape"?>\n'
                                        + bomb.replace("<!", "\\x3c!"),
        "first-line-pi/raw_unicode_escape": '<?x encoding="raw_unicode_escape"?>\n'
                                            + bomb.replace("<!", "\\u003c!"),
        "declared/unicode_escape": '<?xml version="1.0" encoding="unicode_escape"?>\n'
                                   + bomb.replace("<!", "\\x3c!"),
        "declared-on-two-lines/utf-7": '<?xml version="1.0"\n  encoding="utf-7"?>\n'
                                       + utf7(bomb),
        "declared/base64": '<?xml version="1.0" encoding="base64"?>\n'
                           + "PCFET0NUWVBFIHJzcyBbPCFFTlRJVFkgYSAieCI+XT4=",
    }


# --- golden_seed --------------------------------------------------------------------

SEED = Path(__file__).parent / "fixtures" / "seeds" / "000_7f35cfdb8d60a8cb.txt"

ARTICLE_START = "Hauts-de-France is aggressively positioning itself"

FRENCH_SUMMARY_START = "SoftBank promet"

LEVELS = {"高": "high", "中": "medium", "低": "low"}

SECTION_KEYS = ["brief.core_point", "brief.key_players", "brief.industry_impact", "brief.tracking"]


@dataclass(frozen=True)
class Seed:
    """What the tests take from the seed file."""

    refusal: str
    headline: str  # the Chinese headline
    title: str  # the original (French) headline
    article: str  # the English article
    labels: list[str]  # the Chinese brief's section labels, in its order
    lines: dict[str, list[str]]  # each label's lines, as the seed writes them
    answer: dict[str, Any]  # the Chinese brief as the model's JSON answer


def read_seed(path: Path = SEED) -> Seed:
    """Parse the seed: its refusal, headlines, English article and Chinese brief."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    start = next(n for n, line in enumerate(lines) if line.startswith(ARTICLE_START))
    end = next(n for n in range(start, len(lines)) if lines[n].startswith(FRENCH_SUMMARY_START))
    first_label = lines.index(catalog.text("zh", "brief.core_point"))
    labels: list[str] = []
    sections: dict[str, list[str]] = {}
    for line in lines[first_label:]:
        if line and len(line) <= 8 and not line.startswith("-"):  # a label: short, no bullet
            labels.append(line)
            sections[line] = []
        elif line:
            sections[labels[-1]].append(line)
    core, players, impacts, tracking = (sections[label] for label in labels)
    player_lines = [re.fullmatch(r"- (.+) \((.+)\) — (.+)", line) for line in players]
    impact_lines = [re.fullmatch(r"- (.+):(高|中|低) — (.+)", line) for line in impacts]
    level_name, _, reason = tracking[0].partition(" — ")
    level = next(n for n in (1, 2, 3) if catalog.text("zh", f"level.{n}") == level_name)
    answer = {
        "headline": lines[1],
        "core_point": " ".join(core),
        "key_players": [{"name": m[1], "name_in_source": m[2], "role": m[3]}
                        for m in player_lines if m],
        "industry_impact": [{"sector": m[1], "level": LEVELS[m[2]], "why": m[3]}
                            for m in impact_lines if m],
        "tracking_level": level,
        "tracking_reason": reason,
    }
    assert len(answer["key_players"]) == len(players) and len(answer["industry_impact"]) == len(
        impacts), "every bullet of the seed parsed"
    return Seed(lines[0], lines[1], lines[2], "\n".join(lines[start:end]), labels, sections,
                answer)


def blocks(text: str) -> list[list[str]]:
    """The alert's sections as Telegram shows them: blocks split by a blank line."""
    return [block.split("\n") for block in text.split("\n\n")]


# Subscriptions as the matcher caches' tests change them (test_matcher_cache, test_semantic_cache).


def follow(engine: Engine, chat_id: int, query: str, thread_id: int = 0) -> int | None:
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=chat_id, chat_type="group", title=None,
                          language="en")
        row = subscriptions.add(session=session, chat_id=chat_id, query=query,
                                thread_id=thread_id)
        return None if row is None else row.id


def unfollow(session: Session, subscription_id: int | None) -> None:
    row = subscriptions.get(session=session, subscription_id=subscription_id or 0)
    assert row is not None
    subscriptions.delete(session=session, subscription=row)


def age_removals(engine: Engine, by: timedelta = timedelta(days=2)) -> None:
    """Every tombstone written `by` earlier, as if that long had passed since."""
    with session_scope(engine) as session:
        session.execute(update(SubscriptionRemoval).values(
            removed_at=col(SubscriptionRemoval.removed_at) - by))


def prune(engine: Engine) -> int:
    with session_scope(engine) as session:
        return subscriptions.prune_removals(session=session)


def add_random(session: Session, rng: random.Random, next_chat: int, query: str) -> None:
    """A subscription change of the caches' randomized tests: one of three groups, or a new
    one, follows `query`."""
    chat = rng.choice([1, 2, 3, next_chat])
    chats.ensure_chat(session=session, chat_id=chat, chat_type="group", title=None,
                      language="en")
    subscriptions.add(session=session, chat_id=chat, query=query,
                      thread_id=rng.choice([0, 0, 5]))


def migrate_random(session: Session, rng: random.Random, rows: list[Subscription],
                   next_chat: int) -> int:
    """Another: a group becomes a supergroup, merging into an existing chat or not; the next
    free chat id after it."""
    old = rng.choice(rows).chat_id
    new = rng.choice([chat for chat in (1, 2, 3) if chat != old] + [next_chat + 1])
    if new <= 3:
        chats.ensure_chat(session=session, chat_id=new, chat_type="group", title=None,
                          language="en")
    chats.migrate(session=session, old_id=old, new_id=new)
    return next_chat + 2
