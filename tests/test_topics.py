"""The topic query language (SPEC §4): parsing, canonical form, read-back and matching."""

from __future__ import annotations

import random
import unicodedata

import pytest

from handlers.topics import wording
from locales import catalog
from news.topics import (
    MAX_QUERY_CHARS,
    And,
    Node,
    Not,
    Or,
    QueryError,
    Term,
    canonical,
    describe,
    fold,
    matches,
    needs_a_term,
    parse,
    positive_terms,
    same_topic,
)


def hits(query: str, text: str) -> bool:
    return matches(parse(query), text)


# --- parsing ---------------------------------------------------------------------------------

PARSED: list[tuple[str, Node]] = [
    ("SoftBank", Term("SoftBank")),
    ("  SoftBank  ", Term("SoftBank")),
    ('"SoftBank"', Term("SoftBank")),
    ("SoftBank France", And((Term("SoftBank"), Term("France")))),
    ('"data center"', Term("data center")),
    ('"data    center"', Term("data center")),
    ('"  data center  "', Term("data center")),
    ("SoftBank OR 软银", Or((Term("SoftBank"), Term("软银")))),
    (
        "SoftBank OR 软银 OR ソフトバンク",
        Or((Term("SoftBank"), Term("软银"), Term("ソフトバンク"))),
    ),
    ("SoftBank -Hawks", And((Term("SoftBank"), Not(Term("Hawks"))))),
    ("SoftBank - Hawks", And((Term("SoftBank"), Not(Term("Hawks"))))),
    ('SoftBank -"Fukuoka Hawks"', And((Term("SoftBank"), Not(Term("Fukuoka Hawks"))))),
    (
        '"data center" OR datacenter -crypto',
        And((Or((Term("data center"), Term("datacenter"))), Not(Term("crypto")))),
    ),
    (
        "(SoftBank OR 软银) France",
        And((Or((Term("SoftBank"), Term("软银"))), Term("France"))),
    ),
    (
        "blockchain -(crypto OR bitcoin)",
        And((Term("blockchain"), Not(Or((Term("crypto"), Term("bitcoin")))))),
    ),
    (
        "(SoftBank France) OR 软银",
        Or((And((Term("SoftBank"), Term("France"))), Term("软银"))),
    ),
    # "or" in lower case is a word, not the operator
    ("rock or roll", And((Term("rock"), Term("or"), Term("roll")))),
    ("a-b", Term("a-b")),
    ('foo"bar baz"', And((Term("foo"), Term("bar baz")))),
    ('SoftBank "" France', And((Term("SoftBank"), Term("France")))),
]


@pytest.mark.parametrize(("query", "expected"), PARSED)
def test_parse(query: str, expected: Node) -> None:
    assert parse(query) == expected


ERRORS = [
    ("", "empty"),
    ("   ", "empty"),
    ('""', "empty"),
    ("()", "empty"),
    ("\u200b\u200b", "empty"),
    ("x" * (MAX_QUERY_CHARS + 1), "too_long"),
    ("软" * (MAX_QUERY_CHARS + 1), "too_long"),
    ('"data center', "unbalanced_quote"),
    ('SoftBank "data center" "x', "unbalanced_quote"),
    ("(SoftBank OR 软银", "unbalanced_paren"),
    ("SoftBank OR 软银)", "unbalanced_paren"),
    ("((SoftBank)", "unbalanced_paren"),
    ("-crypto", "only_exclusions"),
    ("-crypto -bitcoin", "only_exclusions"),
    ('-"data center"', "only_exclusions"),
    ("SoftBank (-crypto)", "only_exclusions"),
    ("SoftBank OR", "dangling_or"),
    ("OR SoftBank", "dangling_or"),
    ("SoftBank OR OR 软银", "dangling_or"),
    ("(SoftBank OR) France", "dangling_or"),
    ("*", "no_words"),
    ("-", "no_words"),
    ("SoftBank -", "lone_symbol"),
    ("<b>bold</b> & <script>", "lone_symbol"),
    ("SoftBank 🚀", "lone_symbol"),
    ("🚀", "no_words"),
    ('"!!!"', "no_words"),
    ("<>", "no_words"),
]


