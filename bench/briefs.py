"""Brief-writing benchmark: LLM calls, tokens and latency for 100 stories in 3 languages.

Run from the repository root:  .venv/bin/python bench/briefs.py

Everything runs in process against the loopback chat-completions server of the tests
(tests/fakes/llm.py), with a simulated model time of 50-150 ms per call (fixed seed), a
temporary SQLite database and the real pipeline: `ingest` enqueues one delivery per chat and
story, then `write_missing_briefs` is called round after round until a round writes nothing.

Two configurations share the same 100 stories: 1,000 chats and 30 chats, spread over en, zh
and fr, every chat following a topic that matches every story. The LLM call count must be
stories x languages (300) in both, whatever the number of chats.

Latency, two views:
  brief latency:  wall clock of each `BriefWriter.write` call (wrapped), i.e. one brief from the
                  moment its round starts it, including the wait for the writer's concurrency
                  slot (4, the app's default), the HTTP round trip, parsing and checks;
  LLM request:    wall clock of each HTTP request at the transport, i.e. loopback round trip
                  plus the simulated model time, without the queueing.

Figures are printed as a table, written to bench/results/briefs.json and repeated as JSON on
the last line of stdout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import openai  # noqa: E402
from sqlalchemy import func  # noqa: E402
from sqlmodel import select  # noqa: E402

from news.briefing import write_missing_briefs  # noqa: E402
from news.briefs import BriefWriter, StoryText, Written  # noqa: E402
from news.ingest import ingest  # noqa: E402
from news.items import ItemDraft  # noqa: E402
from news.language import probably_in  # noqa: E402
from news.newsroom import Newsroom  # noqa: E402
from storage import chats, sources, subscriptions, usage  # noqa: E402
from storage.db import make_engine, migrate, session_scope  # noqa: E402
from storage.models import Brief, Delivery  # noqa: E402
from storage.sources import DueSource  # noqa: E402
from tests.fakes.llm import LlmServer, Reply  # noqa: E402

SEED = 20240611
STORIES = 100
LANGUAGES = ("en", "zh", "fr")
CHAT_COUNTS = (1000, 30)
TOPIC = "technology"
MODEL_DELAY = (0.05, 0.15)
CONCURRENCY = 4  # settings.llm_concurrency default
RESULTS = ROOT / "bench" / "results" / "briefs.json"

# --------------------------------------------------------------------------- story material

# name, what it is (en, zh, fr), sector index
COMPANIES = [
    ("Siemens", "German industrial group", "德国工业集团", "groupe industriel allemand", 4),
    ("SoftBank", "Japanese technology investor", "日本科技投资集团", "investisseur japonais", 2),
    ("Airbus", "European aircraft maker", "欧洲飞机制造商", "avionneur européen", 6),
    ("Nvidia", "American chip designer", "美国芯片设计公司", "concepteur américain de puces", 0),
    ("Schneider Electric", "French energy management group", "法国能源管理集团",
     "groupe français de gestion de l'énergie", 3),
    ("TSMC", "Taiwanese chipmaker", "台湾芯片制造商", "fondeur taïwanais", 0),
    ("Orange", "French telecoms operator", "法国电信运营商", "opérateur télécoms français", 5),
    ("Volvo", "Swedish vehicle maker", "瑞典汽车制造商", "constructeur suédois", 1),
    ("Ericsson", "Swedish network equipment maker", "瑞典网络设备制造商",
     "équipementier télécoms suédois", 5),
    ("Northvolt", "Swedish battery maker", "瑞典电池制造商", "fabricant suédois de batteries", 1),
    ("Alstom", "French train maker", "法国列车制造商", "constructeur ferroviaire français", 4),
    ("Vestas", "Danish wind turbine maker", "丹麦风机制造商", "fabricant danois d'éoliennes", 3),
    ("SAP", "German software group", "德国软件集团", "éditeur allemand de logiciels", 2),
    ("ASML", "Dutch chip equipment maker", "荷兰芯片设备制造商",
     "fabricant néerlandais de machines pour puces", 0),
    ("Safran", "French aerospace supplier", "法国航空航天供应商",
     "équipementier aéronautique français", 6),
    ("Iberdrola", "Spanish utility", "西班牙电力公司", "énergéticien espagnol", 3),
    ("Nokia", "Finnish network group", "芬兰网络设备集团", "groupe finlandais de réseaux", 5),
    ("Stellantis", "Franco-Italian carmaker", "法意汽车制造商", "constructeur franco-italien", 1),
    ("OVHcloud", "French cloud provider", "法国云服务商", "hébergeur français", 2),
    ("Infineon", "German chipmaker", "德国芯片制造商", "fabricant allemand de puces", 0),
]
# en, zh, fr (used after "le secteur")
SECTORS = [
    ("semiconductor", "半导体", "des semi-conducteurs"),
    ("battery", "电池", "des batteries"),
    ("cloud computing", "云计算", "du cloud"),
    ("renewable energy", "可再生能源", "des énergies renouvelables"),
    ("rail", "铁路", "ferroviaire"),
    ("telecoms", "电信", "des télécommunications"),
    ("aerospace", "航空航天", "aéronautique"),
]
# en, zh, fr
CITIES = [
    ("Lyon", "里昂", "Lyon"), ("Munich", "慕尼黑", "Munich"), ("Lille", "里尔", "Lille"),
    ("Milan", "米兰", "Milan"), ("Rotterdam", "鹿特丹", "Rotterdam"),
    ("Dublin", "都柏林", "Dublin"), ("Warsaw", "华沙", "Varsovie"), ("Porto", "波尔图", "Porto"),
]
TARGETS = ["Nordlicht Systems", "Alpine Robotics", "Baltic Photonics", "Corvus Data",
           "Helix Grid", "Lumen Fabric", "Tessera Labs", "Vireo Mobility"]
ANALYSTS = [("Marta Keller", "Lindqvist Research"), ("Paul Okafor", "Harbour Securities"),
            ("Ines Duarte", "Meridian Capital"), ("Kenji Mori", "Ostrava Partners")]
EXCHANGES = ["Frankfurt", "Paris", "Amsterdam", "Stockholm", "New York"]
MONTHS = ["March", "May", "June", "September", "October", "November"]

LEAD = {
    "invest": (
        "{co}, the {desc}, said on Tuesday it would invest €{n} billion in a new {sector} plant "
        "near {city}, one of the largest industrial technology projects announced in Europe this "
        "year. The site is expected to employ about {jobs} people once it reaches full capacity, "
        "with the first production lines due to start within three years.\n\n"
        "The decision follows months of talks with regional authorities, which offered land, "
        "faster permits and help with training. \"We chose {city} because it combines skilled "
        "workers, good transport links and access to clean power,\" the company said in a "
        "statement."),
    "acquire": (
        "{co}, the {desc}, has agreed to buy {target} for €{n} billion in cash, its biggest deal "
        "in a decade. The purchase gives {co} a portfolio of {sector} technology and about "
        "{jobs} engineers, most of them based near {city}.\n\n"
        "The boards of both companies have approved the transaction, which values {target} at "
        "a premium of roughly {p} percent to its last private funding round. Completion is "
        "expected next year, subject to approval by competition authorities."),
    "cut": (
        "{co}, the {desc}, plans to cut about {jobs} jobs over the next eighteen months as "
        "demand for {sector} products slows and customers delay orders. The reductions will "
        "fall mostly on administrative roles and on its plant near {city}.\n\n"
        "Unions said they would seek talks with management to limit the impact on the site and "
        "to protect the technology teams that the company says are central to its strategy. "
        "The group expects the plan to save €{n} billion a year from 2027."),
    "results": (
        "{co}, the {desc}, reported quarterly profit well above analyst forecasts on Thursday, "
        "helped by strong sales of {sector} products and firm prices. Revenue rose {p} percent "
        "from a year earlier, and the order book reached a record €{n} billion.\n\n"
        "The company raised its full-year guidance and said it would hire {jobs} more people, "
        "many of them in technology and engineering roles at its research centre near {city}."),
    "probe": (
        "European Union regulators opened a formal antitrust investigation into the {sector} "
        "business of {co}, the {desc}, on Monday. The European Commission will examine whether "
        "long-term supply contracts shut rivals out of the market for key technology.\n\n"
        "If the Commission finds an infringement, {co} could face a fine of up to ten percent "
        "of its global turnover. The company, which employs about {jobs} people near {city}, "
        "said it was confident its contracts complied with competition law."),
}
CONTEXT = (
    "Analysts said the move reflects a broader shift in the {sector} industry, where companies "
    "are racing to secure supply chains and new technology closer to their customers. \"This is "
    "a long-term bet, and the returns will depend on demand holding up,\" said {analyst}, an "
    "analyst at {firm}.")
MARKET = (
    "Shares in {co} moved {p} percent in {exchange} trading after the announcement. The company "
    "will give more details about its technology roadmap and its financial targets at an "
    "investor day scheduled for {month}.")
TITLE = {
    "invest": "{co} to invest €{n} billion in {sector} plant near {city}",
    "acquire": "{co} agrees to buy {target} for €{n} billion",
    "cut": "{co} to cut {jobs} jobs as {sector} demand slows",
    "results": "{co} profit beats forecasts on strong {sector} sales",
    "probe": "EU opens antitrust probe into {co} {sector} business",
}

# What the simulated model answers, per event and language.
HEADLINE = {
    "invest": {"en": "{co} commits €{n} billion to a {sector} site near {city}",
               "zh": "{co}宣布投资{n10}亿欧元在{city_zh}附近建设{sector_zh}工厂",
               "fr": "{co} va investir {n} milliards d'euros près de {city_fr}"},
    "acquire": {"en": "{co} agrees to buy {target} for €{n} billion",
                "zh": "{co}同意以{n10}亿欧元收购{target}",
                "fr": "{co} rachète {target} pour {n} milliards d'euros"},
    "cut": {"en": "{co} to cut {jobs} jobs as {sector} demand slows",
            "zh": "{co}因{sector_zh}需求放缓将裁员约{jobs}人",
            "fr": "{co} va supprimer {jobs} postes face au ralentissement de la demande"},
    "results": {"en": "{co} beats profit forecasts on strong {sector} sales",
                "zh": "{co}季度利润超出预期，{sector_zh}业务销售强劲",
                "fr": "{co} dépasse les attentes grâce au secteur {sector_fr}"},
    "probe": {"en": "EU opens antitrust probe into {co}'s {sector} business",
              "zh": "欧盟对{co}的{sector_zh}业务展开反垄断调查",
              "fr": "Bruxelles ouvre une enquête antitrust visant {co}"},
}
CORE = {
    "invest": {
        "en": "{co} will spend €{n} billion on a new {sector} plant near {city}, creating about "
              "{jobs} jobs. Production should start within three years if permits arrive on "
              "time.",
        "zh": "{co}计划投入{n10}亿欧元，在{city_zh}附近新建一座{sector_zh}工厂，预计创造约{jobs}"
              "个就业岗位。公司表示，如果审批顺利，新工厂将在三年内投产。",
        "fr": "{co} va consacrer {n} milliards d'euros à une nouvelle usine près de {city_fr}, "
              "avec environ {jobs} emplois à la clé. Le groupe prévoit de démarrer la production "
              "d'ici trois ans si les autorisations arrivent à temps."},
    "acquire": {
        "en": "{co} has agreed to pay €{n} billion in cash for {target} to strengthen its "
              "{sector} business. The deal still needs approval from competition authorities.",
        "zh": "{co}已同意以{n10}亿欧元现金收购{target}，以加强其在{sector_zh}领域的业务。"
              "这笔交易仍需竞争监管机构批准，预计明年完成。",
        "fr": "{co} a accepté de racheter {target} pour {n} milliards d'euros afin de renforcer "
              "sa position dans le secteur {sector_fr}. L'opération doit encore être approuvée "
              "par les autorités de la concurrence et devrait aboutir l'an prochain."},
    "cut": {
        "en": "Facing weaker demand for {sector} products, {co} plans to cut about {jobs} jobs "
              "over eighteen months. Unions want talks to protect the site near {city}.",
        "zh": "由于{sector_zh}市场需求持续放缓，{co}计划在未来十八个月内裁减约{jobs}个岗位。"
              "工会表示将与管理层展开谈判，以减少对{city_zh}工厂的影响。",
        "fr": "Face au ralentissement de la demande dans le secteur {sector_fr}, {co} prévoit de "
              "supprimer environ {jobs} postes en dix-huit mois. Les syndicats veulent négocier "
              "pour protéger le site de {city_fr}."},
    "results": {
        "en": "{co} reported quarterly profit above forecasts on strong {sector} sales, with "
              "revenue up {p} percent. It raised its full-year guidance.",
        "zh": "{co}公布的季度利润高于分析师预期，主要得益于{sector_zh}业务的强劲销售，营收同比"
              "增长百分之{p}。公司同时上调了全年业绩指引。",
        "fr": "{co} a publié un bénéfice trimestriel supérieur aux prévisions, porté par de "
              "fortes ventes dans le secteur {sector_fr}, avec un chiffre d'affaires en hausse "
              "de {p} %. Le groupe a relevé ses objectifs annuels."},
    "probe": {
        "en": "The European Commission opened a formal antitrust investigation into {co}'s "
              "{sector} contracts. A breach could cost up to ten percent of global turnover.",
        "zh": "欧盟委员会宣布对{co}的{sector_zh}业务展开正式反垄断调查，重点审查其长期供货合同。"
              "如果违规成立，公司可能面临最高为全球营业额百分之十的罚款。",
        "fr": "La Commission européenne a ouvert une enquête approfondie sur les contrats de long "
              "terme de {co} dans le secteur {sector_fr}. En cas d'infraction, le groupe risque "
              "une amende pouvant atteindre dix pour cent de son chiffre d'affaires mondial."},
}
LEVEL = {"invest": 2, "acquire": 1, "cut": 2, "results": 3, "probe": 1}
REASON = {
    1: {"en": "A decision that can reshape the market; follow the next steps closely.",
        "zh": "此事可能改变市场格局，应密切关注后续进展。",
        "fr": "Une décision qui peut transformer le marché : à suivre de près."},
    2: {"en": "Significant for the sector; worth watching as details emerge.",
        "zh": "对行业影响较大，值得持续关注细节。",
        "fr": "Important pour le secteur ; à surveiller au fil des annonces."},
    3: {"en": "Useful context, no immediate action needed.",
        "zh": "作为背景信息参考，暂无需采取行动。",
        "fr": "Contexte utile, sans action immédiate nécessaire."},
}
ANALYST_ROLE = {"en": "analyst at {firm}", "zh": "{firm}分析师", "fr": "analyste chez {firm}"}
TARGET_ROLE = {"en": "company being acquired", "zh": "被收购公司", "fr": "société rachetée"}
IMPACT_WHY = {"en": "Directly affected by {co}'s decision.",
              "zh": "直接受到{co}此项决定的影响。",
              "fr": "Directement concerné par la décision de {co}."}
LANGUAGE_NAMES = {"English": "en", "Chinese": "zh", "French": "fr"}


def make_stories(rng: random.Random) -> tuple[list[ItemDraft], dict[str, dict[str, Any]]]:
    """100 English articles from templates, and what the fake model needs to brief each."""
    events = list(LEAD)
    drafts: list[ItemDraft] = []
    by_title: dict[str, dict[str, Any]] = {}
    published = datetime.now(UTC) - timedelta(hours=2)
    for i in range(STORIES):
        name, desc, desc_zh, desc_fr, sector_index = COMPANIES[i % len(COMPANIES)]
        event = events[(i // len(COMPANIES)) % len(events)]
        sector, sector_zh, sector_fr = SECTORS[sector_index]
        city, city_zh, city_fr = CITIES[rng.randrange(len(CITIES))]
        analyst, firm = ANALYSTS[rng.randrange(len(ANALYSTS))]
        n = rng.randint(1, 9)
        params: dict[str, Any] = {
            "co": name, "desc": desc, "desc_zh": desc_zh, "desc_fr": desc_fr, "event": event,
            "sector": sector, "sector_zh": sector_zh, "sector_fr": sector_fr,
            "city": city, "city_zh": city_zh, "city_fr": city_fr,
            "analyst": analyst, "firm": firm, "n": n, "n10": n * 10,
            "jobs": f"{rng.randint(3, 40) * 50:,}", "p": rng.randint(2, 15),
            "target": TARGETS[rng.randrange(len(TARGETS))],
            "exchange": rng.choice(EXCHANGES), "month": rng.choice(MONTHS),
        }
        title = TITLE[event].format(**params)
        body = "\n\n".join(part.format(**params) for part in (LEAD[event], CONTEXT, MARKET))
        assert title not in by_title, title
        by_title[title] = params
        drafts.append(ItemDraft(
            guid=f"bench-{i}", link=f"https://news.example/{i}", title=title, summary=body,
            published_at=published + timedelta(seconds=i),
        ))
    return drafts, by_title


def brief_json(params: dict[str, Any], language: str) -> str:
    """A valid brief for this story in `language`, as a model would write it."""
    event = params["event"]
    desc = {"en": params["desc"], "zh": params["desc_zh"], "fr": params["desc_fr"]}[language]
    sector = {"en": params["sector"], "zh": params["sector_zh"],
              "fr": f"secteur {params['sector_fr']}"}[language]
    players = [{"name": params["co"], "name_in_source": params["co"], "role": desc},
               {"name": params["analyst"], "name_in_source": params["analyst"],
                "role": ANALYST_ROLE[language].format(**params)}]
    if event == "acquire":
        players.append({"name": params["target"], "name_in_source": params["target"],
                        "role": TARGET_ROLE[language]})
    level = LEVEL[event]
    brief = {
        "headline": HEADLINE[event][language].format(**params),
        "core_point": CORE[event][language].format(**params),
        "key_players": players,
        "industry_impact": [{"sector": sector, "level": ("high", "medium", "low")[level - 1],
                             "why": IMPACT_WHY[language].format(**params)}],
        "tracking_level": level,
        "tracking_reason": REASON[level][language],
    }
    return json.dumps(brief, ensure_ascii=False)


class FakeModel:
    """Responder for LlmServer: the right brief in the asked language after 50-150 ms."""

    def __init__(self, by_title: dict[str, dict[str, Any]], seed: int) -> None:
        self.by_title = by_title
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.delays: list[float] = []

    def __call__(self, request: dict[str, Any]) -> Reply:
        system, article = (m["content"] for m in request["messages"][:2])
        language = next(code for name, code in LANGUAGE_NAMES.items() if f"in {name}" in system)
        title = article.split("\n")[1]
        with self.lock:
            delay = self.rng.uniform(*MODEL_DELAY)
            self.delays.append(delay)
        return Reply(content=brief_json(self.by_title[title], language), delay=delay)


class TimedTransport(httpx.AsyncHTTPTransport):
    """Times each HTTP request to its response headers (the fake sends the body with them)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter()
        response = await super().handle_async_request(request)
        self.seconds.append(time.perf_counter() - start)
        return response


