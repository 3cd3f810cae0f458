"""Why a source or a delivery last failed: a catalogue code and its detail, kept in two
columns (`error_code`, `error_detail`) so that no reader has to split a string."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

DETAIL_LIMIT = 500  # a detail is a server's words or an exception's repr: bounded, not trusted


@dataclass(frozen=True)
class StoredError:
    """`code` keys `<kind>.error.<code>` in the catalogue; `detail` fills its `{detail}`."""

    code: str
    detail: str = ""


class Failing(Protocol):
    """A row that remembers its last error: a source or a delivery."""

    error_code: str | None
    error_detail: str | None


def stored(code: str | None, detail: str | None) -> StoredError | None:
    """The one way the two columns are read back: no code, no error."""
    return None if code is None else StoredError(code, detail or "")


def last_error(row: Failing) -> StoredError | None:
    return stored(row.error_code, row.error_detail)


def record(row: Failing, error: StoredError | None) -> None:
    """Remember `error` on the row, or forget the last one with None."""
    row.error_code = None if error is None else error.code
    row.error_detail = None if error is None else error.detail[:DETAIL_LIMIT]
