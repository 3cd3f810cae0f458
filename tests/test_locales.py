"""The catalogue: every language complete, every key used by the code present, valid HTML."""

from __future__ import annotations

import ast
import re
import string
import typing
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from locales import FALLBACK, Safe, catalog
from news.types import Impact, Level
from storage.errors import StoredError
from tests.fakes.telegram_html import parse_html, utf16_len

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(REPO / "handlers").rglob("*.py"), *(REPO / "news").rglob("*.py"),
                  *(REPO / "jobs").rglob("*.py"), REPO / "app.py", REPO / "bot.py"])
KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
PREFIX = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.")
CALLS = {"reply", "text", "t", "has", "ngettext"}
MESSAGES = {language: dict(catalog._messages[language]) for language in catalog.languages}
ENGLISH = MESSAGES[FALLBACK]
PLURALS = {language: dict(catalog._plurals[language]) for language in catalog.languages}
# Messages with a count next to a noun: gettext plural forms, so no "1 articles" (fr, es, de).
COUNTED = {"digest.header", "subscribe.preview", "pollnow.all", "opml.caption", "packs.line"}
SAMPLE = '<b>&"x"</b> 🚀'


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def tags(template: str) -> Counter[str]:
    return Counter(re.findall(r"</?[a-z-]+", template))


def test_there_are_languages_besides_english() -> None:
    assert FALLBACK in MESSAGES and "zh" in MESSAGES
    assert len(ENGLISH) > 50


@pytest.mark.parametrize("language", sorted(MESSAGES))
def test_same_keys_as_english(language: str) -> None:
    assert set(MESSAGES[language]) == set(ENGLISH)
    assert set(PLURALS[language]) == set(PLURALS[FALLBACK])


@pytest.mark.parametrize("language", sorted(MESSAGES))
def test_same_placeholders_and_markup_as_english(language: str) -> None:
    for key, template in MESSAGES[language].items():
        assert placeholders(template) == placeholders(ENGLISH[key]), key
        assert tags(template) == tags(ENGLISH[key]), key
    for key, forms in PLURALS[language].items():
        for form in forms:
            assert placeholders(form) == placeholders(PLURALS[FALLBACK][key][0]), key
            assert tags(form) == tags(PLURALS[FALLBACK][key][0]), key


@pytest.mark.parametrize("language", sorted(MESSAGES))
def test_every_message_is_valid_telegram_html(language: str) -> None:
    for key, template in MESSAGES[language].items():
        names = placeholders(template)
        message = catalog.text(language, key, **dict.fromkeys(names, SAMPLE))
        text = parse_html(message)  # raises on bad markup
        assert 0 < utf16_len(text) <= 4096, key
        if names:
            assert SAMPLE in text, key  # values are escaped, and shown as given
    for key, forms in PLURALS[language].items():
        names = placeholders(forms[0]) - {"count"}
        for n in range(200):  # every form of every language is reached below 200
            message = catalog.ngettext(language, key, n, **dict.fromkeys(names, SAMPLE))
            text = parse_html(message)
            assert 0 < utf16_len(text) <= 4096 and str(n) in text, (key, n)
            assert all(SAMPLE in text for _ in names), key


def test_safe_values_are_not_escaped() -> None:
    lines = Safe("1. <code>SoftBank</code>")
    message = catalog.text("en", "topics.list", lines=lines)
    assert "<code>SoftBank</code>" in message
    assert parse_html(message).endswith("1. SoftBank")


def test_missing_keys_and_languages_fall_back() -> None:
    assert catalog.text("xx", "brief.sources") == ENGLISH["brief.sources"]
    assert catalog.text("zh", "no.such.key") == "no.such.key"


@pytest.mark.parametrize(
    ("code", "expected"),
    [("zh", "zh"), ("zh-hans", "zh"), ("zh_Hant", "zh"), ("EN-us", "en"), ("pt-br", "en"),
     (None, "en"), ("", "en")],
)
def test_resolve(code: str | None, expected: str) -> None:
    assert catalog.resolve(code) == expected


