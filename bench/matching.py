"""Topic matching: the Aho-Corasick matcher against the naive loop over every subscription.

Run from the repository root:

    .venv/bin/python bench/matching.py                          # 100,000 subscriptions
    .venv/bin/python bench/matching.py --subscriptions 1000000 --naive-sample 10

`--subscriptions N` sets the largest size; the matcher is also timed at 1,000 and 10,000.
Per-item and build figures are CPU seconds of this process (time.process_time), which other
processes on a shared machine inflate far less than wall-clock time; change latencies are
wall-clock (they include the database).

Then the subscriptions go into a real database (a temporary SQLite file, or `--database-url`)
and the product's MatcherCache is timed as a bot process uses it: the full build at start-up
(seconds, and the peak growth of the process's resident memory while it runs), then
`--changes` committed subscription changes (add a topic, remove one, edit one's query), each
timed from its commit to the cache's `get()` returning a matcher that matches with it.

A synthetic but realistic workload (fixed seed): ~20,000 entity names in seven languages and
scripts (Latin with accents, Cyrillic, Chinese, Japanese, Arabic), 100,000 subscription queries
(single terms, `A OR B`, `"two words"`, `A -B`, `A B`) with Zipf-like popularity, and 10,000
items (headline + ~60 words of summary) of which a few per cent mention subscribed entities.

The baseline is the naive loop over every subscription's compiled regexes, for every item. Each
query is parsed and compiled once into a closure over its `re.Pattern.search` methods (the very
patterns `news.topics` uses, CJK terms as substring tests), and the item text is folded once per
item, so the baseline pays nothing but the per-subscription evaluation. (The pipeline before
`news.matching` was slower still: it folded the text again for every subscription.)

Evaluating 10,000 x 100,000 of those would take hours, so the naive loop is timed on a random
sample of 100 items and reported per item; the matcher runs on all 10,000 items, its build timed
apart (cold: the term cache is cleared first). On the sample, plus a few items known to mention
subscribed entities, both must give the very same subscriptions, or the run fails.

The per-item cost of the matcher is (mostly) the exact check of its candidates; `cand/item` shows
how many there are. Short names of spaced scripts (tickers, acronyms) are found by the automaton
inside longer words too ("ion" in "union"), and those false candidates grow with the number of
subscriptions.

Prints a table and writes the figures to bench/results/matching.json.

The semantic share (issue 23), also alone with `--semantic`: of the same 100,000 subscriptions,
every tenth is replaced by a topic followed by meaning (`~"…"@0.55`), and each item has an
embedding (EMBEDDING_DIMENSIONS = 128 random unit vectors, `--dims 256` for another size; 3 %
of items near a subscribed meaning). One item costs the keyword matcher over the 90,000
keyword topics plus its share of news.semantic.SemanticMatcher over the 10,000 semantic ones,
in batches of 512 items (as news.semantic_round matches one round's new stories), BLAS on one
thread as bot.py sets it. Meanings repeat as names do (Zipf over a vocabulary of 5,000); the
worst case, every meaning distinct, is timed too. The baseline is the naive loop: each
semantic subscription's dot product and threshold, per item, in numpy. This part is timed in
CPU time (time.process_time, the best of 3 passes), keyword and semantic alike, so that other
work on a shared machine counts less. Figures go to
bench/results/matching_semantic.json (another size: matching_semantic_<dims>.json).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

# As bot.py runs it: numpy's BLAS on one thread (set before numpy is first imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from sqlalchemy import Engine, insert  # noqa: E402
from sqlmodel import select  # noqa: E402

from news import topics as topics_module  # noqa: E402
from news.matcher import MatcherCache  # noqa: E402
from news.matching import Matcher, Topic, searchable  # noqa: E402
from news.topics import And, Node, Not, Or, Term, parse  # noqa: E402
from storage import subscriptions  # noqa: E402
from storage.db import make_engine, migrate, session_scope  # noqa: E402
from storage.models import Chat, Subscription  # noqa: E402

SEED = 20240611
N_ENTITIES = 20_000
N_SUBSCRIPTIONS = 100_000
N_ITEMS = 10_000
MENTION_RATE = 0.03  # share of items that mention subscribed entities on purpose
NAIVE_SAMPLE = 100  # items the naive loop is timed on
MATCHER_PASSES = 3  # passes of the matcher over all items; the median one is reported
EXTRA_CHECKED = 20  # items with mentions added to the correctness check (not timed)
SIZES: tuple[int, ...] = (1_000, 10_000, 100_000)
RESULTS = ROOT / "bench" / "results" / "matching.json"

# --- vocabulary ---------------------------------------------------------------------------------

REAL_NAMES = [
    "SoftBank", "Nvidia", "Apple", "Microsoft", "Toyota", "Siemens", "Société Générale",
    "BNP Paribas", "Volkswagen", "Deutsche Bank", "Gazprom", "Nestlé", "L'Oréal", "Airbus",
    "Renault", "Thyssenkrupp", "Zürich Insurance", "Müller", "TSMC", "Samsung", "OpenAI",
    "Hawks", "Aramco", "Alibaba", "Tencent", "Huawei", "Sony", "Nintendo", "Rosneft", "Lukoil",
    "Сбербанк", "Газпром", "Яндекс", "Роснефть", "Лукойл", "Аэрофлот", "Норникель",
    "软银", "腾讯", "阿里巴巴", "华为", "比亚迪", "小米", "台积电", "宁德时代",
    "ソフトバンク", "トヨタ", "ソニー", "任天堂", "パナソニック", "日立製作所",
    "أرامكو", "سابك", "الراجحي", "اتصالات", "طيران الإمارات",
]

FILLER = {
    "en": (
        "the of and to in a is that for on with as was by at from it said its has have are "
        "be will new year market company shares government report after more than first "
        "people would about economy growth prices quarter profit sales deal plan analysts "
        "investors expected rise fall week month billion million percent stock bank rate "
        "policy central inflation data record share price chief executive board talks trade "
        "tariffs energy oil gas technology chips software cloud services customers revenue "
        "forecast outlook strong weak results earnings dividend merger acquisition bid offer "
        "regulator court ruling law minister election vote parliament country city region "
        "workers union strike factory plant production supply demand exports imports"
    ),
    "fr": (
        "le la les de des du un une et est en que qui dans pour sur avec par au aux plus pas "
        "été être déjà très après année marché société entreprise gouvernement président "
        "économie croissance prix trimestre bénéfice ventes accord plan analystes investisseurs "
        "hausse baisse semaine mois milliard million pour cent action banque taux politique "
        "centrale inflation données résultats prévisions développement énergie pétrole "
        "technologie logiciel clients chiffre affaires dividende fusion acquisition offre "
        "régulateur tribunal décision loi ministre élection vote assemblée pays ville région "
        "salariés syndicat grève usine production demande exportations importations deçà là où"
    ),
    "de": (
        "der die das und in den von zu mit sich des auf für ist im dem nicht ein eine als auch "
        "es an werden aus er hat dass sie nach wird bei einer um am sind noch wie über "
        "Wirtschaft Markt Unternehmen Regierung Straße Größe Bürger Ergebnis Aktien Börse "
        "Quartal Gewinn Umsatz Prognose Anleger Analysten Anstieg Rückgang Woche Monat "
        "Milliarden Millionen Prozent Zinsen Notenbank Inflation Daten Vorstand Gespräche "
        "Handel Zölle Energie Öl Gas Technologie Software Kunden Dividende Übernahme Angebot "
        "Gericht Urteil Gesetz Minister Wahl Bundestag Land Stadt Gewerkschaft Streik Werk "
        "Produktion Nachfrage Exporte Importe müssen können größer früher später"
    ),
    "ru": (
        "и в не на что с по как это из за к от о для у так же все было его но она они мы "
        "экономика рынок компания правительство акции прибыль квартал банк рост снижение "
        "инвестиции заявил году году неделе месяц миллиардов миллионов процентов ставка "
        "политика инфляция данные выручка прогноз аналитики инвесторы сделка слияние "
        "поглощение суд решение закон министр выборы голосование страна город регион "
        "работники профсоюз забастовка завод производство спрос экспорт импорт нефть газ "
        "энергетика технологии программное обеспечение клиенты дивиденды совет директоров"
    ),
    "zh": (
        "经济 市场 公司 政府 股票 利润 季度 增长 下降 投资 宣布 今年 技术 发展 表示 "
        "国家 城市 地区 工人 工厂 生产 需求 出口 进口 石油 天然气 能源 芯片 软件 客户 "
        "收入 预测 分析师 投资者 交易 合并 收购 法院 法律 部长 选举 通胀 数据 利率 政策 "
        "央行 价格 销售 计划 报告 亿元 百分之 上涨 下跌 本周 本月 董事会 谈判 贸易 关税"
    ),
    "ja": (
        "経済 市場 会社 政府 株式 利益 四半期 成長 減少 投資 発表 今年 技術 開発 国 都市 "
        "地域 労働者 工場 生産 需要 輸出 輸入 石油 ガス エネルギー 半導体 ソフトウェア 顧客 "
        "売上 予想 アナリスト 投資家 取引 合併 買収 裁判所 法律 大臣 選挙 物価 データ 金利 "
        "政策 日銀 価格 販売 計画 報告 億円 パーセント 上昇 下落 今週 今月 取締役会 交渉 "
        "貿易 関税 は が を に の で と した します されました によると について"
    ),
    "ar": (
        "في من على إلى عن مع أن هذا التي الذي كان قال اقتصاد سوق شركة حكومة أسهم أرباح "
        "ربع نمو انخفاض استثمار أعلن العام تقنية تطوير دولة مدينة منطقة عمال مصنع إنتاج "
        "طلب صادرات واردات نفط غاز طاقة رقائق برمجيات عملاء إيرادات توقعات محللون "
        "مستثمرون صفقة اندماج استحواذ محكمة قانون وزير انتخابات تضخم بيانات فائدة سياسة "
        "البنك المركزي أسعار مبيعات خطة تقرير مليار مليون بالمئة ارتفاع هبوط الأسبوع الشهر"
    ),
}
LANGUAGE_WEIGHTS = {"en": 40, "fr": 12, "de": 12, "ru": 12, "zh": 10, "ja": 8, "ar": 6}
UNSPACED = {"zh", "ja"}  # scripts written without spaces between words

def _words(text: str) -> list[str]:
    return text.split()


LATIN_SYLLABLES = _words(
    "ka ri to na mo ve la sen dor tek fin ar bel co tra vis gen nor sol mar lux quan tel zen "
    "pro val ne xa ly ber gal hen ost wer bau ché fé ré mü ö ü ber stein berg feld haus ville "
    "mont ric tal ion ex or in al um ix ta da pe lo ru si fa go bo ki za vo"
)
CYRILLIC_SYLLABLES = _words(
    "ко ра ми не ст ба ло ви та ну де ро га сек тор пром нефть бан ком инвест энер гео тех "
    "ал ма зо ру си ка ле на во да ур ал сиб мос тел"
)
HAN = (
    "华电科技银行通信中国能源汽车航空金融证券集团控股医药生物新材料光伏智能网络云数据半导体"
    "长城东方南方北方西部天安海宁德恒瑞美丽星辰宏远泰和盛世隆昌"
)
KATAKANA = (
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン"
    "ガギグゲゴザジズゼゾダデドバビブベボパピプペポ"
)
ARABIC_LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
SUFFIXES = ("Group", "AG", "SA", "Corp", "Holdings", "Bank", "Motors", "Energie", "Labs")


def generate_entities(rng: random.Random, filler_folded: set[str]) -> list[str]:
    """~N_ENTITIES distinct names; their folded forms differ from each other and from filler."""
    seen: set[str] = set()
    names: list[str] = []

    def add(name: str) -> None:
        key = searchable(name)
        if key and key not in seen and key not in filler_folded:
            seen.add(key)
            names.append(name)

    for name in REAL_NAMES:
        add(name)
    scripts = ("latin",) * 55 + ("cyrillic",) * 12 + ("han",) * 12 + ("kana",) * 10 + (
        "arabic",
    ) * 11
    while len(names) < N_ENTITIES:
        script = rng.choice(scripts)
        if script == "latin":
            word = "".join(rng.choices(LATIN_SYLLABLES, k=rng.randint(2, 4))).capitalize()
            roll = rng.random()
            if roll < 0.12:
                word = f"{word} {rng.choice(SUFFIXES)}"
            elif roll < 0.18:
                word = word.upper()[: rng.randint(3, 5)]  # tickers and acronyms
        elif script == "cyrillic":
            word = "".join(rng.choices(CYRILLIC_SYLLABLES, k=rng.randint(2, 3))).capitalize()
        elif script == "han":
            word = "".join(rng.choices(HAN, k=rng.randint(3, 4)))
        elif script == "kana":
            word = "".join(rng.choices(KATAKANA, k=rng.randint(3, 6)))
        else:
            word = "".join(rng.choices(ARABIC_LETTERS, k=rng.randint(4, 7)))
        add(word)
    return names


def variant(rng: random.Random, name: str) -> str:
    """How a user or a headline writes a name: as is, lower, upper, or without accents."""
    roll = rng.random()
    if roll < 0.55:
        return name
    if roll < 0.80:
        return name.lower()
    if roll < 0.90:
        return name.upper()
    return topics_module.fold(name)  # accents dropped, matched all the same


# --- subscriptions and items --------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    topics: list[Topic]
    items: list[str]
    mentioning: list[int]  # indices of items that mention subscribed entities on purpose
    shapes: dict[str, int]


def build_workload() -> Workload:
    rng = random.Random(SEED)
    filler = {lang: words.split() for lang, words in FILLER.items()}
    filler_folded = {searchable(word) for words in filler.values() for word in words}
    entities = generate_entities(rng, filler_folded)
    # Zipf-like popularity (s = 0.6): the most followed name has a few hundred subscriptions.
    order = entities[:]
    rng.shuffle(order)
    real = set(REAL_NAMES)
    order.sort(key=lambda name: name not in real)  # real names are the popular ones
    weights = [1 / (rank + 1) ** 0.6 for rank in range(len(order))]
    cumulative: list[float] = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)

    def popular() -> str:
        return variant(rng, rng.choices(order, cum_weights=cumulative)[0])

    all_words = [word for words in filler.values() for word in words]
    shapes = {"single": 0, "or": 0, "phrase": 0, "not": 0, "and": 0}
    queries: list[tuple[str, list[str]]] = []  # query, and a text that satisfies it
    for _ in range(N_SUBSCRIPTIONS):
        roll = rng.random()
        if roll < 0.45:
            shape, name = "single", popular()
            query, mention = (f'"{name}"' if " " in name else name), [name]
        elif roll < 0.65:
            shape, first, second = "or", popular(), popular()
            query = f"{_quoted(first)} OR {_quoted(second)}"
            mention = [rng.choice((first, second))]
        elif roll < 0.80:
            shape = "phrase"
            words = [popular(), rng.choice(all_words)]
            rng.shuffle(words)
            phrase = " ".join(words)
            query, mention = f'"{phrase}"', [phrase]
        elif roll < 0.90:
            shape, first, second = "not", popular(), popular()
            query, mention = f"{_quoted(first)} -{_quoted(second)}", [first]
            if rng.random() < 0.3:
                mention.append(second)  # the exclusion fires
        else:
            shape, first, second = "and", popular(), popular()
            query, mention = f"{_quoted(first)} {_quoted(second)}", [first, second]
        shapes[shape] += 1
        queries.append((query, mention))
    topics = [
        Topic(id=index + 1, chat_id=1_000_000 + rng.randrange(60_000), thread_id=0, query=query)
        for index, (query, _) in enumerate(queries)
    ]

    languages = list(LANGUAGE_WEIGHTS)
    language_weights = list(LANGUAGE_WEIGHTS.values())
    items: list[str] = []
    mentioning: list[int] = []
    for index in range(N_ITEMS):
        lang = rng.choices(languages, weights=language_weights)[0]
        words = filler[lang]
        headline = rng.choices(words, k=rng.randint(6, 12))
        summary = rng.choices(words, k=rng.randint(50, 70))
        if rng.random() < MENTION_RATE:
            mentioning.append(index)
            for _ in range(rng.randint(1, 3)):
                for text in rng.choice(queries)[1]:
                    target = headline if rng.random() < 0.5 else summary
                    target.insert(rng.randrange(len(target) + 1), text)
        joiner = "" if lang in UNSPACED else " "
        sentences = [joiner.join(summary[i : i + 12]) for i in range(0, len(summary), 12)]
        stop = "。" if lang in UNSPACED else ". "
        items.append(joiner.join(headline) + "\n\n" + stop.join(sentences) + stop.strip())
    return Workload(topics=topics, items=items, mentioning=mentioning, shapes=shapes)


def _quoted(name: str) -> str:
    return f'"{name}"' if " " in name else name


# --- the naive loop -----------------------------------------------------------------------------

Check = Callable[[str], object]  # truthy when the folded text satisfies the (sub)query


def compile_query(node: Node) -> Check:
    """One subscription as closures over its compiled regexes, evaluated on folded text."""
    if isinstance(node, Term):
        needle, pattern = topics_module._compiled_term(node.text)
        if pattern is None:
            return lambda folded: needle in folded
        return pattern.search
    if isinstance(node, Not):
        inner = compile_query(node.node)
        return lambda folded: not inner(folded)
    parts = tuple(compile_query(child) for child in node.nodes)
    if isinstance(node, And):
        if len(parts) == 2:
            first, second = parts
            return lambda folded: first(folded) and second(folded)
        return lambda folded: all(part(folded) for part in parts)
    assert isinstance(node, Or)
    if len(parts) == 2:
        first, second = parts
        return lambda folded: first(folded) or second(folded)
    return lambda folded: any(part(folded) for part in parts)


def naive_match(checks: Sequence[Check], text: str) -> list[int]:
    folded = searchable(text)
    return [index for index, check in enumerate(checks) if check(folded)]


# --- measuring ----------------------------------------------------------------------------------


def rss_bytes() -> int:
    """Current resident set size (Linux), or 0 where /proc is not there."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def peak_rss_bytes() -> int:
    """This process's resident high-water mark (Linux VmHWM), reset when it exec'd. Not
    getrusage's ru_maxrss: Linux carries that over from the parent at fork and exec, so a
    start-up build in a child of this process (measure_changes) reported this process's own
    half-gigabyte workload as its peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def time_matcher(matcher: Matcher, items: Sequence[str]) -> tuple[float, list[float], int]:
    """Total seconds, per-item seconds, and the number of (item, subscription) matches."""
    per_item: list[float] = []
    hits = 0
    clock = time.process_time
    for text in items:
        start = clock()
        found = matcher.match_ids(text)  # what an ingest asks (news.matcher.match)
        per_item.append(clock() - start)
        hits += len(found)
    return sum(per_item), per_item, hits


def time_naive(checks: Sequence[Check], items: Sequence[str]) -> tuple[float, list[list[int]]]:
    results: list[list[int]] = []
    start = time.process_time()
    for text in items:
        results.append(naive_match(checks, text))
    return time.process_time() - start, results


def build_matcher(topics: Sequence[Topic]) -> tuple[Matcher, float]:
    topics_module._compiled_term.cache_clear()  # a cold build: parse and compile every query
    topics_module._needle.cache_clear()
    start = time.process_time()
    matcher = Matcher(topics)
    return matcher, time.process_time() - start


def same_as_naive(matcher: Matcher, text: str, expected: list[int]) -> int:
    """The number of matches, after checking they are exactly the naive loop's."""
    got = [topic.id for topic in matcher.match(text)]
    if got != [index + 1 for index in expected]:  # topic ids are 1, 2, ... in order
        raise SystemExit(f"matcher and naive loop differ on: {text[:80]!r}")
    return len(got)


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the change cost, through the database -----------------------------------------------------