@pytest.mark.parametrize(("query", "code"), ERRORS)
def test_errors(query: str, code: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(query)
    assert caught.value.code == code
    assert isinstance(caught.value, ValueError)


def test_length_limit_is_in_characters_after_trimming() -> None:
    assert parse("x" * MAX_QUERY_CHARS) == Term("x" * MAX_QUERY_CHARS)
    assert parse("软" * MAX_QUERY_CHARS) == Term("软" * MAX_QUERY_CHARS)
    assert parse("   " + "x" * MAX_QUERY_CHARS + "   ") == Term("x" * MAX_QUERY_CHARS)
    # invisible characters are dropped before counting
    assert parse("x" * MAX_QUERY_CHARS + "\u200b" * 20) == Term("x" * MAX_QUERY_CHARS)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Soft\u200bBank", Term("SoftBank")),  # zero-width space
        ("\ufeffSoftBank", Term("SoftBank")),  # byte-order mark
        ("Soft\u200dBank", Term("SoftBank")),  # zero-width joiner
        ("\u200fأرامكو", Term("أرامكو")),  # right-to-left mark
        ("\u202eSoftBank\u202c", Term("SoftBank")),  # bidi override
        ("\x00Soft\x07Bank\x1b", Term("SoftBank")),  # C0 controls
        ("Soft\u00adBank", Term("SoftBank")),  # soft hyphen
    ],
)
def test_invisible_and_control_characters_are_stripped(query: str, expected: Node) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SoftBank\nNvidia", And((Term("SoftBank"), Term("Nvidia")))),
        ("SoftBank\tNvidia", And((Term("SoftBank"), Term("Nvidia")))),
        ("data\u00a0center", And((Term("data"), Term("center")))),
        ('"data\u00a0center"', Term("data center")),
        ("软银\u3000英伟达", And((Term("软银"), Term("英伟达")))),
    ],
)
def test_other_whitespace_separates_words(query: str, expected: Node) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    "literal",
    ["<b>", "<script>alert</script>", "AT&T", "&amp;", "C++", ".NET", "*bold*", "`code`",
     "#AI", "@elonmusk", "S&P500", "a_b_c", "[link]", "~~x~~", "<tg-spoiler>"],
)
def test_html_and_markdown_characters_are_literal_text(literal: str) -> None:
    node = parse(literal)
    assert node == Term(literal)
    assert canonical(node) == literal
    assert matches(node, f"Headline about {literal} today")
    assert not matches(node, "Headline about nothing today")


# --- matching --------------------------------------------------------------------------------