# --- keys the code uses ----------------------------------------------------------------------


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _used_keys() -> tuple[set[str], set[str]]:
    """Literal keys, and the literal prefixes of computed ones, as the code passes them."""
    literal: set[str] = set()
    prefixes: set[str] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        roots: list[ast.AST] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) in CALLS:
                roots += node.args
            elif isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "key" for target in node.targets
            ):
                roots.append(node.value)
        for root in roots:
            for node in ast.walk(root):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if KEY.fullmatch(node.value):
                        literal.add(node.value)
                    elif PREFIX.fullmatch(node.value):
                        prefixes.add(node.value)
                elif isinstance(node, ast.JoinedStr) and node.values:
                    first = node.values[0]
                    if isinstance(first, ast.Constant) and PREFIX.fullmatch(str(first.value)):
                        prefixes.add(str(first.value))
    return literal, prefixes


USED, PREFIXES = _used_keys()


def test_the_scan_finds_the_code_keys() -> None:
    assert len(USED) > 30
    assert {"start.welcome", "help.text", "brief.core_point", "subscribe.done"} <= USED
    assert {"query.error.", "fetch.error.", "level.", "impact.", "command."} <= PREFIXES


@pytest.mark.parametrize("key", sorted(USED))
def test_literal_keys_exist(key: str) -> None:
    for language in MESSAGES:
        assert catalog.has(language, key), f"{key} missing in {language}"


@pytest.mark.parametrize("prefix", sorted(PREFIXES))
def test_computed_keys_have_entries(prefix: str) -> None:
    assert any(key.startswith(prefix) for key in ENGLISH)


def _codes(module: str, exception: str) -> set[str]:
    source = (REPO / module).read_text(encoding="utf-8")
    return set(re.findall(exception + r'\(\s*"([a-z_]+)"', source))


def test_every_query_error_has_an_explanation() -> None:
    codes = _codes("news/topics.py", "QueryError")
    assert {"empty", "too_long", "unbalanced_quote", "unbalanced_paren", "only_exclusions",
            "dangling_or", "no_words"} <= codes
    for code in codes:
        for language, messages in MESSAGES.items():
            assert f"query.error.{code}" in messages, language


def test_every_fetch_error_has_an_explanation() -> None:
    codes = _codes("news/fetch.py", "FetchError") | _codes("news/guard.py", "AddressRefused")
    assert {"bad_url", "dns", "blocked_address", "timeout", "network", "http_status",
            "too_large", "too_many_redirects"} <= codes
    for code in [*codes, "not_a_feed", "json_feed_version", "xml_entities", "xml_encoding",
                 "parse_timeout", "parse_memory"]:
        for language, messages in MESSAGES.items():
            assert f"fetch.error.{code}" in messages, language


def test_every_delivery_error_has_an_explanation() -> None:
    stored = (REPO / "storage" / "deliveries.py").read_text(encoding="utf-8")
    parked = (REPO / "jobs" / "deliver.py").read_text(encoding="utf-8")
    codes = (set(re.findall(r'StoredError\(\s*"([a-z_]+)"', stored))
             | set(re.findall(r'code="([a-z_]+)"', parked)))
    assert {"attempts", "throttled", "rejected", "blocked"} <= codes
    for code in codes:
        for language, messages in MESSAGES.items():
            assert f"delivery.error.{code}" in messages, language


def test_a_stored_error_reads_as_its_catalogue_text_or_as_it_was_stored() -> None:
    """A code the catalogue knows is explained in the reader's language with its detail
    escaped; one it does not know (an older version's) is shown, escaped, as stored."""
    german = catalog.error("de", "fetch", StoredError("http_status", "503"))
    assert german == catalog.text("de", "fetch.error.http_status", detail="503") != (
        catalog.text("en", "fetch.error.http_status", detail="503"))
    assert "503" in german
    rejected = catalog.error("en", "delivery", StoredError("rejected", "can't parse <b> | x"))
    assert rejected == "refused by Telegram: can't parse &lt;b&gt; | x"
    assert catalog.error("en", "fetch", StoredError("HTTP 500")) == "HTTP 500"
    assert catalog.error("en", "fetch", StoredError("gone", "a<b")) == "gone: a&lt;b"
    assert catalog.error("en", "fetch", None) == ""