# --------------------------------------------------------------------------- the run

@dataclass
class Run:
    chats: int
    deliveries: int
    stories: int
    llm_calls: int
    usage_calls: int
    failures: int
    briefs: int
    offline_briefs: int
    rounds: int
    tokens_in_mean: float
    tokens_out_mean: float
    tokens_in_total: int
    tokens_out_total: int
    brief_p50_ms: float
    brief_p95_ms: float
    brief_max_ms: float
    request_p50_ms: float
    request_p95_ms: float
    model_p50_ms: float
    model_p95_ms: float
    setup_s: float
    ingest_s: float
    briefs_wall_s: float


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms(value: float) -> float:
    return round(value * 1000, 1)


async def run(chat_count: int, drafts: list[ItemDraft], by_title: dict[str, dict[str, Any]],
              workdir: Path) -> Run:
    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{workdir / f'bench-{chat_count}.db'}")
    migrate(engine)
    with session_scope(engine) as session:
        for chat_id in range(1, chat_count + 1):
            chats.ensure_chat(session=session, chat_id=chat_id, chat_type="private", title=None,
                              language=LANGUAGES[chat_id % len(LANGUAGES)])
            subscriptions.add(session=session, chat_id=chat_id, query=TOPIC)
        row = sources.add(session=session, url="https://news.example/feed.xml",
                          name="Example Wire", interval_seconds=600)
        source = DueSource(row.id or 0, row.url, row.name, None, None)
    setup_s = time.perf_counter() - started

    started = time.perf_counter()
    stored = ingest(Newsroom(engine), source, drafts)
    ingest_s = time.perf_counter() - started
    assert stored == STORIES, stored

    model = FakeModel(by_title, SEED + chat_count)
    transport = TimedTransport()
    with LlmServer() as llm:
        llm.responder = model
        client = openai.AsyncOpenAI(api_key="bench", base_url=llm.base_url, max_retries=0,
                                    timeout=30, http_client=httpx.AsyncClient(transport=transport))
        writer = BriefWriter(client, "bench-model", concurrency=CONCURRENCY, retry_delay=0.1)
        latencies: list[float] = []
        write = writer.write

        async def timed_write(story: StoryText, language: str, *, story_id: int = 0) -> Written:
            start = time.perf_counter()
            try:
                return await write(story, language, story_id=story_id)
            finally:
                latencies.append(time.perf_counter() - start)

        writer.write = timed_write  # type: ignore[method-assign]
        started = time.perf_counter()
        rounds = 0
        while (await write_missing_briefs(engine, writer)).written:
            rounds += 1
        briefs_wall_s = time.perf_counter() - started
        await client.close()
        llm_calls = llm.calls

    with session_scope(engine) as session:
        day = usage.of_day(session=session)
        deliveries = session.exec(select(func.count()).select_from(Delivery)).one()
        stats = session.exec(select(
            func.count(), func.avg(Brief.tokens_in), func.avg(Brief.tokens_out),
            func.sum(Brief.tokens_in), func.sum(Brief.tokens_out))).one()
        offline = session.exec(
            select(func.count()).select_from(Brief).where(Brief.origin == "offline")).one()
        result = Run(
            chats=chat_count, deliveries=int(deliveries), stories=stored, llm_calls=llm_calls,
            usage_calls=day.calls, failures=day.failures, briefs=int(stats[0]),
            offline_briefs=int(offline), rounds=rounds,
            tokens_in_mean=round(float(stats[1]), 1), tokens_out_mean=round(float(stats[2]), 1),
            tokens_in_total=int(stats[3]), tokens_out_total=int(stats[4]),
            brief_p50_ms=ms(percentile(latencies, 50)), brief_p95_ms=ms(percentile(latencies, 95)),
            brief_max_ms=ms(max(latencies)),
            request_p50_ms=ms(percentile(transport.seconds, 50)),
            request_p95_ms=ms(percentile(transport.seconds, 95)),
            model_p50_ms=ms(percentile(model.delays, 50)),
            model_p95_ms=ms(percentile(model.delays, 95)),
            setup_s=round(setup_s, 2), ingest_s=round(ingest_s, 2),
            briefs_wall_s=round(briefs_wall_s, 2),
        )
    engine.dispose()
    return result


