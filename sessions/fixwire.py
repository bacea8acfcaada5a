"""FIX tag=value text, in and out, without a quickfix call per field.

quickfix's Python bindings pay for every call across the binding: building a message with
one ``setField`` per tag costs about a microsecond a field, while ``fix.Message(text, dd,
False)`` parses a whole message in one call. So outgoing messages are composed here as text
and handed to quickfix once, and incoming ones are read from ``toString()`` once.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable
from decimal import Decimal

SOH = "\x01"
BEGIN_STRING = "FIX.4.4"

Field = tuple[int, object]


def encode(msg_type: str, fields: Iterable[Field], begin_string: str = BEGIN_STRING) -> str:
    """Message text with placeholder BodyLength and CheckSum.

    quickfix fills in the header (CompIDs, MsgSeqNum, SendingTime) and recomputes BodyLength
    and CheckSum when it sends, so only the body matters here. Fields whose value is None
    are left out, which keeps optional tags out of the callers' way.
    """
    body = "".join([f"{tag}={value}\x01" for tag, value in fields if value is not None])
    return f"8={begin_string}\x019=0\x0135={msg_type}\x01{body}10=000\x01"


def parse(text: str) -> list[tuple[int, str]]:
    """Every field in order, repeating groups included, as (tag, value)."""
    out: list[tuple[int, str]] = []
    for part in text.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            out.append((int(tag), value))
    return out


class MissingTag(ValueError):
    """A tag the receiver needs that the FIX 4.4 dictionary leaves optional for the message
    type, so quickfix let the message through; ``tag`` is for the Reject's RefTagID."""

    def __init__(self, message: str, tag: int) -> None:
        super().__init__(message)
        self.tag = tag


class Tags(dict[int, str]):
    """A message's tags by number; reading one that is not there raises :class:`MissingTag`
    (a ``KeyError`` would be caught as a bug and leave the sender unanswered)."""

    def __missing__(self, tag: int) -> str:
        raise MissingTag(f"required tag {tag} is missing", tag)


def not_utf8(text: str, fields: list[tuple[int, str]]) -> int | None:
    """The first tag whose value was not UTF-8 on the wire (quickfix hands such bytes to
    Python as lone surrogates, which nothing downstream can encode), or None."""
    if text.isascii():
        return None
    for tag, value in fields:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return tag
    return None


def flat(fields: list[tuple[int, str]]) -> dict[int, str]:
    """Tag -> value for the first occurrence of each tag (outside groups that is the one)."""
    out: dict[int, str] = {}
    for tag, value in fields:
        out.setdefault(tag, value)
    return out


_last_second: tuple[int, str] = (-1, "")


def utc_timestamp(ns: int, digits: int = 6) -> str:
    """FIX UTCTimestamp ``YYYYMMDD-HH:MM:SS.ffffff`` from integer nanoseconds."""
    global _last_second
    secs, frac = divmod(ns, 1_000_000_000)
    # Every message out carries one or two of these, nearly all in the same second as the
    # last: the formatted second is kept (one tuple, replaced whole, so any thread may read it).
    last = _last_second
    if last[0] == secs:
        stamp = last[1]
    else:
        stamp = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(secs))
        _last_second = (secs, stamp)
    if digits <= 0:
        return stamp
    return f"{stamp}.{frac:09d}"[: len(stamp) + 1 + digits]


def parse_utc_timestamp(text: str) -> int:
    """Integer nanoseconds from a FIX UTCTimestamp with 0, 3, 6 or 9 fractional digits."""
    if len(text) < 17 or text[8] != "-":
        raise ValueError(f"not a FIX UTCTimestamp: {text!r}")
    secs = calendar.timegm(
        (
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[9:11]),
            int(text[12:14]),
            int(text[15:17]),
            0,
            0,
            0,
        )
    )
    frac = text[18:] if len(text) > 18 else ""
    return secs * 1_000_000_000 + (int(frac.ljust(9, "0")[:9]) if frac else 0)


def decimal_text(value: Decimal) -> str:
    """A price or quantity as FIX text: plain notation, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"