def load_database(engine: Engine, topics: Sequence[Topic]) -> list[Topic]:
    """The subscriptions as rows (one per chat and query, as the schema wants); those stored."""
    seen: set[tuple[int, str]] = set()
    stored = []
    for topic in topics:
        if (topic.chat_id, topic.query) not in seen:
            seen.add((topic.chat_id, topic.query))
            stored.append(topic)
    chat = Chat(id=0, type="private", title=None, language="en").model_dump()
    row = Subscription(id=0, chat_id=0, query="").model_dump()
    batch = 50_000
    chat_ids = sorted({t.chat_id for t in stored})
    for start in range(0, len(chat_ids), batch):
        with engine.begin() as connection:  # Core executemany: the ORM's bulk path is slower
            connection.execute(insert(Chat.__table__),  # type: ignore[attr-defined]
                               [chat | {"id": id} for id in chat_ids[start:start + batch]])
    for start in range(0, len(stored), batch):
        with engine.begin() as connection:
            connection.execute(insert(Subscription.__table__), [  # type: ignore[attr-defined]
                row | {"id": t.id, "chat_id": t.chat_id, "query": t.query}
                for t in stored[start:start + batch]])
    return stored


def startup_build(url: str) -> None:
    """In a process that has only imported: what building the cache from the database costs."""
    engine = make_engine(url)
    with session_scope(engine) as session:  # connected, mappers configured: not the build's
        subscriptions.revision(session=session)
        list(session.exec(select(Subscription).limit(1)))
    gc.collect()
    before = rss_bytes()
    start, wall = time.process_time(), time.perf_counter()
    cache = MatcherCache()
    with session_scope(engine) as session:
        cache.get(session)
    cpu_s, wall_s = time.process_time() - start, time.perf_counter() - wall
    peak = peak_rss_bytes()
    print(json.dumps({"cpu_s": cpu_s, "wall_s": wall_s, "subscriptions": cache.matcher.size,
                      "peak_rss_mib": (peak - before) / 2**20,
                      "kept_rss_mib": (rss_bytes() - before) / 2**20}))