def check(result: Run) -> None:
    expected = STORIES * len(LANGUAGES)
    assert result.deliveries == STORIES * result.chats, result
    assert result.llm_calls == expected, f"{result.llm_calls} LLM calls, expected {expected}"
    assert result.usage_calls == expected and result.failures == 0, result
    assert result.briefs == expected and result.offline_briefs == 0, result


def table(results: list[Run]) -> str:
    rows = [
        ("chats", lambda r: f"{r.chats:,}"),
        ("stories x languages", lambda r: f"{r.stories} x {len(LANGUAGES)}"),
        ("deliveries enqueued", lambda r: f"{r.deliveries:,}"),
        ("LLM calls (server / usage)", lambda r: f"{r.llm_calls} / {r.usage_calls}"),
        ("naive calls (1 per delivery)", lambda r: f"{r.deliveries:,}"),
        ("calls saved", lambda r: f"{r.llm_calls} vs {r.deliveries:,} "
                                  f"({r.deliveries / r.llm_calls:,.0f}x fewer)"),
        ("failures / offline briefs", lambda r: f"{r.failures} / {r.offline_briefs}"),
        ("briefs written / rounds", lambda r: f"{r.briefs} / {r.rounds}"),
        ("tokens in per brief (mean)", lambda r: f"{r.tokens_in_mean:,.1f}"),
        ("tokens out per brief (mean)", lambda r: f"{r.tokens_out_mean:,.1f}"),
        ("tokens in / out (total)", lambda r: f"{r.tokens_in_total:,} / {r.tokens_out_total:,}"),
        ("brief latency p50 / p95 ms", lambda r: f"{r.brief_p50_ms:.0f} / {r.brief_p95_ms:.0f}"),
        ("brief latency max ms", lambda r: f"{r.brief_max_ms:.0f}"),
        ("LLM request p50 / p95 ms",
         lambda r: f"{r.request_p50_ms:.0f} / {r.request_p95_ms:.0f}"),
        ("simulated model p50 / p95 ms", lambda r: f"{r.model_p50_ms:.0f} / {r.model_p95_ms:.0f}"),
        ("setup s (chats, topics)", lambda r: f"{r.setup_s:.2f}"),
        ("ingest s (match + enqueue)", lambda r: f"{r.ingest_s:.2f}"),
        ("brief writing wall s", lambda r: f"{r.briefs_wall_s:.2f}"),
    ]
    width = max(len(name) for name, _ in rows)
    cells = [[fmt(r) for r in results] for _, fmt in rows]
    col = max(len(c) for row in cells for c in row)
    lines = [f"{name:<{width}}  " + "  ".join(f"{c:>{col}}" for c in row)
             for (name, _), row in zip(rows, cells, strict=True)]
    rule = "-" * len(lines[0])
    return "\n".join([rule, *lines, rule])


