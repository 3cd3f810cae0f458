"""The labelled story pairs (tests/fixtures/story_pairs.json) that news.stories is held to.

Run from the repository root with ../shared present:

    .venv/bin/python bench/story_pairs.py

Every entry of ../shared/corpus/real-world (MIT, see its README) is read as the bot reads it,
and every pair of entries, within one feed or across two, that scores at least `FLOOR` under
the old similarity (overlap of headline and first sentence, before issue 13) or the current
one is a candidate. Each was labelled by reading it: SAME lists those that report one event;
every other candidate was read and is a different event (the 7,462 pairs inside the Giant
Bomb podcast feed are 730 distinct weekly episodes). WRITTEN adds pairs written for this
table: one event as two outlets would put it, and near misses (same company, another event),
in English, French and Chinese. The fixture keeps each entry's headline, first sentences and
date, so that tests run without ../shared; tests/test_story_pairs.py checks the table is
still complete under the current similarity.
"""

# ruff: noqa: E501 (the written pairs are data, one headline or lead a line)

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from news.feeds import parse_feed  # noqa: E402
from news.parsing import drafts_of  # noqa: E402
from news.stories import LEAD_SENTENCES, boilerplate, signature, similarity  # noqa: E402
from news.text import first_sentence, first_sentences  # noqa: E402
from news.topics import fold, unspaced  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "real-world"
FIXTURE = ROOT / "tests" / "fixtures" / "story_pairs.json"
FLOOR = 0.4
_OLD_WORD = re.compile(r"\w+")
_OLD_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was "
    "were will with de la le les des du et en un une el los las y del der die das und von zu "
    "mit im il di che по на и в с".split()
)

# (feed, entry, feed, entry) pairs that report one event, by reading; entries by feed order
SAME = {
    # one blog served as three feeds
    *((f"feedjira/PaulDixExplainsNothing{a}.xml", n, f"feedjira/PaulDixExplainsNothing{b}.xml", n)
      for a, b in (("", "Alternate"), ("", "WFW"), ("Alternate", "WFW")) for n in range(5)),
    # one podcast episode in two feeds
    ("rssparser/itunes-category.rss", 0, "rssparser/itunes-missing-image.rss", 0),
    # the Guardian: video and article on Stormy Daniels on Jimmy Kimmel Live, the same morning
    ("rssparser/guardian.rss", 28, "rssparser/guardian.rss", 32),
    # the Guardian: analysis and video of the same State of the Union address
    ("rssparser/guardian.rss", 0, "rssparser/guardian.rss", 27),
    # UOL: one headline twice; two reports of the same Ibope poll of Monday the 24th
    ("rssparser/uolNoticias.rss", 8, "rssparser/uolNoticias.rss", 9),
    ("rssparser/uolNoticias.rss", 0, "rssparser/uolNoticias.rss", 12),
    # craigslist: one listing posted twice; the same Carriage House unit ten seconds apart
    ("rssparser/craigslist.rss", 16, "rssparser/craigslist.rss", 19),
    ("rssparser/craigslist.rss", 10, "rssparser/craigslist.rss", 12),
    # Expresso: "60 seconds" front-page briefs and the articles they sum up
    ("rssparser/encoding.rss", 33, "rssparser/encoding.rss", 37),
    ("rssparser/encoding.rss", 12, "rssparser/encoding.rss", 15),
    # Medium: one article, republished for everyone 35 days later
    ("rssparser/content-encoded.rss", 3, "rssparser/content-encoded.rss", 6),
}

