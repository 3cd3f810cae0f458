"""The LLM emulator's embeddings: a hashed bag of *concepts*, so that texts about one subject
are near each other even when they share no word, in several languages.

Each phrase below stands for its concept ('data center', 'server farm' and 'hyperscale' are
all `compute`); a text's vector is the sum of a hashed direction per concept it names (weight
1) and per other word (weight WORD_WEIGHT), normalized. That is enough for tests to tell a
story on the subject from one off it; a real model does the same from what it learned, and
bench/semantic_pairs.py measures one against the other on a labelled table.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata

WORD_WEIGHT = 0.3
STOPWORDS = frozenset(
    "a an and are as at be by for from has have in into is it its of on or the to was were "
    "will with new after over more than this that der die das und ein eine im in mit von zu "
    "für le la les des du un une et en pour sur au aux el los las del y con por para se "
    "и в на с по за".split())

CONCEPTS: dict[str, tuple[str, ...]] = {
    "compute": ("data center", "data centre", "datacenter", "data centers", "data centres",
                "server farm", "server farms", "hyperscale", "hyperscaler", "hyperscalers",
                "gpu cluster", "gpu clusters", "compute capacity", "supercomputer",
                "infrastructure", "rechenzentrum", "rechenzentren", "centre de données",
                "centres de données", "centro de datos", "centros de datos", "数据中心",
                "算力", "データセンター", "центр обработки данных", "дата-центр",
                "дата-центры", "cloud region", "cloud campus"),
    "ai": ("ai", "artificial intelligence", "machine learning", "neural network",
           "neural networks", "llm", "llms", "language model", "language models", "chatbot",
           "generative", "openai", "deepmind", "ki", "künstliche intelligenz", "ia",
           "intelligence artificielle", "inteligencia artificial", "人工智能", "大模型",
           "人工知能", "生成ai", "ии", "искусственный интеллект", "нейросеть", "нейросети"),
    "europe": ("europe", "european", "eu", "brussels", "germany", "german", "france",
               "french", "spain", "spanish", "italy", "netherlands", "dutch", "ireland",
               "frankfurt", "paris", "amsterdam", "dublin", "madrid", "berlin", "nordic",
               "sweden", "finland", "europa", "europäische", "europäischen", "deutschland",
               "européen", "européenne", "europeo", "europea", "欧洲", "欧盟", "ヨーロッパ",
               "欧州", "европа", "европейский", "евросоюз", "германия", "франция"),
    "crypto": ("crypto", "cryptocurrency", "bitcoin", "ethereum", "blockchain", "token",
               "stablecoin", "kryptowährung", "cryptomonnaie", "criptomoneda", "加密货币",
               "比特币", "暗号資産", "ビットコイン", "криптовалюта", "биткоин"),
    "football": ("football", "soccer", "striker", "goalkeeper", "premier league", "la liga",
                 "bundesliga", "champions league", "fußball", "torwart", "fútbol",
                 "futbol", "goleador", "足球", "サッカー", "футбол", "матч"),
    "climate": ("climate", "emissions", "carbon", "global warming", "heatwave", "drought",
                "greenhouse", "klima", "klimawandel", "climat", "réchauffement", "clima",
                "calentamiento", "气候", "碳排放", "気候", "温暖化", "климат", "выбросы"),
    "election": ("election", "elections", "vote", "voters", "ballot", "polls", "candidate",
                 "wahl", "wahlen", "élection", "élections", "elecciones", "votación",
                 "选举", "投票", "選挙", "выборы", "голосование"),
    "energy": ("electricity", "power grid", "grid", "megawatt", "megawatts", "gigawatt",
               "renewable", "solar", "wind farm", "nuclear", "strom", "stromnetz",
               "électricité", "electricidad", "电力", "电网", "電力", "электроэнергия"),
    "chips": ("chip", "chips", "semiconductor", "semiconductors", "gpu", "gpus", "nvidia",
              "tsmc", "foundry", "halbleiter", "puce", "semi-conducteurs", "semiconductores",
              "芯片", "半导体", "半導体", "чип", "полупроводники"),
    "health": ("vaccine", "hospital", "virus", "outbreak", "disease", "patients", "doctors",
               "impfstoff", "krankenhaus", "vaccin", "hôpital", "vacuna", "hospital",
               "疫苗", "医院", "ワクチン", "病院", "вакцина", "больница"),
}
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\u3040-\u30ff]")
_WORD = re.compile(r"[\w-]+")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _phrases() -> list[tuple[str, str, re.Pattern[str] | None]]:
    """Longest phrases first, so 'data center' is taken before a word inside it."""
    found = []
    for concept, phrases in CONCEPTS.items():
        for phrase in phrases:
            folded = _fold(phrase)
            pattern = None if _CJK.search(folded) else re.compile(
                r"(?<![\w-])" + re.escape(folded) + r"(?![\w-])")
            found.append((concept, folded, pattern))
    return sorted(found, key=lambda row: -len(row[1]))


PHRASES = _phrases()


def features(text: str) -> dict[str, float]:
    """Concepts the text names (weight 1 each, however often) and its other words."""
    rest = _fold(text)
    found: dict[str, float] = {}
    for concept, phrase, pattern in PHRASES:
        if pattern is None:
            if phrase in rest:
                found["c:" + concept] = 1.0
                rest = rest.replace(phrase, " ")
        elif pattern.search(rest):
            found["c:" + concept] = 1.0
            rest = pattern.sub(" ", rest)
    for word in _WORD.findall(rest):
        if word not in STOPWORDS and len(word) > 2 and not word.isdigit():
            found.setdefault("w:" + word, WORD_WEIGHT)
    return found


def vector(text: str, dims: int) -> list[float]:
    """The text's unit vector of `dims` numbers (all zeros but one for an empty text)."""
    out = [0.0] * dims
    for feature, weight in features(text).items():
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "big") % dims
        out[index] += weight if digest[4] & 1 else -weight
    norm = math.sqrt(sum(x * x for x in out))
    if not norm:
        out[0] = 1.0
        return out
    return [x / norm for x in out]