MATCHES = [
    # whole words in Latin script
    ("mac", "Mac sales jump 20% in holiday quarter", True),
    ("mac", "Machine learning startup raises $50m", False),
    ("mac", "Apple unveils MacBook Pro with M4 chip", False),
    ("mac", "Why the Mac's comeback is real", True),
    ("SoftBank", "SoftBank's Son says Stargate needs more capital", True),
    ("SoftBank", "SoftBankGroup filings show losses", False),
    ("AI", "OpenAI launches new reasoning model", False),
    ("AI", "AI-driven chip demand lifts TSMC profit", True),
    ("AI", "Apple said to delay Siri upgrade", False),
    ("M4", "Apple unveils MacBook Pro with M4 chip", True),
    ("AT&T", "AT&T to sell DirecTV stake to TPG", True),
    ("C++", "Bjarne Stroustrup on the future of C++", True),
    (".NET", "Microsoft ships .NET 9 with AI features", True),
    ("#AI", "Trending: #AI beats #crypto on X", True),
    # case and accents
    ("SOFTBANK", "SoftBank pledges $10bn for French AI data centres", True),
    ("softbank", "SOFTBANK SHARES SOAR", True),
    ("ＳｏｆｔＢａｎｋ", "SoftBank shares soar", True),
    ("SoftBank", "ＳｏｆｔＢａｎｋ、株価急伸", True),
    ("donnees", "Protection des données : la CNIL inflige une amende à Free", True),
    ("données", "Protection des donnees personnelles", True),
    ("Sao Paulo", "São Paulo stock exchange hits record high", True),
    ("zurich", "Zürich-based UBS cuts 3,000 jobs", True),
    ("ubernahme", "Übernahme: SoftBank kauft Anteile an Ampere", True),
    ("strasse", "Straße gesperrt: Streik legt Verkehr lahm", True),
    ("istanbul", "İstanbul borsası rekor kırdı", True),
    # phrases across whitespace
    ('"data center"', "Microsoft to build $3bn data center in Wisconsin", True),
    ('"data center"', "Microsoft to build $3bn Data  Center in Wisconsin", True),
    ('"data center"', "Microsoft to build data\ncenter in Wisconsin", True),
    ('"data center"', "Equinix opens new datacenter in Madrid", False),
    ('"data center"', "Data on center-left voters", False),
    ('"Fukuoka SoftBank Hawks"', "Fukuoka  SoftBank\tHawks win Japan Series", True),
    # CJK and Thai: substrings
    ("软银", "软银承诺向法国数据中心投资100亿美元", True),
    ("数据中心", "软银承诺向法国数据中心投资100亿美元", True),
    ("英伟达", "软银承诺向法国数据中心投资100亿美元", False),
    ("ソフトバンク", "ソフトバンクグループ、仏AIデータセンターに投資", True),
    ("データセンター", "ソフトバンクグループ、仏AIデータセンターに投資", True),
    ("삼성", "삼성전자, 2분기 영업이익 10조원 돌파", True),
    ("ธนาคาร", "ธนาคารแห่งประเทศไทยคงอัตราดอกเบี้ยนโยบาย", True),
    ("iPhone销量", "苹果iPhone销量在中国下滑", True),
    # Cyrillic and Arabic: whole words
    ("Сбербанк", "Сбербанк увеличил чистую прибыль на 5% в первом квартале", True),
    ("сбербанк", "СБЕРБАНК УВЕЛИЧИЛ ПРИБЫЛЬ", True),
    ("Сбер", "Сбербанк увеличил чистую прибыль на 5% в первом квартале", False),
    ("Газпром", "Сбербанк увеличил чистую прибыль на 5% в первом квартале", False),
    ("ежик", "Ёжик в тумане: ремастер мультфильма", True),
    ("أرامكو", "أرامكو السعودية تعلن عن أرباح فصلية قياسية", True),
    ("أَرامكو", "أرامكو السعودية تعلن عن أرباح فصلية قياسية", True),
    ("أرامكو", "أمازون تعلن عن استثمارات جديدة في السعودية", False),
    ("أرامكو", "أرامكوا", False),
    # zero-width characters inside the text do not hide a word
    ("SoftBank", "Soft\u00adBank pledges $10bn", True),
    ("SoftBank", "Soft\u200bBank pledges $10bn", True),
]


@pytest.mark.parametrize(("query", "text", "expected"), MATCHES)
def test_matches(query: str, text: str, expected: bool) -> None:
    assert hits(query, text) is expected


DATA_CENTER = '"data center" OR datacenter -crypto'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Microsoft to build $3bn data center in Wisconsin", True),
        ("Equinix opens new datacenter in Madrid", True),
        ("Crypto miners turn to data center hosting", False),
        ("Crypto datacenter in Texas goes dark", False),
        ("Nvidia earnings beat estimates", False),
        ("New data centers strain Irish grid", False),  # whole words: "centers" is not "center"
    ],
)
def test_or_binds_tighter_than_and(text: str, expected: bool) -> None:
    assert hits(DATA_CENTER, text) is expected


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("(SoftBank OR 软银) (France OR 法国)", "软银承诺向法国数据中心投资100亿美元", True),
        ("(SoftBank OR 软银) (France OR 法国)", "SoftBank pledges investment in France", True),
        ("(SoftBank OR 软银) (France OR 法国)", "SoftBank invests in Germany", False),
        ("SoftBank -Hawks", "SoftBank Hawks win Japan Series", False),
        ("SoftBank -Hawks", "SoftBank shares jump after Arm results", True),
        ('SoftBank -"Fukuoka Hawks"', "SoftBank Hawks win Japan Series", True),
        ('SoftBank -"SoftBank Hawks"', "SoftBank Hawks win Japan Series", False),
        ("blockchain -(crypto OR bitcoin)", "Banks test blockchain for settlement", True),
        ("blockchain -(crypto OR bitcoin)", "Bitcoin blockchain fees spike", False),
        ("Nvidia -(crypto mining)", "Nvidia GPUs used for crypto mining", False),
        ("Nvidia -(crypto mining)", "Nvidia bans crypto from its forums", True),
        ("(SoftBank France) OR 软银", "软银股价上涨", True),
        ("(SoftBank France) OR 软银", "SoftBank shares rise", False),
    ],
)
def test_boolean_structure(query: str, text: str, expected: bool) -> None:
    assert hits(query, text) is expected


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("ガス", "カスタマーサポートをAIで自動化"),
        ("ビル", "ヒルトン、東京に新ホテル"),
    ],
)
def test_kana_voicing_marks_are_significant(query: str, text: str) -> None:
    assert not hits(query, text)


