"""Which language a text is written in, with py3langid (a maintained fork of langid.py)."""

from __future__ import annotations

from functools import cache

from babel import Locale, UnknownLocaleError
from py3langid.langid import LanguageIdentifier, _load_identifier

# langid labels Chinese varieties apart; for a brief they are all "Chinese".
_FAMILY = {"wuu": "zh", "yue": "zh", "nb": "no", "nn": "no", "ms": "id"}
MIN_CHARS = 24


@cache
def _identifier() -> LanguageIdentifier:
    return _load_identifier()


def base(code: str) -> str:
    """`zh-Hans` -> `zh`: detection works on languages, not scripts or regions."""
    short = code.split("-")[0].split("_")[0].lower()
    return _FAMILY.get(short, short)


def probably_in(text: str, language: str, *, top: int = 3) -> bool:
    """False only when the text is long enough and `language` is not among the likely ones."""
    wanted = base(language)
    if len(text.strip()) < MIN_CHARS or wanted not in {base(label) for label in _labels()}:
        return True
    ranked = [base(label) for label, _score in _identifier().rank(text)[:top]]
    return wanted in ranked


@cache
def _labels() -> tuple[str, ...]:
    return tuple(_identifier().nb_classes)


@cache
def is_rtl(code: str) -> bool:
    """Arabic, Hebrew, Persian…: their paragraphs must start right to left in Telegram."""
    try:
        return bool(Locale.parse(base(code)).character_order == "right-to-left")
    except (UnknownLocaleError, ValueError):
        return False