S, D = "same", "different"
WRITTEN = [
 # English, same event
 ("en", S, "Boeing 737 Max grounded in US after door plug blows out mid-flight",
  "US regulators grounded 171 Boeing 737 Max 9 jets on Saturday after a door plug blew out of an Alaska Airlines flight.",
  "FAA grounds 171 Boeing 737 Max 9 planes after Alaska Airlines blowout",
  "The Federal Aviation Administration ordered 171 Boeing 737 Max 9 aircraft grounded after a door plug blew out of an Alaska Airlines jet."),
 ("en", S, "Microsoft agrees to buy Activision Blizzard for $68.7 billion",
  "Microsoft said on Tuesday it would buy video game maker Activision Blizzard for $68.7 billion in cash.",
  "Microsoft to acquire Activision Blizzard in $68.7 billion deal",
  "Microsoft will acquire Activision Blizzard, the maker of Call of Duty, for $68.7 billion, the companies said Tuesday."),
 ("en", S, "Magnitude 7.8 earthquake strikes Turkey and Syria, killing thousands",
  "A magnitude 7.8 earthquake struck southern Turkey and northern Syria early on Monday, killing thousands of people.",
  "Thousands killed as 7.8 magnitude quake hits Turkey and Syria",
  "A powerful 7.8 magnitude earthquake hit southern Turkey and northwest Syria on Monday, killing thousands and toppling buildings."),
 ("en", S, "Bank of England raises interest rates to 5.25%",
  "The Bank of England raised interest rates by a quarter point to 5.25% on Thursday, the highest level in 15 years.",
  "Bank of England lifts interest rates to 15-year high of 5.25%",
  "The Bank of England raised its key interest rate to 5.25% on Thursday, its highest level in 15 years."),
 ("en", S, "OpenAI board fires CEO Sam Altman",
  "OpenAI's board said on Friday it had removed chief executive Sam Altman, saying it had lost confidence in his leadership.",
  "Sam Altman ousted as OpenAI CEO by board",
  "The board of OpenAI removed Sam Altman as chief executive on Friday, saying it no longer had confidence in his leadership."),
 ("en", S, "Twitter rebrands as X, replacing bird logo",
  "Elon Musk replaced Twitter's blue bird logo with an X on Monday as the social network rebrands as X.",
  "Elon Musk rebrands Twitter as X and drops the bird logo",
  "Twitter's bird logo was replaced by an X on Monday, as Elon Musk rebrands the social network."),
 ("en", S, "Tesla recalls 2 million vehicles over Autopilot safety",
  "Tesla is recalling more than 2 million vehicles in the US to fix its Autopilot system, regulators said on Wednesday.",
  "Tesla recalls over 2 million cars to fix Autopilot",
  "Tesla will recall more than 2 million vehicles in the US to update its Autopilot driver assistance system, regulators said Wednesday."),
 ("en", S, "Nvidia market value tops $1 trillion",
  "Nvidia became the first chipmaker to be valued at $1 trillion on Tuesday as demand for its AI chips soared.",
  "Nvidia hits $1 trillion market value on AI chip demand",
  "Nvidia's market value topped $1 trillion on Tuesday, making it the first chipmaker to reach the mark, on soaring demand for AI chips."),
 ("en", S, "Apple unveils Vision Pro headset priced at $3,499",
  "Apple on Monday unveiled the Vision Pro, a mixed reality headset that will cost $3,499 when it goes on sale next year.",
  "Apple announces $3,499 Vision Pro mixed reality headset",
  "Apple announced its Vision Pro mixed reality headset on Monday, priced at $3,499 and going on sale next year."),
 ("en", S, "Credit Suisse to be taken over by UBS in $3.2 billion rescue",
  "UBS agreed on Sunday to buy Credit Suisse for $3.2 billion in a deal brokered by Swiss authorities.",
  "UBS agrees to buy Credit Suisse for $3.2 billion",
  "UBS will take over Credit Suisse for $3.2 billion in a rescue deal brokered by Swiss authorities on Sunday."),
 # English, near misses: same company or subject, another event
 ("en", D, "Boeing 737 Max grounded in US after door plug blows out mid-flight",
  "US regulators grounded 171 Boeing 737 Max 9 jets on Saturday after a door plug blew out of an Alaska Airlines flight.",
  "Boeing delivers 48 737 Max jets in March as production recovers",
  "Boeing delivered 48 of its 737 Max jets in March, as production at its Renton factory recovers."),
 ("en", D, "Microsoft agrees to buy Activision Blizzard for $68.7 billion",
  "Microsoft said on Tuesday it would buy video game maker Activision Blizzard for $68.7 billion in cash.",
  "Microsoft to cut 10,000 jobs",
  "Microsoft said on Wednesday it would cut 10,000 jobs by the end of March as it braces for slower growth."),
 ("en", D, "Magnitude 7.8 earthquake strikes Turkey and Syria, killing thousands",
  "A magnitude 7.8 earthquake struck southern Turkey and northern Syria early on Monday, killing thousands of people.",
  "Magnitude 6.4 earthquake strikes Turkey two weeks after deadly quake",
  "A magnitude 6.4 earthquake struck southern Turkey on Monday, two weeks after a deadly quake killed thousands."),
 ("en", D, "Bank of England raises interest rates to 5.25%",
  "The Bank of England raised interest rates by a quarter point to 5.25% on Thursday, the highest level in 15 years.",
  "Bank of England raises interest rates to 5%",
  "The Bank of England raised interest rates by half a point to 5% on Thursday, a bigger rise than expected."),
 ("en", D, "OpenAI board fires CEO Sam Altman",
  "OpenAI's board said on Friday it had removed chief executive Sam Altman, saying it had lost confidence in his leadership.",
  "OpenAI launches GPT-4 Turbo at developer conference",
  "OpenAI chief executive Sam Altman unveiled GPT-4 Turbo at the company's first developer conference on Monday."),
 ("en", D, "Twitter rebrands as X, replacing bird logo",
  "Elon Musk replaced Twitter's blue bird logo with an X on Monday as the social network rebrands as X.",
  "Twitter to limit how many tweets users can read per day",
  "Elon Musk said Twitter would temporarily limit how many tweets users can read per day, citing data scraping."),
 ("en", D, "Tesla recalls 2 million vehicles over Autopilot safety",
  "Tesla is recalling more than 2 million vehicles in the US to fix its Autopilot system, regulators said on Wednesday.",
  "Tesla recalls 120,000 Model S and X vehicles over door latch",
  "Tesla is recalling about 120,000 Model S and Model X vehicles in the US because doors may open in a crash, regulators said."),
 ("en", D, "Nvidia market value tops $1 trillion",
  "Nvidia became the first chipmaker to be valued at $1 trillion on Tuesday as demand for its AI chips soared.",
  "Nvidia market value tops $2 trillion",
  "Nvidia's market value topped $2 trillion on Friday, less than a year after it first reached $1 trillion, as demand for its AI chips kept growing."),
 ("en", D, "Apple unveils Vision Pro headset priced at $3,499",
  "Apple on Monday unveiled the Vision Pro, a mixed reality headset that will cost $3,499 when it goes on sale next year.",
  "Apple cuts Vision Pro production as demand slows",
  "Apple has cut production of its Vision Pro headset as demand for the $3,499 device slows, analysts said on Wednesday."),
 ("en", D, "Credit Suisse to be taken over by UBS in $3.2 billion rescue",
  "UBS agreed on Sunday to buy Credit Suisse for $3.2 billion in a deal brokered by Swiss authorities.",
  "UBS to cut 3,000 jobs in Switzerland after Credit Suisse takeover",
  "UBS said on Wednesday it would cut 3,000 jobs in Switzerland as it integrates Credit Suisse."),
 # French, same event
 ("fr", S, "Incendie de Notre-Dame de Paris : la flèche s'est effondrée",
  "La flèche de la cathédrale Notre-Dame de Paris s'est effondrée lundi soir, dévorée par un violent incendie.",
  "Notre-Dame de Paris en flammes, la flèche s'effondre",
  "Un violent incendie ravage la cathédrale Notre-Dame de Paris depuis lundi soir, la flèche s'est effondrée."),
 ("fr", S, "Retraites : le Conseil constitutionnel valide le report de l'âge légal à 64 ans",
  "Le Conseil constitutionnel a validé vendredi l'essentiel de la réforme des retraites, dont le report de l'âge légal de départ à 64 ans.",
  "Réforme des retraites : les Sages valident le report de l'âge de départ à 64 ans",
  "Le Conseil constitutionnel a validé vendredi le cœur de la réforme des retraites, le report de l'âge légal de départ à 64 ans."),
 ("fr", S, "La BCE relève ses taux directeurs à 4 %",
  "La Banque centrale européenne a relevé jeudi ses taux directeurs de 0,25 point, portant son taux de dépôt à 4 %.",
  "La Banque centrale européenne relève encore ses taux, à 4 %",
  "La BCE a relevé jeudi ses taux directeurs d'un quart de point, son taux de dépôt atteignant 4 %, un niveau record."),
 ("fr", S, "Renault annonce une perte de 338 millions d'euros en 2022",
  "Renault a annoncé jeudi une perte nette de 338 millions d'euros en 2022, plombée par sa sortie de Russie.",
  "Renault dans le rouge en 2022 avec une perte de 338 millions d'euros",
  "Le constructeur Renault a enregistré en 2022 une perte nette de 338 millions d'euros, plombée par sa sortie de Russie, a-t-il annoncé jeudi."),
 ("fr", S, "Tempête Ciaran : 1,2 million de foyers privés d'électricité",
  "La tempête Ciaran a privé d'électricité 1,2 million de foyers jeudi matin, principalement en Bretagne et en Normandie.",
  "Ciaran : 1,2 million de foyers sans électricité après le passage de la tempête",
  "Après le passage de la tempête Ciaran, 1,2 million de foyers étaient privés d'électricité jeudi matin, surtout en Bretagne et en Normandie."),
 ("fr", S, "Mistral AI lève 385 millions d'euros",
  "La start-up française Mistral AI a levé 385 millions d'euros, a-t-elle annoncé dimanche.",
  "Intelligence artificielle : la start-up française Mistral AI lève 385 millions d'euros",
  "Mistral AI, la start-up française d'intelligence artificielle, a annoncé dimanche avoir levé 385 millions d'euros."),
 ("fr", S, "Le Louvre fermé après une grève des agents",
  "Le musée du Louvre est resté fermé lundi en raison d'une grève des agents d'accueil et de surveillance.",
  "Grève au Louvre : le musée fermé lundi",
  "Le musée du Louvre n'a pas ouvert ses portes lundi, en raison d'une grève des agents d'accueil et de surveillance."),
 ("fr", S, "SNCF : les contrôleurs en grève ce week-end, un TGV sur deux supprimé",
  "Un TGV sur deux sera supprimé ce week-end en raison d'une grève des contrôleurs, a annoncé la SNCF.",
  "Grève des contrôleurs SNCF : un TGV sur deux supprimé ce week-end",
  "La SNCF a annoncé qu'un TGV sur deux serait supprimé ce week-end à cause de la grève des contrôleurs."),
 # French, near misses
 ("fr", D, "Incendie de Notre-Dame de Paris : la flèche s'est effondrée",
  "La flèche de la cathédrale Notre-Dame de Paris s'est effondrée lundi soir, dévorée par un violent incendie.",
  "Notre-Dame de Paris : la nouvelle flèche dévoilée",
  "La nouvelle flèche de la cathédrale Notre-Dame de Paris a été dévoilée samedi, cinq ans après l'incendie."),
 ("fr", D, "Retraites : le Conseil constitutionnel valide le report de l'âge légal à 64 ans",
  "Le Conseil constitutionnel a validé vendredi l'essentiel de la réforme des retraites, dont le report de l'âge légal de départ à 64 ans.",
  "Retraites : nouvelle journée de grève et de manifestations contre la réforme",
  "Les syndicats appellent à une nouvelle journée de grève et de manifestations jeudi contre la réforme des retraites."),
 ("fr", D, "La BCE relève ses taux directeurs à 4 %",
  "La Banque centrale européenne a relevé jeudi ses taux directeurs de 0,25 point, portant son taux de dépôt à 4 %.",
  "La BCE relève ses taux directeurs à 3,75 %",
  "La Banque centrale européenne a relevé jeudi ses taux directeurs de 0,25 point, portant son taux de dépôt à 3,75 %."),
 ("fr", D, "Renault annonce une perte de 338 millions d'euros en 2022",
  "Renault a annoncé jeudi une perte nette de 338 millions d'euros en 2022, plombée par sa sortie de Russie.",
  "Renault renoue avec les bénéfices en 2023",
  "Renault a annoncé jeudi un bénéfice net de 2,2 milliards d'euros en 2023, après une perte en 2022."),
 ("fr", D, "Tempête Ciaran : 1,2 million de foyers privés d'électricité",
  "La tempête Ciaran a privé d'électricité 1,2 million de foyers jeudi matin, principalement en Bretagne et en Normandie.",
  "Tempête Domingos : 100 000 foyers privés d'électricité",
  "La tempête Domingos a privé d'électricité 100 000 foyers samedi, principalement dans le Sud-Ouest."),
 ("fr", D, "Mistral AI lève 385 millions d'euros",
  "La start-up française Mistral AI a levé 385 millions d'euros, a-t-elle annoncé dimanche.",
  "Mistral AI lance son assistant Le Chat",
  "La start-up française Mistral AI a lancé lundi Le Chat, son assistant conversationnel."),
 ("fr", D, "Le Louvre fermé après une grève des agents",
  "Le musée du Louvre est resté fermé lundi en raison d'une grève des agents d'accueil et de surveillance.",
  "Le Louvre va augmenter le prix de son billet d'entrée",
  "Le musée du Louvre augmentera le prix de son billet d'entrée de 17 à 22 euros en janvier."),
 ("fr", D, "SNCF : les contrôleurs en grève ce week-end, un TGV sur deux supprimé",
  "Un TGV sur deux sera supprimé ce week-end en raison d'une grève des contrôleurs, a annoncé la SNCF.",
  "SNCF : le prix des billets de TGV augmentera de 5 % en janvier",
  "La SNCF a annoncé que le prix des billets de TGV augmentera en moyenne de 5 % en janvier."),
 # Chinese, same event
 ("zh", S, "华为发布Mate 60 Pro手机",
  "华为周二在官方商城上线Mate 60 Pro手机，售价6999元。",
  "华为Mate 60 Pro突然开售 售价6999元",
  "华为Mate 60 Pro手机周二在华为商城开售，售价6999元。"),
 ("zh", S, "中国人民银行宣布降准0.5个百分点",
  "中国人民银行宣布，将于9月15日下调金融机构存款准备金率0.5个百分点。",
  "央行宣布降准0.5个百分点 释放长期资金",
  "中国人民银行决定于9月15日下调金融机构存款准备金率0.5个百分点。"),
 ("zh", S, "台湾花莲发生7.3级地震",
  "台湾花莲县海域周三上午发生7.3级地震，震源深度12公里。",
  "花莲海域发生7.3级强烈地震 全台有震感",
  "周三上午，台湾花莲县海域发生7.3级地震，震源深度12公里。"),
 ("zh", S, "比亚迪第三季度净利润104亿元",
  "比亚迪公布第三季度净利润104亿元，同比增长82%。",
  "比亚迪三季度净利润104亿元 同比增长82%",
  "比亚迪第三季度实现净利润104亿元，同比增长82%。"),
 ("zh", S, "阿里巴巴宣布分拆为六大业务集团",
  "阿里巴巴集团周二宣布，将分拆为六大业务集团，各自可独立融资和上市。",
  "阿里巴巴拆分为六大业务集团 可独立上市",
  "阿里巴巴周二宣布将集团分拆为六大业务集团，各业务集团可独立融资和上市。"),
 ("zh", S, "神舟十七号载人飞船发射成功",
  "神舟十七号载人飞船于周四在酒泉卫星发射中心发射成功，三名航天员进入太空。",
  "神舟十七号发射成功 三名航天员出征太空",
  "周四，神舟十七号载人飞船在酒泉卫星发射中心成功发射，三名航天员飞向太空。"),
 ("zh", S, "小米汽车SU7正式发布 售价21.59万元起",
  "小米汽车周四正式发布首款车型SU7，售价21.59万元起。",
  "小米SU7发布：起售价21.59万元",
  "小米首款汽车SU7周四正式发布，起售价21.59万元。"),
 ("zh", S, "字节跳动旗下TikTok首席执行官出席美国国会听证会",
  "TikTok首席执行官周受资周四出席美国国会众议院听证会。",
  "周受资出席美国国会听证会 回应TikTok安全问题",
  "TikTok首席执行官周受资周四在美国国会众议院听证会上回应安全问题。"),
 # Chinese, near misses
 ("zh", D, "华为发布Mate 60 Pro手机",
  "华为周二在官方商城上线Mate 60 Pro手机，售价6999元。",
  "华为发布Mate 70手机 售价5499元",
  "华为周二发布Mate 70手机，售价5499元起。"),
 ("zh", D, "中国人民银行宣布降准0.5个百分点",
  "中国人民银行宣布，将于9月15日下调金融机构存款准备金率0.5个百分点。",
  "中国人民银行宣布降准0.25个百分点",
  "中国人民银行宣布，将于3月27日下调金融机构存款准备金率0.25个百分点。"),
 ("zh", D, "台湾花莲发生7.3级地震",
  "台湾花莲县海域周三上午发生7.3级地震，震源深度12公里。",
  "台湾花莲发生6.1级地震",
  "台湾花莲县周一晚间发生6.1级地震，震源深度10公里。"),
 ("zh", D, "比亚迪第三季度净利润104亿元",
  "比亚迪公布第三季度净利润104亿元，同比增长82%。",
  "比亚迪10月新能源汽车销量突破30万辆",
  "比亚迪10月新能源汽车销量达30.2万辆，同比增长38%。"),
 ("zh", D, "阿里巴巴宣布分拆为六大业务集团",
  "阿里巴巴集团周二宣布，将分拆为六大业务集团，各自可独立融资和上市。",
  "阿里巴巴宣布取消云智能集团分拆上市计划",
  "阿里巴巴周四宣布，不再推进云智能集团的完全分拆。"),
 ("zh", D, "神舟十七号载人飞船发射成功",
  "神舟十七号载人飞船于周四在酒泉卫星发射中心发射成功，三名航天员进入太空。",
  "神舟十六号载人飞船返回舱成功着陆",
  "神舟十六号载人飞船返回舱周二在东风着陆场成功着陆，三名航天员安全返回。"),
 ("zh", D, "小米汽车SU7正式发布 售价21.59万元起",
  "小米汽车周四正式发布首款车型SU7，售价21.59万元起。",
  "小米SU7首月交付量超过7000辆",
  "小米汽车表示，SU7首月交付量超过7000辆。"),
 ("zh", D, "字节跳动旗下TikTok首席执行官出席美国国会听证会",
  "TikTok首席执行官周受资周四出席美国国会众议院听证会。",
  "美国众议院通过可能禁止TikTok的法案",
  "美国国会众议院周三通过一项法案，要求字节跳动出售TikTok，否则将在美国被禁。"),
]