def _command_names() -> list[str]:
    tree = ast.parse((REPO / "handlers" / "__init__.py").read_text(encoding="utf-8"))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id.endswith("_COMMANDS")
            for target in node.targets
        ):
            names += ast.literal_eval(node.value)
    return names


def test_every_command_has_a_menu_text() -> None:
    names = _command_names()
    assert {"start", "help", "subscribe"} <= set(names)
    for name in names:
        for language, messages in MESSAGES.items():
            assert f"command.{name}" in messages, language


def test_every_level_and_impact_has_a_label() -> None:
    levels = typing.get_args(Level)
    impacts = typing.get_args(Impact.model_fields["level"].annotation)
    assert levels == (1, 2, 3) and set(impacts) == {"high", "medium", "low"}
    for language, messages in MESSAGES.items():
        for level in levels:
            assert f"level.{level}" in messages, language
        for impact in impacts:
            assert f"impact.{impact}" in messages, language


def test_chinese_level_labels_are_the_fixed_ones() -> None:
    assert [catalog.text("zh", f"level.{n}") for n in (1, 2, 3)] == ["重点追踪", "持续关注",
                                                                   "一般了解"]


# --- counts: plural forms ----------------------------------------------------------------------


@pytest.mark.parametrize("language", sorted(MESSAGES))
def test_each_count_string_has_its_plural_forms(language: str) -> None:
    """Read with Babel's own .po parser: msgid_plural, and as many forms as the language has."""
    path = REPO / "locales" / language / "LC_MESSAGES" / "tidings.po"
    with path.open("rb") as handle:
        po = read_po(handle)
    expected = get_plural(language).num_plurals  # CLDR: 1 for zh/ja, 2 for fr/es/de, 3 ru, 6 ar
    assert po.num_plurals == expected, "the Plural-Forms header matches CLDR"
    for key in COUNTED:
        message = po.get(key)
        assert message is not None and message.pluralizable, f"{key} has no plural forms"
        assert len(message.string) == expected and all(message.string), key
        assert all("{count}" in form for form in message.string), key


@pytest.mark.parametrize(
    ("language", "counts"),
    [
        ("fr", {0: "0 article", 1: "1 article", 2: "2 articles"}),
        ("es", {1: "1 noticia", 2: "2 noticias"}),
        ("de", {1: "1 Meldung", 7: "7 Meldungen"}),
        ("ru", {1: "1 статья", 3: "3 статьи", 5: "5 статей", 21: "21 статья", 11: "11 статей"}),
        ("en", {1: "stories: 1", 2: "stories: 2"}),
        ("pt", {1: "stories: 1"}),  # a language without a catalogue reads English
    ],
)
def test_ngettext_picks_the_form_for_the_count(language: str, counts: dict[int, str]) -> None:
    for n, expected in counts.items():
        assert parse_html(catalog.ngettext(language, "digest.header", n)).endswith(expected)


COUNT_NAMES = ("count", "items", "chats", "calls", "failures", "tokens_in", "tokens_out",
               "offline", "added", "existing", "failed", "entries", "subscriptions", "sources",
               "stories", "alerts")
GLUED = re.compile(r"\{(" + "|".join(COUNT_NAMES) + r")\}[ \u00a0\u202f]+[^\W\d_]")
NOT_A_NOUN = {
    "topics.line": "a preposition follows: `3 en 7 jours`, `3 in 7 Tagen`",
    "sources.auto_paused": "always PAUSE_AFTER (10) times: `10 fois`, `10 veces`",
}


@pytest.mark.parametrize("language", ["fr", "es", "de"])
def test_no_count_is_glued_to_a_noun_outside_plural_forms(language: str) -> None:
    """A count either has plural forms or reads as `label: N` (no `1 articles`)."""
    for key, template in MESSAGES[language].items():
        if key not in NOT_A_NOUN:
            assert not GLUED.search(template), (key, template)


