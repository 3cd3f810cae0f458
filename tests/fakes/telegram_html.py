"""Validator for Telegram's HTML parse mode, modelled on tdlib's `parse_html`.

Telegram rejects a whole message when its HTML is off, which is easy to miss with hand-written
markup and user-supplied strings (feed titles with `<` or `&`). The fake runs every HTML text
through this so such bugs fail tests instead of production sends.

Deliberately stricter than the server on one point: Telegram keeps a stray `&` or an unknown
entity such as `&nbsp;` literally, but the docs demand escaping, so here they are errors.
"""

from __future__ import annotations

import re
from typing import Any

# tag -> MessageEntity type
TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic",
    "u": "underline", "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
    "del": "strikethrough", "span": "spoiler", "tg-spoiler": "spoiler", "a": "text_link",
    "code": "code", "pre": "pre", "blockquote": "blockquote", "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}  # fmt: skip
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8})|([A-Za-z][A-Za-z0-9]*));")
_SPACE = " \t\r\n\f\v"
_MARKUP = re.compile("[&<]")


class TelegramHtmlError(ValueError):
    """Raised with a message shaped like the server's `Can't parse entities: ...`."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit Telegram uses for limits and entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _fail(text: str, pos: int | None, message: str, tail: str = "") -> TelegramHtmlError:
    """Build the error; `pos` is a str index, reported as a UTF-8 byte offset like the server."""
    where = "" if pos is None else f" at byte offset {len(text[:pos].encode())}"
    return TelegramHtmlError(f"Can't parse entities: {message}{where}{tail}")


def _entity(text: str, pos: int) -> tuple[str, int]:
    """Decode the entity at `pos` (which holds '&'); return (character, index after it)."""
    m = _ENTITY.match(text, pos)
    if m is None:
        raise _fail(text, pos, 'Character "&" must be escaped as "&amp;"')
    if m[3] is not None:
        if m[3] not in NAMED_ENTITIES:
            raise _fail(text, pos, f'Unsupported HTML entity "{m[0]}"')
        return NAMED_ENTITIES[m[3]], m.end()
    code = int(m[1], 10) if m[1] is not None else int(m[2], 16)
    if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise _fail(text, pos, f'Invalid character reference "{m[0]}"')
    return chr(code), m.end()


def _attributes(text: str, i: int, tag: str, start: int) -> tuple[dict[str, str], int]:
    """Parse attributes up to '>' the way tdlib does; return them and the index after '>'."""
    attrs: dict[str, str] = {}
    n = len(text)
    while True:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            raise _fail(text, start, f'Unclosed start tag "{tag}"')
        if text[i] == ">":
            return attrs, i + 1
        name_start = i
        while i < n and text[i] not in _SPACE and text[i] not in "=>":
            i += 1
        name = text[name_start:i].lower()
        if not name:
            raise _fail(text, start, f'Empty attribute name in the tag "{tag}"')
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n or text[i] != "=":
            if tag == "blockquote" and name == "expandable":
                attrs[name] = ""
                continue
            raise _fail(text, start, f'Expected equal sign in declaration of an attribute of the '
                                     f'tag "{tag}"')  # fmt: skip
        i += 1
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            raise _fail(text, start, f'Unclosed start tag "{tag}"')
        if text[i] in "'\"":
            quote, i, value = text[i], i + 1, []
            while i < n and text[i] != quote:
                if text[i] == "&":
                    ch, i = _entity(text, i)
                    value.append(ch)
                else:
                    value.append(text[i])
                    i += 1
            if i >= n:
                raise _fail(text, start, f'Unclosed start tag "{tag}"')
            attrs[name] = "".join(value)
            i += 1
        else:
            token_start = i
            while i < n and (text[i].isalnum() or text[i] in ".-"):
                i += 1
            if i >= n or (text[i] not in _SPACE and text[i] != ">"):
                raise _fail(text, token_start, "Unexpected end of name token")
            attrs[name] = text[token_start:i].lower()


def _argument(text: str, tag: str, attrs: dict[str, str], start: int) -> dict[str, Any]:
    """Turn a start tag's attributes into entity extras, rejecting tags missing what they need."""
    if tag == "span" and attrs.get("class") != "tg-spoiler":
        raise _fail(text, start, 'Tag "span" must have class "tg-spoiler"')
    if tag == "a":
        if "href" not in attrs:
            raise _fail(text, start, 'Tag "a" must have attribute "href"')
        return {"url": attrs["href"]}
    if tag == "code" and attrs.get("class", "").startswith("language-"):
        return {"language": attrs["class"][len("language-") :]}
    if tag == "tg-emoji":
        if not attrs.get("emoji-id", "").isdigit():
            raise _fail(text, start, "Invalid custom emoji identifier specified")
        return {"custom_emoji_id": attrs["emoji-id"]}
    if tag == "tg-time":
        if not attrs.get("unix", "").lstrip("-").isdigit():
            raise _fail(text, start, "Invalid Unix time specified")
        extra: dict[str, Any] = {"unix_time": int(attrs["unix"])}
        if attrs.get("format"):
            extra["date_time_format"] = attrs["format"]
        return extra
    if tag == "blockquote" and "expandable" in attrs:
        return {"type": "expandable_blockquote"}
    return {}


def parse_html_entities(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Return (plain text, MessageEntity dicts with UTF-16 offsets) or raise TelegramHtmlError."""
    out: list[str] = []
    offset = 0  # UTF-16 offset of the end of `out`
    stack: list[tuple[str, int, dict[str, Any]]] = []  # (tag, start offset, entity extras)
    entities: list[dict[str, Any]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "&":
            ch, i = _entity(text, i)
            out.append(ch)
            offset += utf16_len(ch)
        elif c != "<":  # a run of plain text, measured at once: per character was most of
            run = _MARKUP.search(text, i)  # a fan-out's emulator CPU
            end = run.start() if run else n
            out.append(text[i:end])
            offset += utf16_len(text[i:end])
            i = end
        elif i + 1 < n and text[i + 1] == "/":
            start, i = i, i + 2
            while i < n and text[i] not in _SPACE and text[i] != ">":
                i += 1
            name = text[start + 2 : i].lower()
            while i < n and text[i] in _SPACE:
                i += 1
            if i >= n:
                raise _fail(text, start, "Unclosed end tag")
            if not stack:
                raise _fail(text, start, "Unexpected end tag")
            tag, begin, extra = stack.pop()
            if name and name != tag:
                raise _fail(
                    text, start, "Unmatched end tag", f', expected "</{tag}>", found "</{name}>"'
                )
            i += 1
            if tag == "code" and stack and stack[-1][0] == "pre" and "language" in extra:
                stack[-1][2]["language"] = extra["language"]  # <pre><code class=...> is one block
            elif offset > begin:
                kind = extra.pop("type", TAGS[tag])
                entities.append({"type": kind, "offset": begin, "length": offset - begin, **extra})
        else:
            start, i = i, i + 1
            while i < n and text[i] not in _SPACE and text[i] != ">":
                i += 1
            if i >= n:
                raise _fail(text, start, "Unclosed start tag")
            tag = text[start + 1 : i].lower()
            if tag not in TAGS:
                raise _fail(text, start, f'Unsupported start tag "{tag}"')
            attrs, i = _attributes(text, i, tag, start)
            stack.append((tag, offset, _argument(text, tag, attrs, start)))
    if stack:
        raise _fail(text, None, f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def parse_html(text: str) -> str:
    """Plain text Telegram would store for `text` sent with parse_mode=HTML."""
    return parse_html_entities(text)[0]
