"""The catalogue: every language complete, every key used by the code present, valid HTML."""

from __future__ import annotations

import ast
import re
import string
import typing
from collections import Counter
from pathlib import Path

import pytest

from locales import FALLBACK, Safe, catalog
from news.briefs import Impact, Level
from tests.fakes.telegram_html import parse_html, utf16_len

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(REPO / "handlers").rglob("*.py"), *(REPO / "news").rglob("*.py"),
                  *(REPO / "jobs").rglob("*.py"), REPO / "bot.py"])
KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
PREFIX = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.")
CALLS = {"reply", "text", "t", "has"}
MESSAGES = {language: dict(catalog._messages[language]) for language in catalog.languages}
ENGLISH = MESSAGES[FALLBACK]
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


@pytest.mark.parametrize("language", sorted(MESSAGES))
def test_same_placeholders_and_markup_as_english(language: str) -> None:
    for key, template in MESSAGES[language].items():
        assert placeholders(template) == placeholders(ENGLISH[key]), key
        assert tags(template) == tags(ENGLISH[key]), key


@pytest.mark.parametrize("language", sorted(MESSAGES))
def test_every_message_is_valid_telegram_html(language: str) -> None:
    for key, template in MESSAGES[language].items():
        names = placeholders(template)
        message = catalog.text(language, key, **dict.fromkeys(names, SAMPLE))
        text = parse_html(message)  # raises on bad markup
        assert 0 < utf16_len(text) <= 4096, key
        if names:
            assert SAMPLE in text, key  # values are escaped, and shown as given


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
    for language, messages in MESSAGES.items():
        assert key in messages, f"{key} missing in {language}"


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
    for code in [*codes, "not_a_feed"]:
        for language, messages in MESSAGES.items():
            assert f"fetch.error.{code}" in messages, language


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