def measure_changes(topics: Sequence[Topic], n_changes: int, url: str) -> dict[str, object]:
    """Start-up build and committed-change-to-matcher latency of the product's MatcherCache."""
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(url or f"sqlite:///{folder}/bench.db")
        migrate(engine)
        start = time.perf_counter()
        stored = load_database(engine, topics)
        loaded_s = time.perf_counter() - start
        print(f"  database: {len(stored):,} subscriptions stored in {loaded_s:.0f} s "
              f"({engine.dialect.name})")
        del topics
        gc.collect()
        engine.dispose()  # its connections closed (SQLite: the log checkpointed), as at a start
        startup = json.loads(subprocess.run(
            [sys.executable, __file__, "--startup-build", str(engine.url.render_as_string(
                hide_password=False))], check=True, capture_output=True, text=True).stdout)
        build_s, build_wall_s = startup["cpu_s"], startup["wall_s"]
        peak_mib, built_mib = startup["peak_rss_mib"], startup["kept_rss_mib"]
        print(f"  start-up build through MatcherCache (a process of its own): {build_s:.1f} s CPU "
              f"({build_wall_s:.1f} s wall), peak +{peak_mib:.0f} MiB RSS (+{built_mib:.0f} MiB "
              "kept)")
        cache = MatcherCache()
        with session_scope(engine) as session:
            cache.get(session)

        idle: list[float] = []
        for _ in range(50):
            start = time.perf_counter()
            with session_scope(engine) as session:
                cache.get(session)
            idle.append(time.perf_counter() - start)

        rng = random.Random(SEED + 2)
        live = {t.id: t for t in rng.sample(stored, min(len(stored), 3 * n_changes))}
        popular = [t.query for t in stored[:1000]]
        latency: list[float] = []
        cpu: list[float] = []
        kinds: dict[str, int] = {"add": 0, "remove": 0, "edit": 0}
        for n in range(n_changes):
            kind = ("add", "remove", "edit")[n % 3]
            new_name = f"Zq{n}xv"
            query = new_name if rng.random() < 0.5 else rng.choice(popular)
            with session_scope(engine) as session:
                if kind == "add":
                    chat = rng.choice(stored).chat_id
                    row = subscriptions.add(session=session, chat_id=chat, query=query)
                    changed = row.id if row is not None else None
                else:
                    victim = live.pop(rng.choice(list(live)))
                    changed = victim.id
                    found = subscriptions.get(session=session, subscription_id=victim.id)
                    assert found is not None
                    if kind == "remove":
                        subscriptions.delete(session=session, subscription=found)
                    else:
                        if not subscriptions.change_query(session=session, subscription=found,
                                                          query=query):
                            changed = None
            start, used = time.perf_counter(), time.process_time()  # committed
            with session_scope(engine) as session:
                matcher = cache.get(session)
            latency.append(time.perf_counter() - start)
            cpu.append(time.process_time() - used)
            kinds[kind] += 1
            if changed is None:
                continue
            now = matcher.topic(changed)
            wanted = kind != "remove"
            if wanted != (now is not None and now.query == query) or (
                    query == new_name and wanted != any(
                        t.id == changed for t in matcher.match(f"News about {query} today"))):
                raise SystemExit(f"change {n} ({kind} {query!r}) not in the matcher")
        fresh_terms = len(cache.matcher.fresh)
        start = time.perf_counter()
        cache.matcher.install(cache.matcher.compaction()())
        compaction_s = time.perf_counter() - start
        engine.dispose()
    ms = [value * 1e3 for value in latency]
    cpu_ms = [value * 1e3 for value in cpu]
    result: dict[str, object] = {
        "database": engine.dialect.name,
        "subscriptions_stored": len(stored),
        "load_s": loaded_s,
        "startup_build_cpu_s": build_s,
        "startup_build_wall_s": build_wall_s,
        "startup_build_peak_rss_mib": peak_mib,
        "startup_build_kept_rss_mib": built_mib,
        "unchanged_check_median_ms": quantile(idle, 0.5) * 1e3,
        "changes": kinds,
        "change_to_matcher_median_ms": quantile(ms, 0.5),
        "change_to_matcher_p99_ms": quantile(ms, 0.99),
        "change_to_matcher_max_ms": max(ms),
        "change_to_matcher_cpu_median_ms": quantile(cpu_ms, 0.5),
        "change_to_matcher_cpu_p99_ms": quantile(cpu_ms, 0.99),
        "fresh_terms_after_changes": fresh_terms,
        "compaction_s": compaction_s,
    }
    print(f"  {n_changes} committed changes -> matcher: median "
          f"{result['change_to_matcher_median_ms']:.2f} ms, "
          f"p99 {result['change_to_matcher_p99_ms']:.2f} ms (CPU: median "
          f"{result['change_to_matcher_cpu_median_ms']:.2f} ms, "
          f"p99 {result['change_to_matcher_cpu_p99_ms']:.2f} ms); nothing changed: "
          f"{result['unchanged_check_median_ms']:.2f} ms; compaction (off the ingest "
          f"path) {compaction_s:.1f} s")
    return result