# --- French typography, Arabic direction -------------------------------------------------------


def _visible(template: str) -> str:
    """The text as shown, with code spans and URLs left out (`08:00`, `https://` are not prose)."""
    text = re.sub(r"<code>.*?</code>", "", template)
    return re.sub(r"<[^>]+>", "", re.sub(r"https?://\S+", "", text))


def test_french_has_non_breaking_spaces_before_double_punctuation_and_in_guillemets() -> None:
    texts = {**MESSAGES["fr"], **{f"{k}[{i}]": f for k, forms in PLURALS["fr"].items()
                                  for i, f in enumerate(forms)}}
    nbsp = "\u00a0\u202f"
    for key, template in texts.items():
        text = _visible(template)
        assert not re.search(rf"(^|[^{nbsp}])[:;?!](\s|$)", text, re.M), (key, text)
        assert not re.search(rf"«[^{nbsp}]|[^{nbsp}]»", text), (key, text)
    assert "«\u202fÀ suivre de près\u202f»" in MESSAGES["fr"]["settings.mode.priority"]


def test_arabic_lines_that_begin_in_latin_start_right_to_left() -> None:
    """`/subscribe …` would otherwise lay out left to right in an Arabic message."""
    texts = [*MESSAGES["ar"].values(), *(f for forms in PLURALS["ar"].values() for f in forms)]
    lines = [line for text in texts for line in text.split("\n")]
    latin = [line for line in lines if re.match(r"(<[^>]+>)*[/A-Za-z]", line.lstrip("\u200f"))]
    assert len(latin) > 10
    assert all(line.startswith("\u200f") for line in latin), [
        line for line in latin if not line.startswith("\u200f")]


# --- words a native reader expects -------------------------------------------------------------


def test_reviewed_wording() -> None:
    zh, header = MESSAGES["zh"], PLURALS["zh"]["digest.header"][0]
    assert "汇总" in header and "摘要" not in header
    for key in ("settings.mode.digest", "settings.mode.priority", "digest.usage"):
        assert "汇总" in zh[key] and "摘要" not in zh[key], key
    assert "摘要" in zh["lang.done"], "briefs stay 摘要"
    assert "oder per Befehl" in MESSAGES["de"]["settings.text"]
    assert "oder so" not in MESSAGES["de"]["settings.text"]
    assert "見守り" not in MESSAGES["ja"]["start.welcome"]
    assert MESSAGES["ja"]["brief.tracking"] == "追跡推奨度"


@pytest.mark.parametrize("language", sorted(MESSAGES))
def test_offline_briefs_are_named_as_excerpts_not_as_no_connection(language: str) -> None:
    """"Offline" reads as "no internet connection" (sin conexión, دون اتصال) to readers."""
    for key in ("stats.text", "llm.budget_spent"):
        text = re.sub(r"\{[a-z_]+\}", "", MESSAGES[language][key]).lower()
        for word in ("offline", "sin conexión", "دون اتصال", "hors ligne", "离线", "オフライン",
                     "офлайн"):
            assert word not in text, (key, word)


def test_help_lists_every_registered_command() -> None:
    """Readers see the reader commands; admins see every command a handler is registered for."""
    from telegram.ext import CommandHandler

    from handlers import ADMIN_COMMANDS, READER_COMMANDS, all_handlers
    from handlers.ratelimit import RateLimit

    registered = {name for group in all_handlers(RateLimit(0)).values() for handler in group
                  if isinstance(handler, CommandHandler) for name in handler.commands}
    assert registered == {*READER_COMMANDS, *ADMIN_COMMANDS}
    for language in MESSAGES:
        admin = Safe("\n\n" + catalog.text(language, "help.admin"))
        reader_help = parse_html(catalog.text(language, "help.text", admin=""))
        admin_help = parse_html(catalog.text(language, "help.text", admin=admin))
        for name in registered:
            assert re.search(rf"/{name}\b", admin_help), (language, name)
            shown = re.search(rf"/{name}\b", reader_help) is not None
            assert shown == (name in READER_COMMANDS), (language, name)
