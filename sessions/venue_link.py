"""The gateway's FIX sessions to the venues: one initiator session per venue line.

Every line of every venue is a session of one non-threaded ``SocketInitiator``. Both lines
of a venue stay logged on when the venue allows it, so the backup is a hot standby: if the
primary drops, orders go out on the backup at once, with no logon to wait for. Which line
is active, and every change of it, is published to the OMS as ``LineStateChanged``. (When
to switch for reasons other than a lost line, such as latency or rejects, is policy for
later; here the link only knows which lines are up.)

The callbacks decode and post. Market data is subscribed per instrument (one
MarketDataRequest, 35=V, each) on the active line as soon as it is known. Whenever data may
have been lost, the link tells the OMS (``MarketDataGap``: the books go stale) and then asks
again for a fresh snapshot: when the data line changes (a switch, a logout, a reconnect);
when the venue answers a resend with a SequenceReset (35=4), because venues fill market
data with gaps rather than replay it; and when an instrument's RptSeq(83), where the venue's
dialect sends it, jumps. Messages of a subscription that has been replaced are dropped.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oms.clock import now_ns
from oms.commands import Command
from oms.events import (
    LineRole,
    LineState,
    LineStateChanged,
    MarketDataGap,
    MarketDataReceived,
)
from sessions.codec import (
    Decoded,
    DecodeError,
    decode,
    encode_command,
    market_data_cancel,
    market_data_request,
)
from sessions.fixengine import (
    FixEngine,
    GuardedApplication,
    build_settings,
    common_defaults,
    data_dictionary,
    owned_session_id,
    send_text,
    session_key,
)
from sessions.fixwire import flat, parse
from sessions.gateway_config import GatewayConfig, GatewayVenue, LineConfig

log = logging.getLogger("cmc.sessions")

Post = Callable[[Decoded | LineStateChanged | MarketDataGap], None]


class RptSeqWatch:
    """Each instrument's next RptSeq(83) on one line, where the venue sends it.

    A snapshot starts an instrument afresh (FIX 4.4 has no RptSeq on W): the next update
    sets where it stands. An update numbered beyond the next one expected means updates
    were lost; one numbered below it is a replay already applied, and is let through (the
    book's levels are stated afresh by each update).
    """

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def forget(self, symbol: str | None = None) -> None:
        if symbol is None:
            self._next.clear()
        else:
            self._next.pop(symbol, None)

    def gaps(self, event: MarketDataReceived) -> list[str]:
        """What jumped in ``event`` (empty when nothing did); the watch moves past it."""
        expected = self._next
        if event.snapshot and event.snapshot_symbol is not None:
            expected.pop(event.snapshot_symbol, None)
        gaps: list[str] = []
        for entry in event.entries:
            if entry.rpt_seq is None:
                continue
            wanted = expected.get(entry.symbol)
            if wanted is not None and entry.rpt_seq > wanted:
                gaps.append(f"{entry.symbol} RptSeq {entry.rpt_seq}, expected {wanted}")
            expected[entry.symbol] = entry.rpt_seq + 1
        return gaps


@dataclass
class Line:
    venue: str
    config: LineConfig
    session_id: Any
    logged_on: bool = False
    md_req_ids: dict[str, str] = field(default_factory=dict)  # symbol -> its live MDReqID
    md_symbols: dict[str, str] = field(default_factory=dict)  # MDReqID -> symbol
    rpt_seq: RptSeqWatch = field(default_factory=RptSeqWatch)

    @property
    def role(self) -> LineRole:
        return self.config.role

    @property
    def key(self) -> str:
        return session_key(self.config.sender_comp_id, self.config.target_comp_id)


class VenueLink:
    """The lines of one venue and which of them orders go out on."""

    def __init__(self, venue: GatewayVenue) -> None:
        self.venue = venue
        self.lines = {
            c.role: Line(venue.id, c, owned_session_id(c.sender_comp_id, c.target_comp_id))
            for c in venue.lines
        }
        self.active: LineRole | None = None

    def choose_active(self) -> LineRole | None:
        """The primary when it is up, else the backup when it is up, else none."""
        for role in (LineRole.PRIMARY, LineRole.BACKUP):
            line = self.lines.get(role)
            if line is not None and line.logged_on:
                return role
        return None


class GatewayApplication(GuardedApplication):
    def __init__(self, sessions: GatewaySessions) -> None:
        super().__init__()
        self._sessions = sessions

    def on_logon(self, session: str) -> None:
        self._sessions._line_changed(session, logged_on=True)

    def on_logout(self, session: str) -> None:
        self._sessions._line_changed(session, logged_on=False)

    def on_from_app(self, message: Any, session: str) -> None:
        self._sessions._received(message.toString(), session)

    def on_from_admin(self, message: Any, session: str) -> None:
        msg_type = message.getHeader().getField(35)
        if msg_type == "3":
            self._sessions._received(message.toString(), session)
        elif msg_type == "4":
            self._sessions._sequence_reset(message.toString(), session)


class GatewaySessions:
    def __init__(self, config: GatewayConfig, post: Post) -> None:
        self._post = post
        self.links = {v.id: VenueLink(v) for v in config.venues}
        self._by_key: dict[str, tuple[VenueLink, Line]] = {
            line.key: (link, line) for link in self.links.values() for line in link.lines.values()
        }
        self._lock = threading.Lock()  # guards line state between quickfix's callbacks
        self._md_ids = itertools.count(1)
        self._dd = data_dictionary()
        default = common_defaults(config.store_dir, heartbeat_s=config.heartbeat_s)
        default |= {
            "ConnectionType": "initiator",
            "ReconnectInterval": config.reconnect_s,
            # Sequence numbers stay in the FileStore, but not the messages: a venue's resend
            # request is answered with a gap fill, never by replaying an old order, which a
            # venue could execute late. Every message sent is in the receipt store instead.
            # (Writing each body to the store also cost 40-60 µs per order on the hot path.)
            "PersistMessages": False,
        }
        sessions: list[dict[str, str | int | bool | Path]] = [
            {
                "SenderCompID": line.config.sender_comp_id,
                "TargetCompID": line.config.target_comp_id,
                "SocketConnectHost": line.config.host,
                "SocketConnectPort": line.config.port,
            }
            for link in self.links.values()
            for line in link.lines.values()
        ]
        self.application = GatewayApplication(self)
        self._engine = FixEngine(
            self.application, build_settings(default, sessions), acceptor=False, file_store=True
        )

    def start(self) -> None:
        self._engine.start()

    def stop(self) -> None:
        self._engine.stop(reason="gateway shutting down")

    def send(self, command: Command) -> bool:
        """Send on the venue's active line. False when no line of the venue is up.

        Runs on the OMS thread: the text is built here and quickfix is called once.
        """
        link = self.links.get(command.venue)
        if link is None or link.active is None:
            return False
        line = link.lines[link.active]
        return send_text(encode_command(command), line.session_id, self._dd)

    def active_lines(self) -> dict[str, LineRole | None]:
        return {venue: link.active for venue, link in self.links.items()}

    # -- quickfix's thread ----------------------------------------------------------------

    def _received(self, text: str, session: str) -> None:
        recv_ns = now_ns()
        found = self._by_key.get(session)
        if found is None:
            return
        link, line = found
        try:
            event = decode(text, link.venue.id, line.role, recv_ns)
        except (DecodeError, KeyError, ValueError) as exc:
            log.error(
                "%s %s: cannot use message (%s): %s",
                link.venue.id,
                line.role.value,
                exc,
                text.replace("\x01", "|"),
            )
            return
        if isinstance(event, MarketDataReceived):
            if link.active is not line.role:
                return  # a line that is no longer active may still stream until unsubscribed
            if not self._in_sequence(link, line, event):
                return
        elif event is None:
            if "\x0135=Y\x01" in text:
                log.warning(
                    "%s %s: market data request rejected: %s",
                    link.venue.id,
                    line.role.value,
                    text.replace("\x01", "|"),
                )
            return
        self._post(event)

    def _in_sequence(self, link: VenueLink, line: Line, event: MarketDataReceived) -> bool:
        """Whether a market-data message belongs to a live subscription and follows the
        last one; on a RptSeq jump, the instrument is re-subscribed and the message dropped."""
        if event.md_req_id is not None and event.md_req_id not in line.md_symbols:
            return False  # a replaced subscription's message, still on its way
        gaps = line.rpt_seq.gaps(event)
        if not gaps:
            return True
        symbols = sorted({e.symbol for e in event.entries})
        self._resubscribe(link, line, symbols, "; ".join(gaps))
        return False

    def _sequence_reset(self, text: str, session: str) -> None:
        """The venue skipped sequence numbers (35=4): whatever they were, they will not come,
        and market data among them would leave our books behind."""
        found = self._by_key.get(session)
        if found is None:
            return
        link, line = found
        if link.active is not line.role or not line.md_req_ids:
            return
        tags = flat(parse(text))
        reason = (
            f"sequence reset from {tags.get(34, '?')} to {tags.get(36, '?')}"
            f"{' (gap fill)' if tags.get(123) == 'Y' else ''}"
        )
        self._resubscribe(link, line, list(line.md_req_ids), reason)

    def _resubscribe(self, link: VenueLink, line: Line, symbols: list[str], reason: str) -> None:
        """Stale first (the OMS hears of it before any fresh snapshot can arrive), then a
        new subscription per instrument."""
        log.warning(
            "%s %s: market data for %s may be lost (%s); re-subscribing",
            link.venue.id,
            line.role.value,
            ",".join(symbols),
            reason,
        )
        self._post(MarketDataGap(link.venue.id, line.role, tuple(symbols), reason, now_ns()))
        self._subscribe(link, line, symbols)

    def _line_changed(self, session: str, *, logged_on: bool) -> None:
        found = self._by_key.get(session)
        if found is None:
            return
        link, line = found
        with self._lock:
            line.logged_on = logged_on
            before = link.active
            link.active = link.choose_active()
            switched = link.active != before
        log.info(
            "%s %s line %s; active line: %s",
            link.venue.id,
            line.role.value,
            "logged on" if logged_on else "logged out",
            link.active.value if link.active else "none",
        )
        if not logged_on:  # the venue forgets a session's subscriptions when it ends
            self._forget_subscriptions(line)
        if switched and before is not None:
            after = link.active.value if link.active else "none"
            self._post(
                MarketDataGap(
                    link.venue.id,
                    before,
                    (),
                    f"market data line {before.value} -> {after}",
                    now_ns(),
                )
            )
        if switched and before is not None and link.lines[before].logged_on:
            self._unsubscribe(link.lines[before])
        if switched and link.active is not None:
            self._subscribe(link, link.lines[link.active])
        self._post(
            LineStateChanged(
                venue=link.venue.id,
                line=line.role,
                state=LineState.LOGGED_ON if logged_on else LineState.LOGGED_OUT,
                active=link.active,
                recv_ns=now_ns(),
            )
        )

    def _subscribe(self, link: VenueLink, line: Line, symbols: Iterable[str] | None = None) -> None:
        """One subscription per instrument (all of the venue's by default), replacing any
        the line had for it: the venue answers each with a snapshot, then updates."""
        for symbol in symbols or [i.symbol for i in link.venue.instruments]:
            old = line.md_req_ids.pop(symbol, None)
            if old is not None:
                line.md_symbols.pop(old, None)
                send_text(market_data_cancel(old), line.session_id, self._dd)
            md_req_id = f"{link.venue.id}-{line.role.value}-{next(self._md_ids)}"
            line.md_req_ids[symbol] = md_req_id
            line.md_symbols[md_req_id] = symbol
            line.rpt_seq.forget(symbol)
            text = market_data_request(md_req_id, [symbol], link.venue.market_data_depth)
            send_text(text, line.session_id, self._dd)

    def _unsubscribe(self, line: Line) -> None:
        for md_req_id in line.md_symbols:
            send_text(market_data_cancel(md_req_id), line.session_id, self._dd)
        self._forget_subscriptions(line)

    @staticmethod
    def _forget_subscriptions(line: Line) -> None:
        line.md_req_ids.clear()
        line.md_symbols.clear()
        line.rpt_seq.forget()
