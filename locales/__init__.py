"""The translation catalogue: one gettext `.po` file per language; adding a language is a file."""

from __future__ import annotations

import html
from functools import cached_property
from pathlib import Path

from babel.messages.pofile import read_po

DOMAIN = "tidings"
FALLBACK = "en"


class Safe(str):
    """Text that is already Telegram HTML and must not be escaped again."""

    __slots__ = ()


class Catalog:
    """Keys to text per language, with English as the fallback for anything missing."""

    def __init__(self, directory: Path = Path(__file__).parent) -> None:
        self.directory = directory

    @cached_property
    def _messages(self) -> dict[str, dict[str, str]]:
        catalogs: dict[str, dict[str, str]] = {}
        for path in sorted(self.directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
            with path.open("rb") as handle:
                po = read_po(handle)
            catalogs[path.parts[-3]] = {
                str(message.id): str(message.string)
                for message in po
                if message.id and message.string and isinstance(message.string, str)
            }
        return catalogs

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
        escaped = {
            name: value if isinstance(value, Safe) else html.escape(str(value), quote=False)
            for name, value in values.items()
        }
        return template.format(**escaped) if escaped else template

    def fetch_error(self, language: str, stored: str | None) -> str:
        """A source's stored error ("code|detail") in plain words, in the reader's language."""
        code, _, detail = (stored or "").partition("|")
        key = f"fetch.error.{code}"
        if self.has(FALLBACK, key):
            return self.text(language, key, detail=detail)
        return html.escape(stored or "", quote=False)

    def has(self, language: str, key: str) -> bool:
        return key in self._messages.get(language, {})


catalog = Catalog()
