"""Feed bytes -> UTF-8 bytes the XML parsers may see, or a refusal: no DTD subset, no entities.

Entity declarations are how a small feed expands to gigabytes (billion laughs, or one flat
entity referenced many times, which feedparser deems "safe" and keeps), and feeds never need
them. Looking for them in the raw bytes misses every encoding that is not ASCII-compatible
(UTF-16 hides `<!ENTITY` between zero bytes), so the body is decoded first, exactly as the
parser will then read it: the text that was checked is the text that gets parsed. The scan
is a few str.find calls per markup declaration, linear in the size of the body.

The encoding is decided here, once: a byte order mark or the XML 1.0 appendix F sniff, else
the leading XML declaration, else UTF-8 and the usual fallbacks. feedparser would decide
again, and by a looser rule (any `encoding=` in any processing instruction on the first line,
the last one winning, even past a `?>` inside quotes), so it is handed the checked text as
UTF-8 under a first line of our own, where its rule can find nothing else. Encodings no feed
uses, which can hide markup from a scan (UTF-7, the Python escape codecs, codecs that are not
text encodings), are refused wherever on the first line they are named.
"""

from __future__ import annotations

import codecs
import re

# (prefix, encoding, bytes to drop): byte order marks first, then the first characters of a
# document that opens with `<` in encodings that are not ASCII-compatible (XML 1.0 appendix F)
_SNIFFED: tuple[tuple[bytes, str, int], ...] = (
    (codecs.BOM_UTF32_BE, "utf-32-be", 4),
    (codecs.BOM_UTF32_LE, "utf-32-le", 4),
    (codecs.BOM_UTF8, "utf-8", 3),
    (codecs.BOM_UTF16_BE, "utf-16-be", 2),
    (codecs.BOM_UTF16_LE, "utf-16-le", 2),
    (b"\x00\x00\x00<", "utf-32-be", 0),
    (b"<\x00\x00\x00", "utf-32-le", 0),
    (b"\x00<", "utf-16-be", 0),
    (b"<\x00", "utf-16-le", 0),
    (b"\x4c\x6f\xa7\x94", "cp037", 0),  # `<?xm` in EBCDIC
)
# What feedparser tries when the declared encoding fails; latin-1 decodes anything.
_FALLBACKS = ("utf-8", "windows-1252", "latin-1")
# Text codecs no feed is written in: they turn innocent bytes into markup (UTF-7's `+ADw-` is
# `<`, unicode_escape's `\\x3c` too), or their decoders are quadratic (punycode, idna).
# codecs.lookup's names, with `-` as `_`; codecs that are not text encodings are refused too.
_NOT_DOCUMENT_CODECS = frozenset({"punycode", "idna", "unicode_escape", "raw_unicode_escape",
                                  "undefined", "utf_7"})
# Our first line: feedparser's encoding rule reads only the first line, so it reads this one.
_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
_NAMED = re.compile(r"""encoding\s*=\s*["']([^"'\n]*)["']""")  # as feedparser's rule finds it
_XML_DECLARATION = re.compile(r"<\?xml(?=[\s?])")
_MATTERS = re.compile("[\"'\\[>]")  # what ends a declaration or opens a quoted literal
_PI_MATTERS = re.compile("\\?>|[\"']")  # what ends a declaration or opens a quoted value
# Fixed strings (or a choice of them), so a search costs a constant per character scanned.
_ENTITY = re.compile("<!ENTITY", re.IGNORECASE)
_DOCTYPE = re.compile("<!DOCTYPE", re.IGNORECASE)
_BODY_MARKUP = re.compile(r"<!(?:\[CDATA\[|--|(?i:ENTITY))")  # CDATA is case-sensitive
_TAG_LIKE = re.compile("<[A-Za-z0-9_]")  # where feedparser thinks the root element starts
_HEAD = 1024  # an XML declaration is far shorter; no need to look further for its encoding


class RefusedXml(ValueError):
    """The document declares a DTD internal subset or an entity; the message says which."""


class RefusedEncoding(RefusedXml):
    """The document names an encoding no feed uses (`encoding` is codecs.lookup's name)."""

    def __init__(self, encoding: str) -> None:
        super().__init__(f"declares the encoding {encoding}")
        self.encoding = encoding


def as_utf8(body: bytes) -> bytes:
    """The body as UTF-8 under our own XML declaration, exactly as it was checked; raises
    RefusedXml for DTDs and entities, RefusedEncoding for encodings no feed uses."""
    text = _DECLARATION + _without_declaration(decoded(body))
    utf8 = text.encode("utf-8", "replace")  # a lone surrogate becomes `?`: check what is sent
    refuse_declarations(utf8.decode("utf-8"))
    return utf8


def _without_declaration(text: str) -> str:
    """The text without the XML declaration it opens with (blank lines before it too), which
    ours replaces; the declaration ends at the first `?>` outside its quoted values."""
    stripped = text.lstrip()
    if not _XML_DECLARATION.match(stripped):
        return text
    position = 5
    while (found := _PI_MATTERS.search(stripped, position)) is not None:
        if found.group() == "?>":
            return stripped[found.end():]
        close = stripped.find(found.group(), found.end())
        if close < 0:
            break
        position = close + 1
    end = stripped.find("?>")  # an unclosed quote: the first `?>` ends it, as a parser would
    return text if end < 0 else stripped[end + 2:]


