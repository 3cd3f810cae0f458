"""The translation catalogue: one gettext `.po` file per language; adding a language is a file."""

from __future__ import annotations

import gettext
import html
import io
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from babel.messages.catalog import Catalog as PoCatalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

if TYPE_CHECKING:
    from storage.errors import StoredError

DOMAIN = "tidings"
FALLBACK = "en"


class Safe(str):
    """Text that is already Telegram HTML and must not be escaped again."""

    __slots__ = ()


def _escaped(values: dict[str, object]) -> dict[str, object]:
    """HTML-escape every value that is not `Safe`."""
    return {
        name: value if isinstance(value, Safe) else html.escape(str(value), quote=False)
        for name, value in values.items()
    }


class Catalog:
    """Keys to text per language, with English as the fallback for anything missing."""

    def __init__(self, directory: Path = Path(__file__).parent) -> None:
        self.directory = directory

    @cached_property
    def _po(self) -> dict[str, PoCatalog]:
        catalogs: dict[str, PoCatalog] = {}
        for path in sorted(self.directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
            with path.open("rb") as handle:
                catalogs[path.parts[-3]] = read_po(handle)
        return catalogs

    @cached_property
    def _messages(self) -> dict[str, dict[str, str]]:
        return {
            language: {
                str(message.id): str(message.string)
                for message in po
                if message.id and message.string and isinstance(message.string, str)
            }
            for language, po in self._po.items()
        }

    @cached_property
    def _plurals(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """Entries with plural forms (msgid_plural), by their msgid: `{count} article(s)`."""
        return {
            language: {
                str(message.id[0]): tuple(str(form) for form in message.string)
                for message in po
                if isinstance(message.string, tuple | list) and all(message.string)
            }
            for language, po in self._po.items()
        }

    @cached_property
    def _gettext(self) -> dict[str, gettext.NullTranslations]:
        """gettext's ngettext per language: the .po compiled to .mo in memory, English behind."""
        translations: dict[str, gettext.NullTranslations] = {}
        for language, po in self._po.items():
            compiled = io.BytesIO()
            write_mo(compiled, po)
            compiled.seek(0)
            translations[language] = gettext.GNUTranslations(compiled)
        english = translations.get(FALLBACK)
        for language, translation in translations.items():
            if english is not None and language != FALLBACK:
                translation.add_fallback(english)
        return translations

    @property
    def languages(self) -> list[str]:
        return sorted(self._messages)

    def resolve(self, code: str | None, default: str = FALLBACK) -> str:
        """Map a Telegram language_code (`zh-hans`, `pt-br`) to a language we have."""
        if code:
            code = code.lower().replace("_", "-")
            if code in self._messages:
                return code
            if code.split("-")[0] in self._messages:
                return code.split("-")[0]
        return default if default in self._messages else FALLBACK

    def text(self, language: str, key: str, **values: object) -> str:
        """The message for `key`, HTML-escaping every value that is not `Safe`."""
        template = self._messages.get(language, {}).get(key)
        if template is None:
            template = self._messages.get(FALLBACK, {}).get(key, key)
        return template.format(**_escaped(values)) if values else template

    def ngettext(self, language: str, key: str, n: int, **values: object) -> str:
        """The plural form of `key` that fits `n` in this language, with `count` set to `n`."""
        translation = self._gettext.get(language) or self._gettext.get(FALLBACK)
        template = translation.ngettext(key, key, n) if translation else key
        return template.format(**_escaped({"count": n, **values}))

    def error(self, language: str, kind: str, error: StoredError | None) -> str:
        """A stored error in plain words, in the reader's language, as HTML: its code keys
        `<kind>.error.<code>` (fetch for sources, delivery for deliveries); a code the
        catalogue lacks (written by an older version) is shown as it was stored."""
        code, detail = (error.code, error.detail) if error else ("", "")
        key = f"{kind}.error.{code}"
        if self.has(FALLBACK, key):
            return self.text(language, key, detail=detail)
        return html.escape(f"{code}: {detail}" if detail else code, quote=False)

    def has(self, language: str, key: str) -> bool:
        return key in self._messages.get(language, {}) or key in self._plurals.get(language, {})



_default: Catalog | None = None


def __getattr__(name: str) -> Catalog:
    """`locales.catalog`, the catalogue tests and benches share, read on first use: importing
    locales builds nothing. The bot builds its own (app.py) and keeps it in services.Services."""
    global _default
    if name != "catalog":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _default is None:
        _default = Catalog()
    return _default