def test_devanagari_whole_words() -> None:
    assert not hits("भारत", "भारती एयरटेल ने 5G सेवा शुरू की")


# --- canonical form and read-back ------------------------------------------------------------

ROUND_TRIP = [
    "SoftBank",
    "SoftBank France",
    '"data center"',
    '"data center" OR datacenter -crypto',
    "(SoftBank OR 软银) France",
    "(SoftBank OR 软银) (France OR 法国)",
    "SoftBank OR 软银 OR ソフトバンク",
    "SoftBank -Hawks",
    'SoftBank -"Fukuoka Hawks"',
    "blockchain -(crypto OR bitcoin)",
    "Nvidia -(crypto mining)",
    "(SoftBank France) OR 软银",
    "(a b) OR (c d) OR e",
    "Сбербанк OR Газпром -санкции",
    "أرامكو OR aramco",
    "AT&T <b> C++ .NET",
    "rock or roll",
    "a-b",
    "données personnelles",
    '"Fukuoka SoftBank Hawks" OR ホークス',
    'x OR "y z" OR (p -q)',
]


@pytest.mark.parametrize("query", ROUND_TRIP)
def test_canonical_round_trip(query: str) -> None:
    node = parse(query)
    text = canonical(node)
    assert parse(text) == node
    assert canonical(parse(text)) == text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SoftBank   OR   软银", "SoftBank OR 软银"),
        ('"data   center"', '"data center"'),
        ('"SoftBank"', "SoftBank"),
        ("SoftBank - Hawks", "SoftBank -Hawks"),
        ('"data center" OR datacenter -crypto', '("data center" OR datacenter) -crypto'),
        ("SoftBank OR 软银 France", "(SoftBank OR 软银) France"),
        ("(SoftBank OR 软银) France", "(SoftBank OR 软银) France"),
        ("(SoftBank France) OR 软银", "(SoftBank France) OR 软银"),
        ("-(crypto OR bitcoin) blockchain", "-(crypto OR bitcoin) blockchain"),
        ("(SoftBank)", "SoftBank"),
    ],
)
def test_canonical_normalizes_spelling(query: str, expected: str) -> None:
    assert canonical(parse(query)) == expected


@pytest.mark.parametrize("query", ["(a OR b) OR c", "(a b) c", "((SoftBank))", "a (b (c d))"])
def test_redundant_grouping_keeps_meaning_and_is_a_fixed_point(query: str) -> None:
    node = parse(query)
    text = canonical(node)
    assert canonical(parse(text)) == text
    for sample in ["a b c d", "a", "c", "b d", "SoftBank", "a c d", "x"]:
        assert matches(parse(text), sample) == matches(node, sample)


