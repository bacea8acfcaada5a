"""``--from`` / ``--to`` as an operator types them, turned into integer ns (UTC).

Accepted: a date (``2024-06-01``), a date and time (``2024-06-01T09:30``,
``2024-06-01 09:30:00.123456789``) with an optional ``Z`` or ``±HH:MM`` offset (UTC when
there is none), or integer nanoseconds since the epoch. ``--from`` is inclusive, ``--to``
exclusive; a date alone as ``--to`` means the end of that day.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

FORMATS_HELP: Final = (
    "YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS[.fraction]] with an optional Z or +HH:MM "
    "(UTC when left out), or integer nanoseconds since 1970-01-01 UTC"
)

_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME: Final = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)"
    r"(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)


class BadInstant(ValueError):
    """Text that is not a time this module understands (the message says what is)."""


def parse_instant(text: str, *, end: bool = False) -> int:
    """``text`` as integer ns UTC; ``end`` makes a bare date mean the end of that day."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        if _DATE.match(value):
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
            if end:
                day += timedelta(days=1)
            return int(day.timestamp()) * 1_000_000_000
        match = _DATETIME.match(value)
        if match is None:
            raise ValueError("no match")
        base = datetime.fromisoformat(match["base"].replace(" ", "T"))
        zone = match["zone"]
        if zone is None or zone == "Z":
            base = base.replace(tzinfo=UTC)
        else:
            base = datetime.fromisoformat(match["base"].replace(" ", "T") + zone)
        fraction = int((match["fraction"] or "").ljust(9, "0"))
        return int(base.timestamp()) * 1_000_000_000 + fraction
    except ValueError:
        raise BadInstant(f"{text!r} is not a time: use {FORMATS_HELP}") from None


def utc_text(ns: int) -> str:
    """Integer ns as ``YYYY-MM-DDTHH:MM:SS.fffffffffZ``."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


class UtcFormatter:
    """:func:`utc_text` for streams of nearby times: the date part is worked out once per
    second, which keeps a million-row export from spending seconds in ``strftime``."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, ns: int) -> str:
        seconds, fraction = divmod(ns, 1_000_000_000)
        if seconds != self._second:
            self._second = seconds
            self._prefix = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        return f"{self._prefix}{fraction:09d}Z"
