"""Reading the message logs quickfix writes (``FileLogFactory``): one line per message.

A line is ``YYYYMMDD-HH:MM:SS.fffffffff : 8=FIX.4.4<SOH>...<SOH>10=nnn<SOH>``, both
directions in one ``<BeginString>-<Sender>-<Target>.messages.current.log`` per session;
which way a message went is read from its SenderCompID (49) and TargetCompID (56). The
project reads the text only: ``oms`` never imports quickfix.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SOH: Final = "\x01"
MESSAGES_GLOB: Final = "*.messages.current.log"
_KEPT_TAGS: Final = frozenset(
    {"8", "11", "17", "34", "35", "37", "43", "49", "52", "55", "56", "790"}
)


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    """One message as quickfix logged it."""

    file: str
    offset: int
    """Byte offset of its line in the file."""
    logged_ns: int
    """When quickfix logged it (UTC ns)."""
    text: str
    tags: Mapping[int, str]
    """The header tags and the few ids reconciliation uses (first occurrence of each)."""

    @property
    def msg_type(self) -> str:
        return self.tags.get(35, "")


def header_tags(text: str) -> dict[int, str]:
    """The tags reconciliation reads from a FIX message's text."""
    tags: dict[int, str] = {}
    for item in text.split(SOH):
        tag, sep, value = item.partition("=")
        if sep and tag in _KEPT_TAGS:
            tags.setdefault(int(tag), value)
    return tags


def fix_time_ns(text: str) -> int:
    """``YYYYMMDD-HH:MM:SS[.fraction]`` (UTC, up to 9 fraction digits) as integer ns."""
    stamp, _, fraction = text.partition(".")
    if len(stamp) != 17 or stamp[8] != "-" or (fraction and not fraction.isdigit()):
        raise ValueError(f"not a FIX UTC timestamp: {text!r}")
    seconds = calendar.timegm(
        (
            int(stamp[0:4]),
            int(stamp[4:6]),
            int(stamp[6:8]),
            int(stamp[9:11]),
            int(stamp[12:14]),
            int(stamp[15:17]),
            0,
            0,
            0,
        )
    )
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)


def message_files(directory: Path) -> list[Path]:
    """The per-session message logs in ``directory`` (quickfix's GLOBAL log left out)."""
    return sorted(p for p in directory.glob(MESSAGES_GLOB) if not p.name.startswith("GLOBAL."))


def read_messages(
    directory: Path, offsets: Mapping[str, int] | None = None
) -> tuple[list[LoggedMessage], dict[str, int]]:
    """Every message logged in ``directory`` after ``offsets`` (file name -> byte offset),
    and the offsets to start from next time. A file shorter than its offset was started
    afresh and is read from the beginning; a last line without its newline is left for
    next time (quickfix is still writing it)."""
    offsets = offsets or {}
    messages: list[LoggedMessage] = []
    ends: dict[str, int] = {}
    for path in message_files(directory):
        data = path.read_bytes()
        start = offsets.get(path.name, 0)
        if start > len(data):
            start = 0
        position = start
        while position < len(data):
            newline = data.find(b"\n", position)
            if newline < 0:
                break
            line = data[position:newline].decode("utf-8", errors="replace")
            stamp, sep, text = line.partition(" : ")
            if sep and text.startswith("8="):
                messages.append(
                    LoggedMessage(path.name, position, fix_time_ns(stamp), text, header_tags(text))
                )
            position = newline + 1
        ends[path.name] = position
    messages.sort(key=lambda m: m.logged_ns)
    return messages, ends
