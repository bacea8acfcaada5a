"""One simulated venue: a quickfix acceptor in front of the matching engine.

Threads: quickfix's engine thread runs the callbacks, which decode messages into commands
and put them on the inbox. The venue thread is the only one that touches the matching
engine, the order records, market data and the liquidity provider; it also sends every
outgoing message, in order per session (a delayed acknowledgement holds back whatever
follows it on that session, as a slow venue would).

Faults for failover: ``drop_session`` cuts one client's connection, ``go_silent`` makes one
go quiet with its socket left open (through a ``FaultRelay`` in front of the acceptor), and
``link_clients`` makes several CompIDs one member's lines, as a primary and its backup are
at a venue that keeps orders by member: any of them may ask after the others' orders.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import heapq
import itertools
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import quickfix as fix

from oms.clock import NS_PER_MS, monotonic_ns, now_ns
from oms.enums import OrderType, Side, TimeInForce
from sessions.fixengine import (
    EngineStartError,
    FixEngine,
    build_settings,
    common_defaults,
    data_dictionary,
    owned_session_id,
    send_text,
    session_key,
)
from sessions.fixwire import encode
from sessions.ports import free_port
from sessions.simulator import reports as rpt
from sessions.simulator.commands import (
    CancelOrder,
    Command,
    Control,
    MarketDataRequest,
    NewOrder,
    ReplaceOrder,
    SessionDown,
    SessionUp,
    StatusRequest,
    Stop,
    UnsupportedOrder,
)
from sessions.simulator.config import VenueConfig
from sessions.simulator.faults import Faults
from sessions.simulator.fix_app import VenueApplication
from sessions.simulator.liquidity import LiquidityProvider
from sessions.simulator.market_data import MarketDataPublisher
from sessions.simulator.matching import (
    Event,
    MatchingEngine,
    Phase,
    Reason,
    Report,
    ReportKind,
    TradePrint,
    entered_order,
)
from sessions.simulator.reports import VenueOrder
from sessions.tls_tunnel import TlsTunnel

log = logging.getLogger("cmc.sim")

T = TypeVar("T")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


class VenueProbe(Protocol):
    """Timestamps for measuring the gateway from outside, on the system-wide monotonic
    clock (``time.monotonic_ns`` is CLOCK_MONOTONIC, the same in every process)."""

    def market_data_sent(self, session: str, text: str, mono_ns: int) -> None: ...

    def order_arrived(self, session: str, clordid: str, mono_ns: int) -> None: ...


class Venue:
    def __init__(
        self, config: VenueConfig, probe: VenueProbe | None = None, *, relay: bool = False
    ) -> None:
        """``relay``: serve ``port`` through a ``FaultRelay`` (the acceptor then listens on
        a free port behind it), so that a client's line can be made silent."""
        if relay and config.tls is not None:
            raise ValueError(f"venue {config.id}: a fault relay cannot sit behind TLS")
        self.config = config
        self.id = config.id
        self.instruments = {i.symbol: i for i in config.instrument_list()}
        self.engine = MatchingEngine(self.instruments.values(), phase=config.initial_phase)
        self.faults = Faults(config.faults)
        self._scripted: collections.deque[str] = collections.deque()
        self.lp = (
            LiquidityProvider(self.engine, config.liquidity) if config.liquidity.enabled else None
        )
        self.probe = probe
        send_md = self._send_md if probe is not None else self._send_now
        self.md = MarketDataPublisher(self.engine, send_md, config.market_data_max_depth)
        # Ids carry the run's start time so they stay unique across restarts of the venue.
        self._id_prefix = f"{config.id}-{_base36(int(time.time()))}-"
        self._exec_ids = itertools.count(1)
        self._records: dict[int, VenueOrder] = {}
        self._by_clordid: dict[tuple[str, str], VenueOrder | None] = {}
        self._sessions = {
            session_key(config.comp_id, client): owned_session_id(config.comp_id, client)
            for client in config.clients
        }
        # Sessions of one member (link_clients): each one's group; and, for their orders,
        # every report sent so far, for a line that takes an order over from another.
        self._peers: dict[str, tuple[str, ...]] = {}
        self._reports: dict[int, list[str]] = {}
        self.logged_on: set[str] = set()
        self._quoting = True
        self._inbox: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._timers: list[tuple[int, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._last_due: dict[str, int] = {}
        self._dd = data_dictionary()
        # With TLS or a relay, `port` is theirs and the acceptor listens on a free port behind.
        self.fix_port = free_port() if config.tls is not None or relay else config.port
        self._tls: TlsTunnel | None = None
        self._relay_wanted = relay
        self.relay: FaultRelay | None = None
        self.application = VenueApplication(
            self._inbox.put,
            self.faults.refuses_logon,
            probe.order_arrived if probe is not None else None,
        )
        self._fix = FixEngine(
            self.application,
            self._settings(),
            acceptor=True,
            file_store=config.store_dir is not None,
            log_dir=config.log_dir,
        )
        self._thread = threading.Thread(target=self._run, name=f"venue-{config.id}", daemon=True)
        # Counts of client (FIX) activity; the liquidity provider's own orders are not in them.
        self.stats = {"orders": 0, "fills": 0, "rejects": 0, "cancels": 0}

    def _settings(self) -> Any:
        cfg = self.config
        default = common_defaults(cfg.store_dir, heartbeat_s=cfg.heartbeat_s)
        default |= {
            "ConnectionType": "acceptor",
            "SocketAcceptPort": self.fix_port,
            "SocketReuseAddress": True,
        }
        sessions = [{"SenderCompID": cfg.comp_id, "TargetCompID": c} for c in cfg.clients]
        return build_settings(default, sessions)

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        start_ns = now_ns()
        for change in self.config.schedule:
            due = start_ns + int(change.after_s * 1e9)
            self._at(due, functools.partial(self._apply_phase, change.phase, change.symbols))
        if self.lp is not None:
            self._at(start_ns, self._lp_tick)
        tls = self.config.tls
        if tls is not None:  # bound first: a port in use stops the venue before it starts
            self._tls = TlsTunnel(f"venue-{self.id}-tls")
            try:
                self._tls.server_route(
                    f"{self.id} TLS",
                    (tls.host, self.config.port),
                    tls.context(),
                    ("127.0.0.1", self.fix_port),
                )
            except OSError as exc:
                raise EngineStartError(
                    f"cannot serve TLS on {tls.host}:{self.config.port}: {exc.strerror or exc}"
                ) from None
        if self._relay_wanted:  # bound first, like the TLS tunnel
            try:
                self.relay = FaultRelay(
                    f"venue-{self.id}-relay",
                    ("127.0.0.1", self.config.port),
                    ("127.0.0.1", self.fix_port),
                )
            except OSError as exc:
                raise EngineStartError(
                    f"cannot relay port {self.config.port}: {exc.strerror or exc}"
                ) from None
        self._thread.start()
        self._fix.start()
        if self.relay is not None:
            self.relay.start()
        if self._tls is not None:
            self._tls.start()
            log.info(
                "venue %s listening on port %d (TLS; its plain acceptor is on port %d)",
                self.id,
                self.config.port,
                self.fix_port,
            )
        else:
            log.info("venue %s listening on port %d", self.id, self.config.port)

    def stop(self) -> None:
        # The venue thread sends on quickfix sessions, which FixEngine.stop destroys: stop
        # the thread first so that nothing sends on a session while it is being deleted.
        if self._thread.is_alive():
            self._inbox.put(Stop())
            self._thread.join(timeout=5)
        self._fix.stop(reason=f"venue {self.id} shutting down")
        if self._tls is not None:
            self._tls.stop()
        if self.relay is not None:
            self.relay.stop()

    def retire(self) -> list[str]:
        """Stop the venue thread and log every client out, leaving the acceptor to the end
        of the process (see ``FixEngine.retire``, and end with ``exit_process``)."""
        if self._thread.is_alive():
            self._inbox.put(Stop())
            self._thread.join(timeout=5)
        still = self._fix.retire(f"venue {self.id} shutting down")
        if self._tls is not None:  # after the logouts, which go out through it
            self._tls.stop()
        if self.relay is not None:
            self.relay.stop()
        return still

    def call(self, action: Callable[[Venue], T], timeout: float = 5.0) -> T:
        """Run ``action(venue)`` on the venue thread and return its result."""
        done = threading.Event()
        box: list[Any] = []

        def answer(result: object) -> None:
            box.append(result)
            done.set()

        self._inbox.put(Control(action, answer))
        if not done.wait(timeout):
            raise TimeoutError(f"venue {self.id} did not answer within {timeout} s")
        result = box[0]
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]

    # -- operator / test controls (any thread) --------------------------------------------

    def set_phase(self, phase: Phase, symbols: list[str] | None = None) -> None:
        self.call(lambda v: v._apply_phase(phase, symbols))

    def set_faults(self, **changes: Any) -> None:
        self.call(lambda v: v.faults.update(**changes))

    def set_anchor(self, symbol: str, price: Decimal) -> None:
        def apply(v: Venue) -> None:
            if v.lp is None:
                raise RuntimeError(f"venue {v.id} has no liquidity provider")
            v.lp.set_anchor(symbol, price)

        self.call(apply)

    def set_quoting(self, enabled: bool) -> None:
        """Start or stop the liquidity provider's requotes (its resting quotes stay)."""

        def apply(v: Venue) -> None:
            v._quoting = enabled

        self.call(apply)

    def house_order(
        self,
        symbol: str,
        side: Side,
        qty: int,
        price: Decimal | None,
        tif: TimeInForce = TimeInForce.DAY,
        owner: str = "house",
    ) -> int:
        """Enter an order straight into the book, not over FIX (a scripted market, a
        benchmark's trigger). Market data goes out as for any order. Returns its id."""

        def enter(v: Venue) -> int:
            events = v.engine.submit(owner, symbol, side, qty, price, tif)
            v._dispatch(events)
            return entered_order(events).order_id

        return self.call(enter)

    def cancel_house_order(self, order_id: int) -> bool:
        """Cancel an order entered with ``house_order``; False if it was already done."""

        def cancel(v: Venue) -> bool:
            events = v.engine.cancel(order_id)
            v._dispatch(events)
            first = events[0]
            return not (isinstance(first, Report) and first.kind is ReportKind.CANCEL_REJECTED)

        return self.call(cancel)

    def drop_connections(self) -> int:
        """Cut every logged-on session's connection, as a network fault would."""

        def cut(v: Venue) -> int:
            count = 0
            for sid in v._sessions.values():
                session = fix.Session.lookupSession(sid)
                if session is not None and session.isLoggedOn():
                    session.disconnect()
                    count += 1
            return count

        return self.call(cut)

    def drop_session(self, client: str) -> int | None:
        """Cut one client's connection (a line of a gateway), as a network fault would, and
        leave the others up. Returns the venue thread's ``monotonic_ns`` taken just before
        the socket is closed, or None when the client was not logged on."""
        key = self._client_key(client)

        def cut(v: Venue) -> int | None:
            session = fix.Session.lookupSession(v._sessions[key])
            if session is None or not session.isLoggedOn():
                return None
            stamp = monotonic_ns()
            session.disconnect()
            return stamp

        return self.call(cut)

    def go_silent(self, client: str, silent: bool = True) -> int:
        """Make one client's line silent: nothing it sends reaches the venue and nothing the
        venue sends reaches it (heartbeats and TestRequest answers included), while its socket
        stays open, as when a venue hangs. The client's own heartbeat time-out must find it
        out. ``silent=False`` lets its connections speak again (one the venue ended meanwhile
        is closed then). Needs the venue built with ``relay=True``; returns the client's
        connections affected."""
        self._client_key(client)
        if self.relay is None:
            raise RuntimeError(
                f"venue {self.id} has no relay in front of its acceptor: build it with "
                "Venue(config, relay=True) to make a line silent"
            )
        return self.relay.silence(client, silent)

    def link_clients(self, *clients: str) -> None:
        """Make ``clients`` one member's lines (a primary and its backup): each may ask after,
        cancel or replace the others' orders; a ClOrdID one of them used is a duplicate on
        the others; and an order's reports go to the line that last acted on it. A line that
        takes an order over (by asking after it, or cancelling it) first gets the order's
        reports so far again, with their own ExecIDs, since the ones sent while the other
        line was down may never have arrived; then the answer. Without it, as at venues that
        keep orders by session, each line sees only its own orders."""
        if len(set(clients)) < 2:
            raise ValueError("link two or more distinct client CompIDs")
        keys = tuple(self._client_key(c) for c in clients)

        def link(v: Venue) -> None:
            for key in keys:
                v._peers[key] = keys

        self.call(link)

    def _client_key(self, client: str) -> str:
        key = session_key(self.config.comp_id, client)
        if key not in self._sessions:
            raise ValueError(
                f"{client!r} is not a client of venue {self.id}; its clients are "
                f"{', '.join(self.config.clients)}"
            )
        return key

    def script_faults(self, faults: list[str]) -> None:
        """What happens to the next new orders, one entry each, before any random fault:
        ``"reject"``, ``"fill:N"`` (at most N lots may fill) or ``"ok"``. For tests that
        need one exact sequence of misfortunes."""
        for fault in faults:
            if fault not in ("reject", "ok") and not (
                fault.startswith("fill:") and fault[5:].isdigit()
            ):
                raise ValueError(f'unknown scripted fault {fault!r}: "reject", "fill:N" or "ok"')

        self.call(lambda v: v._scripted.extend(faults))

    def filled_by_clordid(self, client: str) -> dict[str, tuple[int, int]]:
        """Every order ``client`` sent, by each ClOrdID it answered to: (filled, leaves), as
        this venue's own books have it. What a gateway's records are reconciled against."""

        def read(v: Venue) -> dict[str, tuple[int, int]]:
            return {
                clordid: (rec.order.cum, rec.order.leaves)
                for (session, clordid), rec in v._by_clordid.items()
                if rec is not None and session.endswith(f"->{client}")
            }

        return self.call(read)

    def skip_sequence(self, count: int, client: str | None = None) -> None:
        """Jump outgoing MsgSeqNum forward so the counterparty sees a gap and must recover."""

        def skip(v: Venue) -> None:
            for key, sid in v._sessions.items():
                if client is None or key.endswith(f"->{client}"):
                    session = fix.Session.lookupSession(sid)
                    session.setNextSenderMsgSeqNum(session.getExpectedSenderNum() + count)

        self.call(skip)

    def book(self, symbol: str, depth: int = 5) -> dict[str, list[tuple[Decimal, int, int]]]:
        """The top of one book, read on the venue thread: {"bids": [...], "asks": [...]}."""

        def read(v: Venue) -> dict[str, list[tuple[Decimal, int, int]]]:
            inst = v.instruments[symbol]
            book = v.engine.books[symbol]
            return {
                name: [(inst.from_ticks(p), q, n) for p, q, n in book.depth(side, depth)]
                for name, side in (("bids", Side.BUY), ("asks", Side.SELL))
            }

        return self.call(read)

    # -- the venue thread -----------------------------------------------------------------

    def _run(self) -> None:
        inbox = self._inbox
        while True:
            timeout = None
            if self._timers:
                timeout = max(0.0, (self._timers[0][0] - now_ns()) / 1e9)
            try:
                command: Command | None = inbox.get(timeout=timeout)
            except queue.Empty:
                command = None
            try:
                while command is not None:
                    if isinstance(command, Stop):
                        return
                    self._handle(command)
                    command = inbox.get_nowait() if not inbox.empty() else None
                self._run_due_timers()
                self.md.flush()
            except Exception:  # the venue must outlive any one bad command
                log.exception("venue %s: error handling %r", self.id, command)

    def _at(self, due_ns: int, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (due_ns, next(self._timer_seq), action))

    def _run_due_timers(self) -> None:
        now = now_ns()
        while self._timers and self._timers[0][0] <= now:
            _, _, action = heapq.heappop(self._timers)
            action()

    def _lp_tick(self) -> None:
        assert self.lp is not None
        if self._quoting:
            self._dispatch(self.lp.refresh())
        self._at(now_ns() + self.lp.config.interval_ms * NS_PER_MS, self._lp_tick)

    def _apply_phase(self, phase: Phase, symbols: list[str] | None) -> None:
        log.info("venue %s: phase %s for %s", self.id, phase.value, symbols or "all symbols")
        self._dispatch(self.engine.set_phase(phase, symbols))
        for symbol in symbols or self.engine.books:
            self.md.touched(symbol)

    def _handle(self, command: Command) -> None:
        if isinstance(command, NewOrder):
            self._new_order(command)
        elif isinstance(command, CancelOrder | ReplaceOrder):
            self._amend(command)
        elif isinstance(command, MarketDataRequest):
            self.md.request(command)
        elif isinstance(command, StatusRequest):
            self._status(command)
        elif isinstance(command, UnsupportedOrder):
            self._reject_request(command, rpt.ORD_REJ_UNSUPPORTED, command.text)
        elif isinstance(command, SessionUp):
            self.logged_on.add(command.session)
        elif isinstance(command, SessionDown):
            self.logged_on.discard(command.session)
            self.md.drop_session(command.session)
        elif isinstance(command, Control):
            try:
                result: object = command.action(self)
            except Exception as exc:  # handed back to the caller, who raises it
                result = exc
            if command.done is not None:
                command.done(result)

    # -- orders ---------------------------------------------------------------------------

    def _new_order(self, cmd: NewOrder) -> None:
        self.stats["orders"] += 1
        key = (cmd.session, cmd.clordid)
        if self._used(cmd.session, cmd.clordid):
            self._reject_request(cmd, rpt.ORD_REJ_DUPLICATE, f"duplicate ClOrdID {cmd.clordid}")
            return
        inst = self.instruments.get(cmd.symbol)
        scripted = self._scripted.popleft() if self._scripted else None
        if scripted is None:
            reject = Reason.INJECTED if self.faults.roll_reject() else None
            cap = self.faults.roll_partial_cap(cmd.qty, inst.lot) if inst is not None else None
        else:
            reject = Reason.INJECTED if scripted == "reject" else None
            cap = int(scripted[5:]) if scripted.startswith("fill:") else None
        events = self.engine.submit(
            cmd.session,
            cmd.symbol,
            cmd.side,
            cmd.qty,
            cmd.price,
            cmd.tif,
            max_fill=cap,
            reject=reject,
        )
        order = entered_order(events)
        rec = VenueOrder(
            order,
            self._id_prefix + str(order.order_id),
            cmd.session,
            cmd.clordid,
            cmd.ord_type,
            cmd.account,
            inst,
        )
        self._records[order.order_id] = rec
        self._by_clordid[key] = rec
        self._dispatch(events)

    def _find(self, session: str, order_id: str | None, clordid: str) -> VenueOrder | None:
        """The client's own order (its member's, with linked lines), by OrderID if given,
        else by any ClOrdID in its chain."""
        owners = self._peers.get(session, (session,))
        if order_id and order_id.startswith(self._id_prefix):
            suffix = order_id[len(self._id_prefix) :]
            rec = self._records.get(int(suffix)) if suffix.isdigit() else None
            return rec if rec is not None and rec.session in owners else None
        for owner in owners:
            rec = self._by_clordid.get((owner, clordid))
            if rec is not None:
                return rec
        return None

    def _used(self, session: str, clordid: str) -> bool:
        """Whether the client (or a line of its member) has used ``clordid`` already."""
        return any((o, clordid) in self._by_clordid for o in self._peers.get(session, (session,)))

    def _adopt(self, rec: VenueOrder, session: str) -> None:
        """Another line of the order's member acts on it: its reports go there from now on,
        after the ones sent so far (the old line may have lost them)."""
        if rec.session == session:
            return
        log.info(
            "venue %s: order %s moves from %s to %s", self.id, rec.order_id, rec.session, session
        )
        rec.session = session
        for text in self._reports.get(rec.order.order_id, ()):
            self._send(session, text, ack=True)

    def _report(self, rec: VenueOrder, text: str, *, ack: bool) -> None:
        """Send one of an order's reports (kept for a linked line that may take it over)."""
        if self._peers and rec.session in self._peers:
            self._reports.setdefault(rec.order.order_id, []).append(text)
        self._send(rec.session, text, ack=ack)

    def _amend(self, cmd: CancelOrder | ReplaceOrder) -> None:
        is_cancel = isinstance(cmd, CancelOrder)
        response_to = "1" if is_cancel else "2"
        rec = self._find(cmd.session, cmd.order_id, cmd.orig_clordid)
        key = (cmd.session, cmd.clordid)

        def refuse(reason: str, text: str) -> None:
            self._send(
                cmd.session,
                rpt.cancel_reject(
                    order_id=rec.order_id if rec else "NONE",
                    clordid=cmd.clordid,
                    orig_clordid=cmd.orig_clordid,
                    ord_status=rec.status() if rec else "8",
                    response_to=response_to,
                    reason=reason,
                    text=text,
                    ts_ns=now_ns(),
                ),
                ack=True,
            )

        if self._used(cmd.session, cmd.clordid):
            refuse(rpt.CXL_REJ_DUPLICATE, f"duplicate ClOrdID {cmd.clordid}")
            return
        self._by_clordid[key] = rec
        if rec is None:
            refuse(rpt.CXL_REJ_UNKNOWN_ORDER, Reason.UNKNOWN_ORDER.value)
            return
        self._adopt(rec, cmd.session)
        if cmd.symbol != rec.order.symbol or cmd.side is not rec.order.side:
            refuse(rpt.CXL_REJ_OTHER, "Symbol and Side must match the original order")
            return
        if isinstance(cmd, ReplaceOrder) and cmd.price is None and rec.ord_type is OrderType.LIMIT:
            refuse(rpt.CXL_REJ_OTHER, "a replace of a limit order needs Price(44)")
            return
        if rec.amending:
            refuse("3", "a cancel or replace is already pending for this order")
            return

        def execute() -> None:
            rec.amending = False
            rec.pending = None
            if isinstance(cmd, CancelOrder):
                events = self.engine.cancel(rec.order.order_id)
            else:
                assert cmd.price is not None
                events = self.engine.replace(rec.order.order_id, cmd.qty, cmd.price)
            first = events[0]
            if isinstance(first, Report) and first.kind in (
                ReportKind.CANCEL_REJECTED,
                ReportKind.REPLACE_REJECTED,
            ):
                reason = rpt.CXL_REJ_REASON.get(first.reason, rpt.CXL_REJ_OTHER)  # type: ignore[arg-type]
                refuse(reason, first.reason.value if first.reason else "rejected")
                return
            previous = rec.clordid
            rec.clordid = cmd.clordid
            self._dispatch(events, orig_clordid=previous)

        if self.faults.config.pending_reports:
            rec.pending = (
                rpt.EXEC_TYPE_PENDING_CANCEL if is_cancel else rpt.EXEC_TYPE_PENDING_REPLACE
            )
            order = rec.order
            # FIX 4.4: ClOrdID is the request's, OrigClOrdID the order's (until it is done).
            self._report(
                rec,
                rpt.execution_report(
                    rec,
                    exec_id=self._exec_id(),
                    exec_type=rec.pending,
                    ord_status=rec.pending,
                    venue_id=self.id,
                    ts_ns=now_ns(),
                    cum=order.cum,
                    leaves=order.leaves,
                    notional=order.notional,
                    clordid=cmd.clordid,
                    orig_clordid=rec.clordid,
                ),
                ack=True,
            )
        delay = self.faults.config.cancel_delay_ms
        if delay:
            rec.amending = True
            self._at(now_ns() + delay * NS_PER_MS, execute)
        else:
            execute()

    def _status(self, cmd: StatusRequest) -> None:
        rec = self._find(cmd.session, cmd.order_id, cmd.clordid)
        if rec is None:
            text = encode(
                "8",
                [
                    (37, cmd.order_id or "NONE"),
                    (11, cmd.clordid),
                    (790, cmd.status_req_id),
                    (17, self._exec_id()),
                    (150, rpt.EXEC_TYPE_ORDER_STATUS),
                    (39, "8"),
                    (55, cmd.symbol),
                    (54, cmd.side.value),
                    (151, 0),
                    (14, 0),
                    (6, 0),
                    (30, self.id),
                    (58, Reason.UNKNOWN_ORDER.value),
                ],
            )
            self._send(cmd.session, text, ack=True)
            return
        self._adopt(rec, cmd.session)
        order = rec.order
        self._send(
            cmd.session,
            rpt.execution_report(
                rec,
                exec_id=self._exec_id(),
                exec_type=rpt.EXEC_TYPE_ORDER_STATUS,
                ord_status=rec.status(),
                venue_id=self.id,
                ts_ns=now_ns(),
                cum=order.cum,
                leaves=order.leaves,
                notional=order.notional,
                status_req_id=cmd.status_req_id,
            ),
            ack=True,
        )

    def _reject_request(self, cmd: NewOrder | UnsupportedOrder, reason: str, text: str) -> None:
        """Reject an order that never became a venue order (OrderID NONE)."""
        self.stats["rejects"] += 1
        self._send(
            cmd.session,
            rpt.rejected_request_report(
                order_id="NONE",
                clordid=cmd.clordid,
                exec_id=self._exec_id(),
                symbol=cmd.symbol,
                side=cmd.side,
                qty=str(cmd.qty),
                venue_id=self.id,
                ts_ns=now_ns(),
                rej_reason=reason,
                text=text,
            ),
            ack=True,
        )

    # -- events out -----------------------------------------------------------------------

    def _exec_id(self) -> str:
        return f"{self._id_prefix}E{next(self._exec_ids)}"

    def _dispatch(self, events: list[Event], orig_clordid: str | None = None) -> None:
        """Turn engine events into execution reports and market data."""
        for event in events:
            if isinstance(event, TradePrint):
                self.md.traded(event)
                continue
            order = event.order
            if order is None:
                continue
            self.md.touched(order.symbol)
            rec = self._records.get(order.order_id)
            if rec is None:  # the liquidity provider's own orders
                continue
            kind = event.kind
            if kind is ReportKind.TRADE:
                self.stats["fills"] += 1
            elif kind is ReportKind.REJECTED:
                self.stats["rejects"] += 1
            elif kind is ReportKind.CANCELED:
                self.stats["cancels"] += 1
            reason = event.reason
            ord_status = rpt.ord_status_after(event)
            if rec.pending is not None and kind is ReportKind.TRADE and event.leaves:
                ord_status = rec.pending  # FIX 4.4: a pending cancel/replace outranks a part-fill
            self._report(
                rec,
                rpt.execution_report(
                    rec,
                    exec_id=self._exec_id(),
                    exec_type=rpt.EXEC_TYPE[kind],
                    ord_status=ord_status,
                    venue_id=self.id,
                    ts_ns=event.ts_ns,
                    cum=event.cum,
                    leaves=event.leaves,
                    notional=event.notional,
                    last_px=event.last_px,
                    last_qty=event.last_qty,
                    orig_clordid=orig_clordid
                    if kind in (ReportKind.CANCELED, ReportKind.REPLACED)
                    else None,
                    rej_reason=(
                        rpt.ORD_REJ_REASON.get(reason, rpt.ORD_REJ_OTHER) if reason else None
                    )
                    if kind is ReportKind.REJECTED
                    else None,
                    text=reason.value if reason is not None else None,
                ),
                ack=kind is not ReportKind.TRADE,
            )

    def _send(self, session: str, text: str, *, ack: bool) -> None:
        """Send now, or after the configured fault delay, never ahead of an earlier message."""
        faults = self.faults.config
        delay_ms = faults.ack_delay_ms if ack else faults.fill_delay_ms
        now = now_ns()
        due = max(now + delay_ms * NS_PER_MS, self._last_due.get(session, 0))
        if due <= now:
            self._send_now(session, text)
            return
        self._last_due[session] = due
        self._at(due, lambda: self._send_now(session, text))

    def _send_md(self, session: str, text: str) -> None:
        assert self.probe is not None
        self.probe.market_data_sent(session, text, monotonic_ns())
        self._send_now(session, text)

    def _send_now(self, session: str, text: str) -> None:
        sid = self._sessions.get(session)
        if sid is None:
            log.warning("venue %s: no session %s for an outgoing message", self.id, session)
            return
        send_text(text, sid, self._dd)


class _Relayed:
    """One connection through a ``FaultRelay``: the client's socket and the venue's."""

    def __init__(self, client_side: socket.socket, venue_side: socket.socket) -> None:
        self.client_side = client_side
        self.venue_side = venue_side
        self.client: str | None = None  # the Logon's SenderCompID, once seen
        self.venue_gone = False  # the venue's side ended while the client was silent
        self._closed = False
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sock in (self.client_side, self.venue_side):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it
            sock.close()


_SENDER = re.compile(rb"\x0149=([^\x01]+)\x01")


class FaultRelay:
    """Plain TCP in front of a venue's acceptor, for faults below FIX: a client's line can
    go silent, every byte dropped both ways while both sockets stay open, as when a venue
    hangs or a network path swallows everything without a reset.

    One thread accepts; each connection has a thread per direction. A connection's client is
    read from its first bytes (the Logon's SenderCompID(49)). While a client is silent, its
    connections' venue side ending (the acceptor's own heartbeat time-out) is not passed on:
    the client must notice the silence by itself. Loopback only.
    """

    def __init__(self, name: str, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.name = name
        self.upstream = upstream
        self._listen = socket.create_server(listen, backlog=16)
        self._listen.settimeout(0.2)
        self._silent: set[str] = set()
        self._conns: set[_Relayed] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._listen.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._listen.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()

    def silence(self, client: str, silent: bool) -> int:
        with self._lock:
            if silent:
                self._silent.add(client)
            else:
                self._silent.discard(client)
            conns = [c for c in self._conns if c.client == client]
        if not silent:
            for conn in conns:
                if conn.venue_gone:
                    conn.close()
        return len(conns)

    def _is_silent(self, conn: _Relayed) -> bool:
        return conn.client is not None and conn.client in self._silent

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client_side, _ = self._listen.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                venue_side = socket.create_connection(self.upstream, timeout=5)
            except OSError as exc:
                log.error("%s: cannot reach the acceptor at %s: %s", self.name, self.upstream, exc)
                client_side.close()
                continue
            client_side.settimeout(None)
            venue_side.settimeout(None)
            for sock in (client_side, venue_side):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Relayed(client_side, venue_side)
            with self._lock:
                self._conns.add(conn)
            for src, dst, upward in (
                (client_side, venue_side, True),
                (venue_side, client_side, False),
            ):
                threading.Thread(
                    target=self._pump, args=(conn, src, dst, upward), name=self.name, daemon=True
                ).start()

    def _pump(self, conn: _Relayed, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        seen = b""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if upward and conn.client is None:
                seen += data
                found = _SENDER.search(seen)
                if found is not None:
                    conn.client = found.group(1).decode("ascii", "replace")
            if self._is_silent(conn):
                continue
            try:
                dst.sendall(data)
            except OSError:
                break
        if not upward and self._is_silent(conn):
            conn.venue_gone = True  # the client's socket stays open: silence, not a close
            return
        conn.close()
        with self._lock:
            self._conns.discard(conn)