@pytest.mark.parametrize(
    "query", ['Portland "OR"', 'Apple "(PRODUCT)RED"', 'Nasdaq "-5%"', "SoftBank - -Hawks"]
)
def test_canonical_quotes_terms_that_look_like_syntax(query: str) -> None:
    node = parse(query)
    assert parse(canonical(node)) == node


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SoftBank", "«SoftBank»"),
        ("SoftBank -Hawks", "«SoftBank» AND NOT «Hawks»"),
        ('"data center" OR datacenter -crypto', "(«data center» OR «datacenter») AND NOT «crypto»"),
        ("blockchain -(crypto OR bitcoin)", "«blockchain» AND NOT («crypto» OR «bitcoin»)"),
        ("(SoftBank France) OR 软银", "(«SoftBank» AND «France») OR «软银»"),
        ("-(crypto mining) Nvidia", "«Nvidia» AND NOT («crypto» AND «mining»)"),
        ("SoftBank -Hawks -baseball", "«SoftBank» AND NOT («Hawks» OR «baseball»)"),
        ("SoftBank OR -Hawks", "«SoftBank» OR NOT «Hawks»"),
    ],
)
def test_describe(query: str, expected: str) -> None:
    assert describe(parse(query)) == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", "«\u202fSoftBank\u202f» sans «\u202fHawks\u202f»"),
        ("zh", "「SoftBank」且不含「Hawks」"),
        ("ja", "「SoftBank」（「Hawks」を除く）"),
    ],
)
def test_describe_reads_naturally_in_each_language(language: str, expected: str) -> None:
    """The catalogue's templates, not operators word for word (`ET SAUF`, `且 非`, `かつ 除外`)."""
    assert describe(parse("SoftBank -Hawks"), wording(catalog, language)) == expected
    said = describe(parse("(SoftBank OR 软银) France -Hawks"), wording(catalog, language))
    assert all(term in said for term in ("SoftBank", "软银", "France", "Hawks"))


# --- what a prefilter may rely on ------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "positive", "needs"),
    [
        ("SoftBank", ["SoftBank"], True),
        ("SoftBank -Hawks", ["SoftBank"], True),
        ('"data center" OR datacenter -crypto', ["data center", "datacenter"], True),
        ("blockchain -(crypto OR bitcoin)", ["blockchain"], True),
        ("SoftBank OR -Hawks", ["SoftBank"], False),
        ("(SoftBank -Hawks) OR 软银", ["SoftBank", "软银"], True),
    ],
)
def test_positive_terms(query: str, positive: list[str], needs: bool) -> None:
    node = parse(query)
    assert [term.text for term in positive_terms(node)] == positive
    assert needs_a_term(node) is needs


@pytest.mark.parametrize(
    ("query", "needle"),
    [("SoftBank", "softbank"), ('"Data   Center"', "data center"), ("Données", "donnees"),
     ("ＳｏｆｔＢａｎｋ", "softbank"), ("Soft\u00adBank", "softbank"), ("软银", "软银")],
)
def test_needle_is_the_folded_text(query: str, needle: str) -> None:
    term = parse(query)
    assert isinstance(term, Term) and term.needle == needle


def _fold_by_character(text: str) -> str:
    """fold() as its docstring defines it, one character at a time (the slow reference)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(
        {cp: None for cp in [*range(0x2000, 0x2070), 0xFEFF, 0x00AD]
         if unicodedata.category(chr(cp)) == "Cf"}))
    kept = "".join(ch for ch in decomposed if ch in "\u3099\u309a" or not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", kept).casefold()


def test_fold_agrees_with_the_character_by_character_definition() -> None:
    rng = random.Random(7)
    alphabet = [chr(cp) for cp in [*range(0x20, 0x250), *range(0x300, 0x370), *range(0x370, 0x500),
                                   *range(0x590, 0x700), *range(0x1E00, 0x1F00),
                                   *range(0x2000, 0x2070), *range(0x3040, 0x3100),
                                   0xFEFF, 0x00AD, 0xFB01, 0x2460, 0xFF21]]
    samples = ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(3000)]
    samples += ["SoftBank Group", "Café au lait", "ガ が パ", "İSTANBUL", "Straße", "ﬁnance"]
    for sample in samples:
        assert fold(sample) == _fold_by_character(sample), repr(sample)


@pytest.mark.parametrize(("one", "other", "alike"), [
    ("SoftBank", "softbank", True),
    ('"SOFTBANK"  -Hawks', "softbank -hawks", True),
    ("Société Générale", "societe  generale", True),
    ("(SoftBank OR 软银) France", "softbank OR 软银 FRANCE", True),
    ("SoftBank", "SoftBank Hawks", False),
    ("SoftBank -Hawks", "SoftBank Hawks", False),
    ('"a b"', "a b", False),  # a phrase is not two words
])
def test_same_topic_compares_queries_as_they_match(one: str, other: str, alike: bool) -> None:
    assert (same_topic(one) == same_topic(other)) is alike