def decoded(body: bytes) -> str:
    """The body as text: byte order mark or sniffed encoding first, then the one the XML
    declaration names (blank space before it allowed), then UTF-8, Windows-1252 and Latin-1.
    Raises RefusedEncoding when the first line names an encoding no feed uses, anywhere."""
    for prefix, encoding, skip in _SNIFFED:
        if body.startswith(prefix):
            if encoding == "cp037":  # EBCDIC has variants: its declaration says which
                encoding = _declared_encoding(body[:_HEAD].decode(encoding)) or encoding
            # the mark or the zero bytes are strong evidence: a damaged character is replaced
            text = body[skip:].decode(encoding, "replace")
            _declared_encoding(text[:_HEAD])  # not used, but refused all the same
            return text
    declared = _declared_encoding(body[:_HEAD].decode("latin-1"))
    for encoding in ((declared,) if declared else ()) + _FALLBACKS:
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _declared_encoding(head: str) -> str | None:
    """The encoding the leading XML declaration names, if Python knows it; raises
    RefusedEncoding if it names one no feed uses, or if another processing instruction on the
    first line does (where feedparser's rule would have looked)."""
    head = head.lstrip()
    if not head.startswith("<?"):
        return None
    declaration = ""
    if _XML_DECLARATION.match(head):
        declaration = head[:len(head) - len(_without_declaration(head))] or head
    declared = None
    for found in _NAMED.finditer(declaration + "\n" + head.partition("\n")[0]):
        codec = _codec(found.group(1))
        if codec is not None and not _is_document_codec(codec):
            raise RefusedEncoding(codec)
        if found.start() < len(declaration):
            declared = declared or codec
    return declared


def _codec(name: str) -> str | None:
    """codecs.lookup's name for an encoding name, None for one Python does not know."""
    try:
        return codecs.lookup(name.strip()).name
    except (LookupError, ValueError):
        return None


def _is_document_codec(codec: str) -> bool:
    """Whether documents may be written in the codec: a text encoding, and not one refused."""
    return (codecs.lookup(codec)._is_text_encoding
            and codec.replace("-", "_") not in _NOT_DOCUMENT_CODECS)


def refuse_declarations(text: str) -> None:
    """Raise RefusedXml if the text declares an entity, or a DOCTYPE with an internal subset
    before the root element. Comments and CDATA inside the root element are skipped (an
    article about XML may quote `<!ENTITY`); before the root everything counts, because
    feedparser collects entity declarations from the whole prolog, comments too. A stray
    DOCTYPE after the root is left to the parsers: it can declare nothing we let through."""
    root = _root_start(text)
    _refuse_in_prolog(text[:root])
    position = root
    while (found := _BODY_MARKUP.search(text, position)) is not None:
        opening = found.group().upper()
        if found.group() == "<![CDATA[":
            end = text.find("]]>", found.end())
            position = len(text) if end < 0 else end + 3
        elif opening == "<!--":
            end = text.find("-->", found.end())
            position = len(text) if end < 0 else end + 3
        else:
            raise RefusedXml("entity declaration")


def _root_start(text: str) -> int:
    """Where the root element starts: past declarations, comments, PIs and the DOCTYPE, and
    past the first `<` and ASCII word character (where feedparser thinks it starts), if later."""
    position = 0
    while True:
        start = text.find("<", position)
        if start < 0:
            root = len(text)
            break
        if text.startswith("<?", start):
            end = text.find("?>", start + 2)
            position = len(text) if end < 0 else end + 2
        elif text.startswith("<!--", start):
            end = text.find("-->", start + 4)
            position = len(text) if end < 0 else end + 3
        elif text.startswith("<!", start):
            position = _declaration_end(text, start)
        else:
            root = start
            break
    naive = _TAG_LIKE.search(text)
    return max(root, len(text) if naive is None else naive.start())


def _declaration_end(text: str, start: int) -> int:
    """The index just past a `<!...>` declaration in the prolog, quoted literals skipped; an
    internal subset (`[`) ends the scan at once, as the prolog check refuses it."""
    position = start + 2
    while position < len(text):
        char = text[position]
        if char in "\"'":
            end = text.find(char, position + 1)
            position = len(text) if end < 0 else end + 1
            continue
        if char in "[>":
            return position + 1
        found = _MATTERS.search(text, position)  # one character class: it cannot backtrack
        position = len(text) if found is None else found.start()
    return position


def _refuse_in_prolog(prolog: str) -> None:
    """Everything before the root element: no entity at all, even in a comment or a quoted
    literal (feedparser's own prolog regex sees those), and no DOCTYPE internal subset."""
    if _ENTITY.search(prolog):
        raise RefusedXml("entity declaration")
    position = 0
    while (found := _DOCTYPE.search(prolog, position)) is not None:
        position = _declaration_end(prolog, found.start())
        if prolog[position - 1:position] == "[":
            raise RefusedXml("DTD internal subset")
