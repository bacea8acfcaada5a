"""The gateway's FIX sessions to the venues: one initiator session per venue line.

Every line of every venue is a session of one non-threaded ``SocketInitiator``. Both lines
of a venue stay logged on when the venue allows it, so the backup is a hot standby: if the
primary drops, orders go out on the backup at once, with no logon to wait for. Which line
is active, and every change of it, is published to the OMS as ``LineStateChanged``.

A line that ends on its own (a lost connection, a refused logon, a heartbeat quickfix's
TestRequest found missing) while it is active fails the venue over, and the orders stay on
the other line until failback: by an operator, or, with the venue's ``failback = "auto"``,
once the primary has been logged on and quiet for ``failback_after_s``. A line an operator
logs out (or resets, or a schedule closes) is no fault: when it is back, it is used again
if it is the preferred one. The OMS, which sees acknowledgements and rejects, asks for a
switch with a ``SwitchLine`` command (its thresholds reach it as a ``LinePolicy`` per venue,
posted when the sessions start), and reconciles the venue's orders after every switch.

The callbacks decode and post. Market data is subscribed per instrument (one
MarketDataRequest, 35=V, each) on the active line as soon as it is known. Whenever data may
have been lost, the link tells the OMS (``MarketDataGap``: the books go stale) and then asks
again for a fresh snapshot: when the data line changes (a switch, a logout, a reconnect);
when the venue answers a resend with a SequenceReset (35=4), because venues fill market
data with gaps rather than replay it; and when an instrument's RptSeq(83), where the venue's
dialect sends it, jumps. Messages of a subscription that has been replaced are dropped.

Operators drive the lines through ``status``, ``logon``, ``logout``, ``reset_seq``,
``set_seq``, ``failover`` and ``failback``, from any thread. Logons and logouts reported by
quickfix are handed to one line-control thread, and the operator's switches run there too:
it alone moves a venue's active line, so two switches never interleave, and a quickfix
callback never waits for one. (quickfix holds a session's mutex while it calls back, and a
switch sends on sessions: a callback waiting for a lock held across a send could deadlock.)
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import quickfix as fix

from oms.clock import now_ns
from oms.commands import Command, StatusRequest, SwitchLine
from oms.events import (
    LineRole,
    LineState,
    LineStateChanged,
    MarketDataGap,
    MarketDataIgnored,
    MarketDataReceived,
)
from oms.line_health import LinePolicy
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

Post = Callable[[Decoded | LineStateChanged | MarketDataGap | MarketDataIgnored | LinePolicy], None]


def ignored_market_data(event: MarketDataReceived, reason: str) -> MarketDataIgnored:
    """What the OMS records of a market-data message the books do not take."""
    return MarketDataIgnored(
        venue=event.venue,
        line=event.line,
        reason=reason,
        snapshot=event.snapshot,
        sending_ns=event.sending_ns,
        symbols=",".join(sorted({e.symbol for e in event.entries})) or event.snapshot_symbol or "",
        entries=len(event.entries),
        recv_ns=event.recv_ns,
    )


T = TypeVar("T")

RESET_REASON = "resetting sequence numbers: the next Logon carries ResetSeqNumFlag(141)=Y"


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
    since_ns: int = 0  # when it last logged on or off (monotonic): how long it has been quiet
    md_req_ids: dict[str, str] = field(default_factory=dict)  # symbol -> its live MDReqID
    md_symbols: dict[str, str] = field(default_factory=dict)  # MDReqID -> symbol
    rpt_seq: RptSeqWatch = field(default_factory=RptSeqWatch)

    @property
    def role(self) -> LineRole:
        return self.config.role

    @property
    def key(self) -> str:
        return session_key(self.config.sender_comp_id, self.config.target_comp_id)


class UnknownVenue(ValueError):
    """An operator named a venue the gateway does not have."""


@dataclass(frozen=True, slots=True)
class LineStatus:
    """One line as an operator sees it.

    ``enabled`` is quickfix's own flag: False once an operator logged the line out, and the
    initiator then leaves it down until ``logon``. The sequence numbers are the next ones
    each side will use, from quickfix's store; None when the FIX engine is not running.
    """

    venue: str
    role: LineRole
    sender_comp_id: str
    target_comp_id: str
    host: str
    port: int
    logged_on: bool
    enabled: bool
    active: bool
    next_sender_seq: int | None
    next_target_seq: int | None
    heartbeat_s: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def as_json(self) -> dict[str, Any]:
        """The line as the admin API and the dashboard show it."""
        return {
            "venue": self.venue,
            "role": self.role.value,
            "sender_comp_id": self.sender_comp_id,
            "target_comp_id": self.target_comp_id,
            "address": self.address,
            "logged_on": self.logged_on,
            "enabled": self.enabled,
            "active": self.active,
            "next_sender_seq": self.next_sender_seq,
            "next_target_seq": self.next_target_seq,
            "heartbeat_s": self.heartbeat_s,
        }


class VenueLink:
    """The lines of one venue and which of them orders go out on."""

    def __init__(self, venue: GatewayVenue) -> None:
        self.venue = venue
        self.lines = {
            c.role: Line(venue.id, c, owned_session_id(c.sender_comp_id, c.target_comp_id))
            for c in venue.lines
        }
        self.active: LineRole | None = None
        # The line the venue's orders should use whenever it is up: the primary, until a
        # fault or an operator fails over (and then the backup, until failback).
        self.preferred = LineRole.PRIMARY
        # The line a fault (not an operator) moved the orders off: automatic failback brings
        # them back to it once it is sound again.
        self.faulted_from: LineRole | None = None
        # An operator's failover holds: if the backup drops, the primary takes the orders
        # only while it is out.
        self.held_by_operator = False

    def other(self, role: LineRole) -> Line | None:
        return self.lines.get(LineRole.BACKUP if role is LineRole.PRIMARY else LineRole.PRIMARY)

    def choose_active(self) -> LineRole | None:
        """The preferred line when it is up, else the other one when it is up, else none."""
        other = LineRole.BACKUP if self.preferred is LineRole.PRIMARY else LineRole.PRIMARY
        for role in (self.preferred, other):
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

    def on_to_admin(self, message: Any, session: str) -> None:
        if session in self._sessions._reset_on_logon and message.getHeader().getField(35) == "A":
            # quickfix sees the flag as the Logon leaves and starts both numbers at 1; the
            # venue does the same when it reads it.
            message.setField(141, "Y")

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
    def __init__(
        self,
        config: GatewayConfig,
        post: Post,
        endpoints: Mapping[tuple[str, LineRole], tuple[str, int]] | None = None,
        *,
        log_dir: Path | None = None,
    ) -> None:
        """``endpoints``: where quickfix connects instead of a line's host and port, by
        (venue id, line role): the local end of a TLS tunnel (``sessions.tls_tunnel``).
        ``log_dir``: where quickfix logs every message sent and received, one file per
        session (``oms.audit.fixlog`` reads them to reconcile the receipts); none if None."""
        self._post = post
        self.links = {v.id: VenueLink(v) for v in config.venues}
        self._by_key: dict[str, tuple[VenueLink, Line]] = {
            line.key: (link, line) for link in self.links.values() for line in link.lines.values()
        }
        self._lock = threading.Lock()  # guards line state between quickfix's callbacks
        self._heartbeat_s = {
            v.id: v.failover.heartbeat_s or config.heartbeat_s for v in config.venues
        }
        # Lines an operator (or a schedule) logged out: their logout is no fault.
        self._operator_out: set[str] = set()
        self._timers: set[threading.Timer] = set()  # automatic failbacks waiting their turn
        self._stopping = False  # the gateway logs every line out: no failover, no orders
        # Lines whose next Logon carries ResetSeqNumFlag (read in toAdmin, so no lock), and
        # those an operator's reset_seq logged out, to log on again once they are out.
        self._reset_on_logon: set[str] = set()
        self._logon_after_reset: set[str] = set()
        self._control: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._control_thread = threading.Thread(
            target=self._run_control, name="line-control", daemon=True
        )
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
                "SocketConnectHost": host,
                "SocketConnectPort": port,
                "HeartBtInt": self._heartbeat_s[link.venue.id],
            }
            for link in self.links.values()
            for line in link.lines.values()
            for host, port in [
                (endpoints or {}).get(
                    (link.venue.id, line.role), (line.config.host, line.config.port)
                )
            ]
        ]
        self.application = GatewayApplication(self)
        self._engine = FixEngine(
            self.application,
            build_settings(default, sessions),
            acceptor=False,
            file_store=True,
            log_dir=log_dir,
        )

    def start(self) -> None:
        for link in self.links.values():  # before any line can change
            self._post(line_policy(link.venue))
        if not self._control_thread.is_alive():
            self._control_thread.start()
        self._engine.start()

    def stop(self) -> None:
        self._stopping = True
        for timer in list(self._timers):
            timer.cancel()
        self._engine.stop(reason="gateway shutting down")
        if self._control_thread.is_alive():
            self._control.put(None)  # after the logouts the stop just reported
            self._control_thread.join(timeout=5)

    def send(self, command: Command) -> LineRole | None:
        """Send on the venue's active line: the line that took it, None when no line of the
        venue is up. (The OMS keeps the line an order went out on: a venue that holds each
        line's orders apart can only be asked after it there.)

        Runs on the OMS thread: the text is built here and quickfix is called once. A
        ``SwitchLine`` is handed to line control and never waited for.
        """
        link = self.links.get(command.venue)
        if link is None:
            return None
        if isinstance(command, SwitchLine):
            self._control.put(lambda: self._switch_for_health(link, command))
            return command.away_from
        role = link.active
        if isinstance(command, StatusRequest) and command.line is not None:
            role = command.line
            if role not in link.lines or not link.lines[role].logged_on:
                return None
        if role is None:
            return None
        line = link.lines[role]
        return role if send_text(encode_command(command), line.session_id, self._dd) else None

    def active_lines(self) -> dict[str, LineRole | None]:
        return {venue: link.active for venue, link in self.links.items()}

    # -- session control: any thread --------------------------------------------------------

    def status(self) -> list[LineStatus]:
        """Every line of every venue, in configuration order."""
        with self._lock:
            seen = [
                (link.venue.id, line, line.logged_on, link.active is line.role)
                for link in self.links.values()
                for line in link.lines.values()
            ]
        out = []
        for venue, line, logged_on, active in seen:
            session = fix.Session.lookupSession(line.session_id)
            c = line.config
            out.append(
                LineStatus(
                    venue=venue,
                    role=line.role,
                    sender_comp_id=c.sender_comp_id,
                    target_comp_id=c.target_comp_id,
                    host=c.host,
                    port=c.port,
                    logged_on=logged_on,
                    enabled=bool(session.isEnabled()) if session is not None else False,
                    active=active,
                    next_sender_seq=session.getExpectedSenderNum() if session else None,
                    next_target_seq=session.getExpectedTargetNum() if session else None,
                    heartbeat_s=self._heartbeat_s[venue],
                )
            )
        return out

    def logon(self, venue: str, role: LineRole | None = None) -> None:
        """Let the initiator log the line (both lines without ``role``) on again at its next
        connection attempt (``reconnect_s``). Undoes ``logout``."""
        for line in self._lines(venue, role):
            if line.key in self._logon_after_reset:
                continue  # a reset is logging it out, and logs it on again once it is out
            self._fix_session(line).logon()
            log.info("%s %s line: logon requested", venue, line.role.value)

    def logout(
        self, venue: str, role: LineRole | None = None, reason: str = "logged out by an operator"
    ) -> None:
        """Log the line (both lines without ``role``) out with ``reason`` in the Logout's
        Text(58), and keep it out: the initiator does not reconnect it until ``logon``. When
        the active line goes, orders move to the other line if it is up."""
        for line in self._lines(venue, role):
            self._logon_after_reset.discard(line.key)
            self._operator_out.add(line.key)
            self._fix_session(line).logout(reason)
            log.warning("%s %s line: logout requested (%s)", venue, line.role.value, reason)

    def reset_seq(self, venue: str, role: LineRole | None = None) -> None:
        """Start both sequence numbers of the line (both lines without ``role``) at 1, on
        both sides: its next Logon carries ResetSeqNumFlag(141)=Y, which the venue answers in
        kind. A logged-on line is logged out and on again for it (the active line's orders
        move to the other line meanwhile); one an operator logged out stays out, reset."""
        for line in self._lines(venue, role):
            session = self._fix_session(line)
            self._reset_on_logon.add(line.key)
            if session.isLoggedOn():
                self._logon_after_reset.add(line.key)
                session.logout(RESET_REASON)
            else:
                session.setNextSenderMsgSeqNum(1)
                session.setNextTargetMsgSeqNum(1)
            log.warning("%s %s line: sequence numbers reset to 1", venue, line.role.value)

    def set_seq(
        self,
        venue: str,
        role: LineRole,
        *,
        next_sender: int | None = None,
        next_target: int | None = None,
    ) -> None:
        """Set the next MsgSeqNum(34) the line sends and the next it expects, as agreed with
        the venue. A sender number above the venue's expectation makes it ask for a resend
        (answered with a gap fill); a target number above what the venue sends next makes
        quickfix end the session, so agree on it first."""
        if next_sender is None and next_target is None:
            raise ValueError("give next_sender, next_target or both")
        for name, value in (("next_sender", next_sender), ("next_target", next_target)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be 1 or more (got {value})")
        (line,) = self._lines(venue, role)
        session = self._fix_session(line)
        if next_sender is not None:
            session.setNextSenderMsgSeqNum(next_sender)
        if next_target is not None:
            session.setNextTargetMsgSeqNum(next_target)
        log.warning(
            "%s %s line: next sequence numbers set (sender %s, target %s)",
            venue,
            role.value,
            next_sender if next_sender is not None else "unchanged",
            next_target if next_target is not None else "unchanged",
        )

    def failover(self, venue: str) -> LineRole:
        """Make the backup the active line while both are up, and keep it so until
        ``failback`` (if it drops meanwhile, orders go out on the primary while it is out).
        Returns the active line."""
        return self._on_control(lambda: self._prefer(venue, LineRole.BACKUP, "failover"))

    def snapshot(self, venue: str, symbols: list[str] | None, reason: str) -> LineRole:
        """Ask the venue for fresh snapshots of ``symbols`` (all its instruments when None)
        on the active line, as gap repair does: the books are stale, so no trigger fires on
        them, until each snapshot has arrived. Returns the line asked."""

        def ask() -> LineRole:
            link = self._link(venue)
            known = [i.symbol for i in link.venue.instruments]
            wanted = symbols or known
            unknown = sorted(set(wanted) - set(known))
            if unknown:
                raise ValueError(
                    f"{venue} has no instrument {', '.join(unknown)}; its instruments are "
                    f"{', '.join(known)}"
                )
            if link.active is None:
                raise ValueError(f"{venue} has no line logged on: nothing to ask")
            self._resubscribe(link, link.lines[link.active], wanted, reason)
            return link.active

        return self._on_control(ask)

    def failback(self, venue: str) -> LineRole:
        """Make the primary the active line again. Returns the active line."""
        return self._on_control(lambda: self._prefer(venue, LineRole.PRIMARY, "failback"))

    def _link(self, venue: str) -> VenueLink:
        link = self.links.get(venue)
        if link is None:
            raise UnknownVenue(
                f"no venue {venue!r} in this gateway; its venues are "
                f"{', '.join(self.links)} (see `cmc sessions list`)"
            )
        return link

    def _lines(self, venue: str, role: LineRole | None) -> list[Line]:
        link = self._link(venue)
        if role is None:
            return list(link.lines.values())
        line = link.lines.get(role)
        if line is None:
            raise ValueError(
                f"{venue} has no {role.value} line; its lines are "
                f"{', '.join(r.value for r in link.lines)}"
            )
        return [line]

    @staticmethod
    def _fix_session(line: Line) -> Any:
        session = fix.Session.lookupSession(line.session_id)
        if session is None:
            raise ValueError(
                f"{line.venue} {line.role.value} line: the gateway's FIX engine is not "
                "running; start the gateway first"
            )
        return session

    def _prefer(self, venue: str, role: LineRole, action: str) -> LineRole:
        link = self._link(venue)
        line = link.lines.get(role)
        if line is None:
            raise ValueError(
                f"{venue} has no backup line to fail over to; give it a second "
                '[[venues.lines]] with role = "backup" in the gateway configuration'
            )
        if not line.logged_on:
            raise ValueError(
                f"cannot {action} {venue}: its {role.value} line is not logged on; log it "
                f"on first (`cmc sessions logon {venue} --role {role.value}`), check "
                f"`cmc sessions status {venue}`, then try again"
            )
        link.faulted_from = None  # an operator's choice holds until an operator changes it
        link.held_by_operator = role is LineRole.BACKUP
        if link.active is role:
            with self._lock:
                link.preferred = role
            return role
        after = self._change_active(
            link, line, LineState.LOGGED_ON, f"{action} by an operator", prefer=role
        )
        log.warning("%s: %s; active line: %s", venue, action, after.value if after else "none")
        return role if after is None else after

    # -- the line-control thread ----------------------------------------------------------

    def _run_control(self) -> None:
        while True:
            work = self._control.get()
            if work is None:
                return
            try:
                work()
            except Exception:  # one bad change must not end line control
                log.exception("line control: error in %r", work)

    def _on_control(self, action: Callable[[], T], timeout_s: float = 10.0) -> T:
        """Run ``action`` on the line-control thread and return what it returned (or raise
        what it raised). Inline when that thread is not running (nothing can switch)."""
        if (
            not self._control_thread.is_alive()
            or threading.current_thread() is self._control_thread
        ):
            return action()
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            try:
                box.append(action())
            except BaseException as exc:  # handed back to the caller, who raises it
                box.append(exc)
            done.set()

        self._control.put(run)
        if not done.wait(timeout_s):
            raise TimeoutError(f"line control did not answer within {timeout_s} s")
        result = box[0]
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]

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
                # A line that is no longer active may still stream until unsubscribed: not
                # for the books, but for the audit trail (one receipt, nothing applied).
                self._post(ignored_market_data(event, "not the venue's active line"))
                return
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
        new subscription per instrument. On line control, like every subscription change,
        and only while the line is still the active one."""
        if self._control_thread.is_alive() and threading.current_thread() is not (
            self._control_thread
        ):
            self._control.put(lambda: self._resubscribe(link, line, symbols, reason))
            return
        if link.active is not line.role:
            return
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
        """quickfix's thread: hand the change to line control, which may send on sessions."""
        found = self._by_key.get(session)
        if found is None:
            return
        link, line = found
        self._control.put(lambda: self._apply_line_change(link, line, logged_on))

    def _apply_line_change(self, link: VenueLink, line: Line, logged_on: bool) -> None:
        with self._lock:
            line.logged_on = logged_on
            line.since_ns = time.monotonic_ns()
        prefer: LineRole | None = None
        text: str | None = None
        if logged_on:
            self._reset_on_logon.discard(line.key)
            self._operator_out.discard(line.key)
        else:  # the venue forgets a session's subscriptions when it ends
            self._forget_subscriptions(line)
            other = link.other(line.role)
            fault = not (
                self._stopping
                or line.key in self._operator_out
                or line.key in self._logon_after_reset
            )
            held = link.held_by_operator and line.role is link.preferred
            if fault and not held and other is not None and other.logged_on:
                # Failover: the orders stay on the other line until failback. A preferred
                # line that ends without having logged on (its logon refused) counts too.
                lost = link.active is line.role
                if lost or (link.preferred is line.role and link.active is other.role):
                    prefer, link.faulted_from = other.role, line.role
                    what = "lost" if lost else "could not log on"
                    text = f"{line.role.value} line {what}: failover to the {other.role.value} line"
        state = LineState.LOGGED_ON if logged_on else LineState.LOGGED_OUT
        after = self._change_active(link, line, state, text, prefer=prefer)
        if logged_on and line.role is link.faulted_from:
            self._failback_later(link, line)
        log.info(
            "%s %s line %s; active line: %s",
            link.venue.id,
            line.role.value,
            "logged on" if logged_on else "logged out",
            after.value if after else "none",
        )
        if not logged_on and line.key in self._logon_after_reset:
            self._logon_after_reset.discard(line.key)
            session = fix.Session.lookupSession(line.session_id)
            if session is not None:
                session.setNextSenderMsgSeqNum(1)
                session.setNextTargetMsgSeqNum(1)
                session.logon()

    def _switch_for_health(self, link: VenueLink, command: SwitchLine) -> None:
        """The OMS found the active line unhealthy (line control): fail over if the other
        line is up; if not, the orders stay where they are (the OMS asks again later)."""
        if link.active is not command.away_from:
            return  # moved already
        line = link.lines[command.away_from]
        other = link.other(command.away_from)
        if other is None or not other.logged_on:
            log.warning(
                "%s: cannot fail over (%s): no other line is logged on",
                link.venue.id,
                command.reason,
            )
            return
        link.faulted_from, link.held_by_operator = line.role, False
        text = f"failover: {command.reason}"
        after = self._change_active(link, line, LineState.LOGGED_ON, text, prefer=other.role)
        log.warning(
            "%s: %s; active line: %s", link.venue.id, text, after.value if after else "none"
        )
        self._failback_later(link, line)

    def _failback_later(self, link: VenueLink, line: Line) -> None:
        """With automatic failback, come back to ``line`` once it has been logged on and
        quiet (no logon or logout) for the venue's ``failback_after_s``."""
        policy = link.venue.failover
        if policy.failback != "auto" or not line.logged_on:
            return
        since = line.since_ns

        def due() -> None:
            self._timers.discard(timer)
            self._control.put(lambda: self._fail_back(link, line, since))

        timer = threading.Timer(policy.failback_after_s, due)
        timer.daemon = True
        self._timers.add(timer)
        timer.start()

    def _fail_back(self, link: VenueLink, line: Line, since_ns: int) -> None:
        """Line control: the automatic failback, if nothing has changed meanwhile."""
        if not (line.logged_on and line.since_ns == since_ns and link.faulted_from is line.role):
            return  # it flapped (a later logon set its own timer), or someone decided already
        if link.active is line.role:
            link.faulted_from = None
            return
        quiet_s = (time.monotonic_ns() - since_ns) / 1e9
        text = f"automatic failback: the {line.role.value} line quiet for {quiet_s:.1f} s"
        link.faulted_from = None
        after = self._change_active(link, line, LineState.LOGGED_ON, text, prefer=line.role)
        log.warning(
            "%s: %s; active line: %s", link.venue.id, text, after.value if after else "none"
        )

    def _change_active(
        self,
        link: VenueLink,
        line: Line,
        state: LineState,
        text: str | None = None,
        *,
        prefer: LineRole | None = None,
    ) -> LineRole | None:
        """Work the venue's active line out again, after ``line`` changed to ``state`` or
        an operator chose to ``prefer`` a line, and tell the OMS. If the active line moved,
        market data moves with it: the books go stale and the OMS learns the new active
        line before any fresh snapshot can arrive, then the old line is unsubscribed and the
        new one subscribed. The one place a venue's active line changes; line control only."""
        with self._lock:
            if prefer is not None:
                link.preferred = prefer
            before = link.active
            link.active = after = None if self._stopping else link.choose_active()
        moved = after != before
        if moved and before is not None:
            reason = f"market data line {before.value} -> {after.value if after else 'none'}"
            self._post(MarketDataGap(link.venue.id, before, (), reason, now_ns()))
        self._post(
            LineStateChanged(
                venue=link.venue.id,
                line=line.role,
                state=state,
                active=after,
                recv_ns=now_ns(),
                text=text,
            )
        )
        if moved and before is not None and link.lines[before].logged_on:
            self._unsubscribe(link.lines[before])
        if moved and after is not None:
            self._subscribe(link, link.lines[after])
        return after

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
        for md_req_id in list(line.md_symbols):
            send_text(market_data_cancel(md_req_id), line.session_id, self._dd)
        self._forget_subscriptions(line)

    @staticmethod
    def _forget_subscriptions(line: Line) -> None:
        line.md_req_ids.clear()
        line.md_symbols.clear()
        line.rpt_seq.forget()


def line_policy(venue: GatewayVenue) -> LinePolicy:
    """What the OMS applies of a venue's ``[venues.failover]`` table."""
    f = venue.failover
    return LinePolicy(
        venue=venue.id,
        ack_latency_ms=f.ack_latency_ms,
        slow_acks=f.slow_acks,
        reject_count=f.reject_rate.count if f.reject_rate else None,
        reject_window_s=f.reject_rate.window_s if f.reject_rate else 10.0,
        reconcile_timeout_ms=f.reconcile_timeout_ms,
        reconcile_retries=f.reconcile_retries,
        ack_timeout_ms=f.ack_timeout_ms,
        orders_across_lines=f.orders_across_lines,
    )