async def main() -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    drafts, by_title = make_stories(random.Random(SEED))
    # Load the language identifier now, as a running bot has long done, not inside a timing.
    probably_in("Loading the language identifier before anything is timed.", "en")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as workdir:
        results = [await run(count, drafts, by_title, Path(workdir)) for count in CHAT_COUNTS]
    total_s = time.perf_counter() - started
    for result in results:
        check(result)

    big = results[0]
    print(f"Brief benchmark: {STORIES} stories, languages {', '.join(LANGUAGES)}, "
          f"loopback LLM with {ms(MODEL_DELAY[0]):.0f}-{ms(MODEL_DELAY[1]):.0f} ms model time, "
          f"writer concurrency {CONCURRENCY}, SQLite")
    print(table(results))
    print("brief latency: wall clock of each BriefWriter.write call, including the wait for a "
          "concurrency slot (rounds start up to 20 briefs at once);")
    print("LLM request: HTTP round trip at the transport, loopback + simulated model time.")
    print(f"calls saved: {big.llm_calls} vs {big.deliveries:,} "
          f"({big.deliveries / big.llm_calls:,.0f}x fewer)")
    print(f"LLM calls are the same for {' and '.join(f'{r.chats:,}' for r in results)} chats: "
          f"{' = '.join(str(r.llm_calls) for r in results)} (stories x languages, <= 300)")
    print(f"total wall time: {total_s:.1f} s")
    return {
        "benchmark": "briefs", "stories": STORIES, "languages": list(LANGUAGES),
        "model_delay_ms": [ms(MODEL_DELAY[0]), ms(MODEL_DELAY[1])], "seed": SEED,
        "writer_concurrency": CONCURRENCY,
        "latency_definition": "brief: BriefWriter.write wall clock incl. concurrency-slot wait; "
                              "request: HTTP round trip incl. simulated model time",
        "calls_saved": {"llm_calls": big.llm_calls, "naive_calls": big.deliveries,
                        "ratio": round(big.deliveries / big.llm_calls, 1)},
        "total_wall_s": round(total_s, 2),
        "runs": [vars(result) for result in results],
    }


if __name__ == "__main__":
    figures = asyncio.run(main())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {RESULTS.relative_to(ROOT)}")
    print(json.dumps(figures, separators=(",", ":")))