def main() -> None:
    global N_SUBSCRIPTIONS, NAIVE_SAMPLE, SIZES
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=N_SUBSCRIPTIONS)
    parser.add_argument("--naive-sample", type=int, default=NAIVE_SAMPLE,
                        help="items the naive loop is timed on (it is slow at a million)")
    parser.add_argument("--changes", type=int, default=300,
                        help="committed subscription changes timed through MatcherCache")
    parser.add_argument("--database-url", default="",
                        help="where the change cost is measured (default: a temporary SQLite)")
    parser.add_argument("--only-changes", action="store_true",
                        help="measure only the start-up build and the change cost")
    parser.add_argument("--startup-build", default="", help=argparse.SUPPRESS)
    parser.add_argument("--dims", type=int, default=DIMS, help="embedding size (semantic share)")
    args = parser.parse_args()
    if args.startup_build:
        startup_build(args.startup_build)
        return
    N_SUBSCRIPTIONS, NAIVE_SAMPLE = args.subscriptions, args.naive_sample
    SIZES = tuple(sorted({size for size in (1_000, 10_000) if size < N_SUBSCRIPTIONS}
                         | {N_SUBSCRIPTIONS}))
    started = time.perf_counter()
    if args.only_changes:  # the start-up build and change cost alone, without the table
        changes = measure_changes(build_workload().topics, args.changes, args.database_url)
        print(json.dumps(changes, indent=2))
        return
    workload = build_workload()
    generated = time.perf_counter() - started
    topics, items = workload.topics, workload.items
    rng = random.Random(SEED + 1)
    sample = rng.sample(range(N_ITEMS), NAIVE_SAMPLE)
    extra = [i for i in workload.mentioning if i not in set(sample)][:EXTRA_CHECKED]
    sample_items = [items[i] for i in sample]
    print(
        f"workload: {len(topics):,} subscriptions {workload.shapes}, {len(items):,} items "
        f"({len(workload.mentioning)} mention subscribed names), generated in {generated:.1f} s"
    )

    gc.collect()
    gc.freeze()  # the workload is long-lived; keep the collector out of the timings
    rows: list[dict[str, float | int]] = []
    matcher_100k: Matcher | None = None
    checks_100k: list[Check] = []
    for size in SIZES:
        subset = topics[:size]
        rss_before = rss_bytes()
        matcher, build_s = build_matcher(subset)
        rss_after = rss_bytes()
        time_matcher(matcher, items[:200])  # warm-up
        passes = sorted(
            (time_matcher(matcher, items) for _ in range(MATCHER_PASSES)), key=lambda p: p[0]
        )
        total_s, per_item, hits = passes[len(passes) // 2]  # the median pass
        candidates = sum(len(matcher.candidates(searchable(text))) for text in items)
        sample_s, _, _ = time_matcher(matcher, sample_items)
        checks = [compile_query(parse(topic.query)) for topic in subset]
        naive_s, naive_results = time_naive(checks, sample_items)
        row_hits = []
        for text, expected in zip(sample_items, naive_results, strict=True):
            row_hits.append(same_as_naive(matcher, text, expected))
        row: dict[str, float | int] = {
            "subscriptions": size,
            "distinct_needles": len(matcher.automaton or ()),
            "build_s": build_s,
            "build_rss_mib": (rss_after - rss_before) / 2**20,
            "matcher_items": len(items),
            "matcher_us_per_item": total_s / len(items) * 1e6,
            "matcher_p50_us": quantile(per_item, 0.50) * 1e6,
            "matcher_p99_us": quantile(per_item, 0.99) * 1e6,
            "matcher_us_per_item_on_sample": sample_s / len(sample_items) * 1e6,
            "candidates_per_item": candidates / len(items),
            "matches_per_item": hits / len(items),
            "naive_items": len(sample_items),
            "naive_us_per_item": naive_s / len(sample_items) * 1e6,
        }
        row["speedup"] = row["naive_us_per_item"] / row["matcher_us_per_item"]
        row["speedup_on_sample"] = (
            row["naive_us_per_item"] / row["matcher_us_per_item_on_sample"]
        )
        rows.append(row)
        print(
            f"  {size:>7,} subscriptions: build {build_s:.2f} s, matcher "
            f"{row['matcher_us_per_item']:.1f} µs/item, naive {row['naive_us_per_item']:,.0f} "
            f"µs/item, x{row['speedup']:,.0f}"
        )
        if size == SIZES[-1]:
            matcher_100k, checks_100k = matcher, checks

    assert matcher_100k is not None
    # Correctness beyond the random sample (checked above): items known to mention names.
    checked_hits = sum(row_hits)
    for index in extra:
        expected = naive_match(checks_100k, items[index])
        checked_hits += same_as_naive(matcher_100k, items[index], expected)
    checked = len(sample) + len(extra)
    print(f"  correctness: {checked} items, {checked_hits} matches, identical to the naive loop")

    # Memory of the built matcher at 100,000 subscriptions, from a separate traced build.
    assert matcher_100k.automaton is not None
    automaton_stats = matcher_100k.automaton.get_stats()
    del matcher_100k, checks_100k, matcher, checks
    gc.collect()
    topics_module._compiled_term.cache_clear()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    traced = Matcher(topics[:100_000])
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    memory = {
        "traced_retained_mib": (after - before) / 2**20,
        "traced_peak_during_build_mib": (peak - before) / 2**20,
        "automaton_total_size_mib": automaton_stats["total_size"] / 2**20,
        "automaton_nodes": automaton_stats["nodes_count"],
        "process_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    del traced

    top = rows[-1]
    print()
    header = (
        f"{'subs':>8} {'needles':>8} {'build s':>8} {'cand/item':>9} {'matcher µs':>11} "
        f"{'p99 µs':>8} "
        f"{'naive µs':>11} {'speed-up':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['subscriptions']:>8,} {row['distinct_needles']:>8,} {row['build_s']:>8.2f} "
            f"{row['candidates_per_item']:>9.1f} {row['matcher_us_per_item']:>11.1f} "
            f"{row['matcher_p99_us']:>8.0f} "
            f"{row['naive_us_per_item']:>11,.0f} {row['speedup']:>8,.0f}x"
        )
    print()
    print(
        f"at {top['subscriptions']:,} subscriptions: matcher {top['matcher_us_per_item']:.1f} µs "
        f"per item over {N_ITEMS:,} items (median of {MATCHER_PASSES} passes), naive loop "
        f"{top['naive_us_per_item']:,.0f} µs per item over {NAIVE_SAMPLE} sampled items -> "
        f"{top['speedup']:,.0f}x "
        f"({top['speedup_on_sample']:,.0f}x on the sampled items alone)"
    )
    print(
        f"matcher memory: {memory['traced_retained_mib']:.1f} MiB retained (tracemalloc, with "
        f"compiled regexes), automaton {memory['automaton_total_size_mib']:.1f} MiB, "
        f"build RSS +{top['build_rss_mib']:.0f} MiB; process max RSS "
        f"{memory['process_max_rss_mib']:.0f} MiB"
    )
    changes = measure_changes(topics, args.changes, args.database_url) if args.changes else {}
    semantic = semantic_share(workload)
    elapsed = time.perf_counter() - started
    print(f"total {elapsed:.0f} s")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "command": "cd /work/main && .venv/bin/python " + " ".join(sys.argv),
                "seed": SEED,
                "python": sys.version.split()[0],
                "pyahocorasick": package_version("pyahocorasick"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                "workload": {
                    "subscriptions": len(topics),
                    "items": len(items),
                    "entities": N_ENTITIES,
                    "query_shapes": workload.shapes,
                    "items_mentioning_subscribed_names": len(workload.mentioning),
                    "naive_sample_items": NAIVE_SAMPLE,
                    "items_checked_against_naive": checked,
                },
                "baseline": (
                    "for every item, every subscription's query evaluated through closures over "
                    "its precompiled re patterns (text folded once per item)"
                ),
                "sizes": rows,
                "speedup_at_100k": top["speedup"],
                "memory_at_100k": memory,
                "changes_through_the_database": changes,
                "semantic_share": semantic,
                "total_s": elapsed,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


# --- the semantic share (issue 23) ----------------------------------------------------------

SEMANTIC_EVERY = 10  # every tenth subscription follows a meaning
DIMS = int(sys.argv[sys.argv.index("--dims") + 1]) if "--dims" in sys.argv else 128
MEANINGS = 5_000
BATCH = 512  # the stories one round matches at once at most (news.semantic_round.PER_ROUND)
SEMANTIC_RESULTS = ROOT / "bench" / "results" / (
    "matching_semantic.json" if DIMS == 128 else f"matching_semantic_{DIMS}.json")


def _semantic_topics(topics: Sequence[Topic], distinct: bool, rng: random.Random
                     ) -> tuple[list[Topic], list[tuple[int, str]], dict[str, Any]]:
    """The keyword topics kept, the semantic ones as (id, query), and the meanings' vectors."""
    import numpy as np

    from news.semantic import meaning_key, normalized

    keyword: list[Topic] = []
    semantic: list[tuple[int, str]] = []
    weights = [1 / (rank + 1) ** 0.6 for rank in range(MEANINGS)]
    for topic in topics:
        if topic.id % SEMANTIC_EVERY:
            keyword.append(topic)
            continue
        number = topic.id if distinct else rng.choices(range(MEANINGS), weights=weights)[0]
        threshold = rng.choice((0.45, 0.5, 0.55, 0.6, 0.65))
        semantic.append((topic.id, f'~"meaning {number}"@{threshold:.2f}'
                         + (" -crypto" if topic.id % 7 == 0 else "")))
    keys = sorted({meaning_key(query.split('"')[1]) for _, query in semantic})
    generator = np.random.default_rng(SEED)
    matrix = normalized(generator.standard_normal((len(keys), DIMS)).astype(np.float32))
    return keyword, semantic, dict(zip(keys, matrix, strict=True))


def semantic_share(workload: Workload) -> dict[str, Any]:
    import numpy as np

    from news.semantic import SemanticMatcher, normalized, parse_semantic

    rng = random.Random(SEED + 2)
    generator = np.random.default_rng(SEED + 3)
    items = workload.items
    report: dict[str, Any] = {"subscriptions": len(workload.topics), "items": len(items),
                              "dims": DIMS, "batch": BATCH}
    keyword, semantic, vectors = _semantic_topics(workload.topics, False, rng)
    started = time.process_time()
    matcher = Matcher(keyword)
    report["keyword_build_s"] = time.process_time() - started
    keys = list(vectors)
    stories = generator.standard_normal((len(items), DIMS)).astype(np.float32)
    for index in range(0, len(items), 33):  # 3 %: near a subscribed meaning
        stories[index] = vectors[rng.choice(keys)] * 6 + stories[index] / 16
    stories = normalized(stories)
    time_matcher(matcher, items[:200])  # warm-up
    keyword_runs = []
    for _ in range(MATCHER_PASSES):
        began = time.process_time()
        for text in items:
            matcher.match(text)
        keyword_runs.append(time.process_time() - began)
    keyword_s = min(keyword_runs)
    report["keyword_topics"] = len(keyword)
    report["keyword_us_per_item"] = keyword_s / len(items) * 1e6
    for label, distinct in (("zipf", False), ("distinct", True)):
        if distinct:
            _, semantic, vectors = _semantic_topics(workload.topics, True, rng)
        started = time.process_time()
        meaning = SemanticMatcher(semantic, vectors)
        build_s = time.process_time() - started
        meaning.match(stories[:BATCH], items[:BATCH])  # warm-up
        runs = []
        hits = 0
        for _ in range(MATCHER_PASSES):
            began = time.process_time()
            hits = 0
            for start in range(0, len(items), BATCH):
                found = meaning.match(stories[start:start + BATCH], items[start:start + BATCH])
                hits += sum(len(one) for one in found)
            runs.append(time.process_time() - began)
        semantic_s = min(runs)
        # the naive loop: every semantic subscription's own vector and threshold, per item
        own = np.stack([vectors[parse_semantic(query).key] for _, query in semantic])
        limits = np.array([parse_semantic(query).threshold for _, query in semantic])
        sample = stories[:NAIVE_SAMPLE]
        began = time.process_time()
        for story in sample:
            for row, limit in zip(own, limits, strict=True):
                if float(row @ story) >= limit:
                    pass
        naive_us = (time.process_time() - began) / len(sample) * 1e6
        row = {
            "semantic_topics": len(semantic), "distinct_meanings": len(meaning.keys),
            "build_s": build_s, "semantic_us_per_item": semantic_s / len(items) * 1e6,
            "matches_per_item": hits / len(items), "naive_us_per_item": naive_us,
        }
        row["total_us_per_item"] = report["keyword_us_per_item"] + row["semantic_us_per_item"]
        row["speedup_vs_naive"] = naive_us / row["semantic_us_per_item"]
        report[label] = row
        print(f"  semantic share ({label}): {row['semantic_topics']:,} topics, "
              f"{row['distinct_meanings']:,} meanings: {row['semantic_us_per_item']:.1f} µs/item "
              f"(naive {naive_us:,.0f} µs, x{row['speedup_vs_naive']:,.0f}); with the keyword "
              f"matcher over {len(keyword):,} topics ({report['keyword_us_per_item']:.1f} µs): "
              f"{row['total_us_per_item']:.1f} µs/item")
    return report


def semantic_main() -> None:
    import numpy as np

    started = time.perf_counter()
    workload = build_workload()
    gc.collect()
    gc.freeze()
    report = semantic_share(workload)
    report["command"] = "cd /work/main && .venv/bin/python bench/matching.py --semantic"
    report["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    report["numpy"] = np.__version__
    report["total_s"] = time.perf_counter() - started
    SEMANTIC_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    SEMANTIC_RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {SEMANTIC_RESULTS.relative_to(ROOT)}")


if __name__ == "__main__" and "--semantic" in sys.argv:
    semantic_main()
elif __name__ == "__main__":
    main()