def old_signature(title: str, text: str) -> frozenset[str]:
    """news.stories.signature before issue 13: headline and first sentence, words over one
    letter (numbers included), no boilerplate removed."""
    folded = fold(f"{title} {first_sentence(text)}")
    tokens: set[str] = set()
    for word in _OLD_WORD.findall(folded):
        if unspaced(word):
            tokens.update(word[i:i + 2] for i in range(max(1, len(word) - 1)))
        elif word not in _OLD_STOP and len(word) > 1:
            tokens.add(word)
    return frozenset(tokens)


def old_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / min(len(a), len(b)) if len(a) >= 5 and len(b) >= 5 else 0.0


def main() -> None:
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    entries: list[dict[str, object]] = []
    for feed in manifest:
        drafts = drafts_of(parse_feed((CORPUS / feed["file"]).read_bytes()), "http://feed.test/")
        for number, draft in enumerate(drafts):
            entries.append({
                "feed": feed["file"], "n": number, "title": draft.title,
                "text": "\n".join(first_sentences(draft.summary, LEAD_SENTENCES)),
                "published": draft.published_at.isoformat() if draft.published_at else None})
    by_feed: dict[object, list[dict[str, object]]] = defaultdict(list)
    for entry in entries:
        by_feed[entry["feed"]].append(entry)
    skips = {feed: boilerplate((str(e["text"]) for e in feed_entries),
                               (str(e["title"]) for e in feed_entries))
             for feed, feed_entries in by_feed.items()}
    new = [signature(str(e["title"]), str(e["text"]), skips[e["feed"]]) for e in entries]
    old = [old_signature(str(e["title"]), str(e["text"])) for e in entries]
    at = {(e["feed"], e["n"]): i for i, e in enumerate(entries)}
    same = {tuple(sorted((at[a, m], at[b, n]))) for a, m, b, n in SAME}
    pairs = []
    for i in range(len(entries)):
        for j in range(i + 1, len(entries)):
            if max(similarity(new[i], new[j]), old_overlap(old[i], old[j])) >= FLOOR:
                pairs.append([i, j, "same" if (i, j) in same else "different"])
    assert same <= {(i, j) for i, j, _ in pairs}, "a SAME pair is not a candidate"
    written = [{"lang": lang, "label": label, "a": [ta, la], "b": [tb, lb]}
               for lang, label, ta, la, tb, lb in WRITTEN]
    FIXTURE.write_text(json.dumps({
        "about": "Story pairs labelled by reading: see bench/story_pairs.py. Corpus entries "
                 "from ../shared/corpus/real-world (feedjira/feedjira and rbren/rss-parser "
                 "test suites, MIT); written pairs made for this table.",
        "floor": FLOOR, "entries": entries, "pairs": pairs, "written": written,
    }, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{len(entries)} entries, {len(pairs)} candidate pairs "
          f"({sum(label == 'same' for *_, label in pairs)} same), {len(written)} written")


if __name__ == "__main__":
    main()
