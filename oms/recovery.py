"""Starting again after a crash: the orders, pairs and positions the receipt store proves.

Why from the receipts: they are the gateway's only durable record of what it did (quickfix
keeps sequence numbers, not messages: a venue's resend request is answered with a gap
fill). Every order sent, every cancel or replace asked and every report received has a
receipt; what the writer had not yet flushed when the process died is still in quickfix's
message log (written before a message goes out, and as one comes in), which the writer's
start reconciliation records as ``fix.unrecorded`` receipts, raw text and all, before
anything else. Replaying, in ``seq`` order, the commands and reports these receipts hold
through the same ``Orders`` registry the OMS uses rebuilds each order by the same
transition table: its status, its fills each once by ExecID, a request still pending, its
OrderID, the line it went out on. ``rebuild`` is that replay: receipts in, a
:class:`Snapshot` out, no database and no network.

What is not resumed is a spread trade half done: its intent, the limits it priced and its
timers died with the process. :class:`Resumption` takes the OMS from the snapshot back to
trading: once every line of a venue is logged on again (so that the venue has read all
the old connections carried), the venue's working orders are asked after on the active
line (the line watch's reconciliation: an order the venue does not know where it would
know it never arrived, and is rejected here), the pair orders still working are then
cancelled, and a pair left out of ratio is repaired by the pair engine's top-up or unwind,
as after a bust. No pair takes a new entry before that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Protocol

from sqlalchemy import or_, select

from oms.enums import OrderType, Side, TimeInForce
from oms.events import CancelRejected, ExecutionReceived, LineRole, LineState, LineStateChanged
from oms.orders import IllegalTransition, Order, Orders
from oms.pairs import PairSpec
from oms.receipt_schema import RECEIPTS
from oms.receipts import Receipt, ReceiptStore, receipt_of_row

if TYPE_CHECKING:
    from oms.line_health import LineWatch
    from oms.pair_engine import PairEngine

STAGE_CHANGE_KIND: Final = "operator.stage"
"""An operator's change of delivery stage (shadow, canary, live): the last one is handed to
the gateway's stage control with the snapshot, as an operator's pull-back outlives a
restart (``sessions.stage``)."""

RECOVERY_KINDS: Final = (
    STAGE_CHANGE_KIND,
    "command.send_order",
    "command.cancel_order",
    "command.replace_order",
    "event.execution",
    "event.cancel_reject",
    "fix.unrecorded",
    "alert.reconcile",
    "decision.spread_intent",
    "decision.repair",
    "decision.pair_done",
)
"""The receipts a rebuild reads: the rest (market data, risk verdicts...) change no order."""

UNKNOWN_TRADE: Final = "recovered"
"""The trade id suffix (``GOLD-recovered``) of a pair's order that only the FIX log knows:
its send receipt was lost with the process, and with it the trade it belonged to."""

ALERT_AFTER_NS: Final = 10_000_000_000
"""How long after its venues are reconciled a pair may still wait for recovered orders to
end before an alert names them (an operator's turn: nothing else is decided for them)."""

Decode = Callable[[str, str, LineRole, int], object]
"""A received message's raw FIX text (with venue, line, receive time) -> the OMS event it
is: ``sessions.codec.decode``. ``oms`` reads no FIX of its own; the sessions lend theirs."""

_SOH: Final = "\x01"
_NEW_ORDER, _CANCEL, _REPLACE = "D", "F", "G"
_REPORT_TYPES: Final = frozenset({"8", "9"})


@dataclass(frozen=True, slots=True)
class PairState:
    """One pair as its orders' fills leave it: what the pair engine starts again from."""

    pair: str
    net_inner: int
    net_outer: int
    units: int
    """The aligned position: the legs' own when they are aligned, else the position of the
    last trade the store saw finish (what a repair restores or unwinds towards)."""
    counted: Mapping[str, int]
    """Order key -> lots filled, as the pair engine counts them."""
    trades: frozenset[str]
    """The trade ids the pair's orders carry."""
    numbers: Mapping[str, int]
    """The highest trade number used per kind: "" entries, "M" manual, "R" repairs."""


@dataclass
class RecoveryStats:
    receipts: int = 0
    orders: int = 0
    working: int = 0
    """Orders the venues may still execute, as the receipts leave them."""
    fills: int = 0
    """Fills applied, each ExecID once."""
    duplicates: int = 0
    """Reports whose ExecID had been applied already (a resend, a second line's copy)."""
    unrecorded: int = 0
    """Messages only quickfix's log had (``fix.unrecorded``) that changed an order."""
    inferred: int = 0
    """Orders only the log had, given to a pair by their instrument."""
    problems: list[str] = field(default_factory=list)
    """Receipts the replay could not apply, and why (the live OMS refused most of them too)."""


@dataclass
class Snapshot:
    """What the receipt store proves: every order, every pair's legs, and the counts."""

    orders: Orders
    pairs: dict[str, PairState]
    stats: RecoveryStats
    stage_change: Receipt | None = None
    """The last operator's stage change the store holds (``STAGE_CHANGE_KIND``), if any."""

    @property
    def working(self) -> list[Order]:
        return self.orders.working()

    @property
    def empty(self) -> bool:
        return not len(self.orders)

    def highest_clordid(self, prefix: str) -> int:
        """The highest ``n`` of the ClOrdIDs ``{prefix}{n}`` used (0 when none): where a run
        that starts within the same second as the last one goes on numbering."""
        best = 0
        for order in self.orders.all():
            for clordid in order.clordids:
                if clordid.startswith(prefix):
                    tail = clordid[len(prefix) :]
                    if tail.isdigit():
                        best = max(best, int(tail))
        return best


# -- reading the store ----------------------------------------------------------------------


def stored_receipts(store: ReceiptStore) -> Iterator[Receipt]:
    """The receipts a rebuild needs, in ``seq`` order, streamed."""
    stmt = select(RECEIPTS).where(RECEIPTS.c.kind.in_(RECOVERY_KINDS)).order_by(RECEIPTS.c.seq)
    with store.engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=10_000).execute(stmt)
        for row in rows:
            yield receipt_of_row(row)


def canary_counted(url: str, since_ns: int) -> list[dict[str, object]]:
    """The figures of the risk verdicts recorded since ``since_ns`` that carry what the
    canary counted (``oms.risk.canary``), in ``seq`` order: a restarted gateway's canary
    takes up its day from them. Read only, through the ``ts_ns`` index."""
    from oms.risk.canary import COUNTED_NOTIONAL, COUNTED_PAIR
    from oms.risk.verdicts import Verdict

    stmt = (
        select(RECEIPTS.c.data)
        .where(
            RECEIPTS.c.ts_ns >= since_ns,
            RECEIPTS.c.kind == Verdict.kind,
            RECEIPTS.c.verdict == "passed",
            or_(
                RECEIPTS.c.data.contains(f'"{COUNTED_NOTIONAL}"'),
                RECEIPTS.c.data.contains(f'"{COUNTED_PAIR}"'),
            ),
        )
        .order_by(RECEIPTS.c.seq)
    )
    with ReceiptStore(url, migrate=False) as store, store.engine.connect() as conn:
        return [json.loads(data) for (data,) in conn.execute(stmt)]


def recover(url: str, pairs: Sequence[PairSpec], decode: Decode) -> Snapshot:
    """Rebuild from the store at ``url`` (read only: the writer owns it)."""
    with ReceiptStore(url, migrate=False) as store:
        return rebuild(stored_receipts(store), pairs, decode)


# -- the replay -------------------------------------------------------------------------------


def rebuild(receipts: Iterable[Receipt], pairs: Sequence[PairSpec], decode: Decode) -> Snapshot:
    """Replay ``receipts`` (in ``seq`` order) into a snapshot."""
    replay = _Replay(pairs, decode)
    for receipt in receipts:
        replay.apply(receipt)
    return replay.snapshot()


def fix_tags(raw: str) -> dict[int, str]:
    """A FIX message's tags (first occurrence of each): enough for the few a rebuild reads."""
    tags: dict[int, str] = {}
    for item in raw.split(_SOH):
        tag, sep, value = item.partition("=")
        if sep and tag.isdigit():
            tags.setdefault(int(tag), value)
    return tags


def trade_number(trade_id: str, pair: str) -> tuple[str, int] | None:
    """(kind, n) of a trade id of ``pair``: ``GOLD-12`` ("", 12), ``GOLD-M3``, ``GOLD-R2``."""
    if not trade_id.startswith(pair + "-"):
        return None
    rest = trade_id[len(pair) + 1 :]
    kind = rest[:1] if rest[:1] in ("M", "R") else ""
    digits = rest[len(kind) :]
    return (kind, int(digits)) if digits.isdigit() else None


class _Replay:
    def __init__(self, pairs: Sequence[PairSpec], decode: Decode) -> None:
        self.specs = {spec.id: spec for spec in pairs}
        # Longest id first: a trade id is matched to the most specific pair it starts with.
        self._by_length = sorted(self.specs, key=len, reverse=True)
        self.decode = decode
        self.orders = Orders()
        self.stats = RecoveryStats()
        self.units: dict[str, int] = {}  # pair -> position of its last finished trade
        self.trade_ids: set[str] = set()
        self.stage_change: Receipt | None = None

    def apply(self, r: Receipt) -> None:
        self.stats.receipts += 1
        try:
            self._apply(r)
        except (IllegalTransition, ValueError, KeyError, ArithmeticError) as exc:
            self._problem(r, str(exc) or type(exc).__name__)

    def _problem(self, r: Receipt, why: str) -> None:
        if len(self.stats.problems) < 100:
            self.stats.problems.append(f"{r.kind} {r.clordid or r.pair_id or ''}: {why}")

    def _apply(self, r: Receipt) -> None:
        kind = r.kind
        if kind == "command.send_order":
            self._sent(r)
        elif kind == "command.cancel_order" or kind == "command.replace_order":
            self._asked(r)
        elif kind == "event.execution" or kind == "event.cancel_reject":
            if r.raw and r.venue and r.line:
                self._report(r.raw, r.venue, r.line, r.cause_ns or r.ts_ns)
        elif kind == "fix.unrecorded":
            self._unrecorded(r)
        elif kind == STAGE_CHANGE_KIND:
            self.stage_change = r
        elif kind == "alert.reconcile":
            if r.verdict == "never_arrived":
                self._never_arrived(r)
        elif kind.startswith("decision."):
            if r.pair_id:
                self.trade_ids.add(r.pair_id)
            if kind == "decision.pair_done":
                pair, position = r.data.get("pair"), r.data.get("position")
                if isinstance(pair, str) and isinstance(position, int):
                    self.units[pair] = position

    # -- what the gateway sent ----------------------------------------------------------------

    def _sent(self, r: Receipt) -> None:
        data = r.data
        if r.venue is None or r.symbol is None or r.clordid is None:
            raise ValueError("a send receipt without venue, symbol or ClOrdID")
        price = _decimal(data.get("price"))
        account = data.get("account")
        order, _ = self.orders.submit(
            r.venue,
            r.symbol,
            Side[str(data["side"])],
            int(str(data["qty"])),
            OrderType.LIMIT if price is not None else OrderType.MARKET,
            price,
            TimeInForce[str(data["tif"])],
            clordid=r.clordid,
            account=account if isinstance(account, str) else None,
            pair_id=r.pair_id,
            leg=_text(data.get("leg")),
            now_ns=r.ts_ns,
        )
        self.stats.orders += 1
        if r.pair_id:
            self.trade_ids.add(r.pair_id)
        if r.verdict == "not sent":
            self.orders.send_failed(order, reason=r.reason or "not sent", now_ns=r.ts_ns)
        elif r.line:
            order.line = LineRole(r.line)

    def _asked(self, r: Receipt) -> None:
        """A cancel or replace asked: the order waits for its answer, as it did live (the OMS
        moves an order to pending before the send, whatever the send then did)."""
        orig = _text(r.data.get("orig_clordid"))
        if r.clordid is None or orig is None:
            raise ValueError("a request receipt without its ClOrdIDs")
        if r.kind == "command.cancel_order":
            self._cancel(orig, r.clordid, r.ts_ns)
        else:
            qty, price = r.data.get("qty"), _decimal(r.data.get("price"))
            if price is None:
                raise ValueError("a replace receipt without its price")
            self._replace(orig, r.clordid, int(str(qty)), price, r.ts_ns)

    def _cancel(self, orig: str, clordid: str, now_ns: int) -> None:
        self.orders.request_cancel(self._order(orig), clordid=clordid, now_ns=now_ns)

    def _replace(self, orig: str, clordid: str, qty: int, price: Decimal, now_ns: int) -> None:
        order = self._order(orig)
        self.orders.request_replace(order, qty, price, clordid=clordid, now_ns=now_ns)

    def _order(self, clordid: str) -> Order:
        order = self.orders.by_clordid(clordid)
        if order is None:
            raise KeyError(f"no order with ClOrdID {clordid}")
        return order

    # -- what only quickfix's log had ---------------------------------------------------------

    def _unrecorded(self, r: Receipt) -> None:
        if not r.raw or r.venue is None or r.line is None:
            return  # a session the configuration no longer names
        tags = fix_tags(r.raw)
        msg_type = tags.get(35)
        if r.verdict == "in" and msg_type in _REPORT_TYPES:
            if self._report(r.raw, r.venue, r.line, r.ts_ns):
                self.stats.unrecorded += 1
            return
        if r.verdict != "out" or self.orders.by_clordid(tags.get(11, "")) is not None:
            return  # a status request, or a message whose command receipt is there
        if msg_type == _NEW_ORDER:
            self._sent_unrecorded(tags, r.venue, LineRole(r.line), r.ts_ns)
        elif msg_type == _CANCEL:
            self._cancel(tags[41], tags[11], r.ts_ns)
        elif msg_type == _REPLACE:
            self._replace(tags[41], tags[11], int(Decimal(tags[38])), Decimal(tags[44]), r.ts_ns)
        else:
            return
        self.stats.unrecorded += 1

    def _sent_unrecorded(
        self, tags: Mapping[int, str], venue: str, line: LineRole, now_ns: int
    ) -> None:
        """A NewOrderSingle the log has and the receipts lack. It carries no trade id: an
        order without an account on an instrument one pair trades is that pair's (the only
        orders the gateway sends without one), under the trade id ``PAIR-recovered``."""
        symbol = tags[55]
        account = tags.get(1)
        owner = None if account else self._pair_of_instrument(venue, symbol)
        price = _decimal(tags.get(44))
        order, _ = self.orders.submit(
            venue,
            symbol,
            Side(tags[54]),
            int(Decimal(tags[38])),
            OrderType(tags.get(40, OrderType.LIMIT.value)),
            price,
            TimeInForce(tags.get(59, TimeInForce.DAY.value)),
            clordid=tags[11],
            account=account,
            pair_id=None if owner is None else f"{owner[0].id}-{UNKNOWN_TRADE}",
            leg=None if owner is None else owner[1],
            now_ns=now_ns,
        )
        order.line = line
        self.stats.orders += 1
        if owner is not None:
            self.stats.inferred += 1

    def _pair_of_instrument(self, venue: str, symbol: str) -> tuple[PairSpec, str] | None:
        found = [
            (spec, leg)
            for spec in self.specs.values()
            for leg, inst in (("inner", spec.inner), ("outer", spec.outer))
            if (inst.venue, inst.symbol) == (venue, symbol)
        ]
        return found[0] if len(found) == 1 else None

    # -- what the venues said -----------------------------------------------------------------

    def _report(self, raw: str, venue: str, line: str, recv_ns: int) -> bool:
        """Apply one received report as the OMS did: whether it changed an order."""
        event = self.decode(raw, venue, LineRole(line), recv_ns)
        if isinstance(event, ExecutionReceived):
            applied = self.orders.apply(event)
        elif isinstance(event, CancelRejected):
            applied = self.orders.apply_cancel_reject(event)
        else:
            return False
        if applied.duplicate:
            self.stats.duplicates += 1
            return False
        if applied.fill is not None and not applied.fill.busted:
            self.stats.fills += 1
        return applied.order is not None

    def _never_arrived(self, r: Receipt) -> None:
        """A reconciliation found the order unknown where it would be known: the OMS
        rejected it then (``Oms.order_gone``), and so does the replay."""
        order = self.orders.by_clordid(r.clordid or "")
        if order is not None and order.working:
            self.orders.send_failed(order, reason=r.reason or "never arrived", now_ns=r.ts_ns)

    # -- the result ---------------------------------------------------------------------------

    def owner(self, order: Order) -> tuple[PairSpec, str] | None:
        """The pair and leg an order's fills count for, if it is a pair's."""
        trade = order.pair_id
        if trade is None:
            return None
        for pair_id in self._by_length:
            if trade.startswith(pair_id + "-"):
                spec = self.specs[pair_id]
                for leg, inst in (("inner", spec.inner), ("outer", spec.outer)):
                    if (inst.venue, inst.symbol) == (order.venue, order.symbol) and (
                        order.leg in (None, leg)
                    ):
                        return spec, leg
                return None
        return None

    def snapshot(self) -> Snapshot:
        legs: dict[str, list[tuple[Order, str]]] = {pair: [] for pair in self.specs}
        for order in self.orders.all():
            owner = self.owner(order)
            if owner is not None:
                legs[owner[0].id].append((order, owner[1]))
        pairs: dict[str, PairState] = {}
        for pair_id, spec in self.specs.items():
            net = {"inner": 0, "outer": 0}
            counted: dict[str, int] = {}
            trades: set[str] = set()
            for order, leg in legs[pair_id]:
                net[leg] += order.fill_qty if order.side is Side.BUY else -order.fill_qty
                counted[order.key] = order.fill_qty
                if order.pair_id is not None:
                    trades.add(order.pair_id)
            m, n = spec.inner_lots, spec.outer_lots
            aligned = net["inner"] // m if net["inner"] % m == 0 else None
            if aligned is None or net["outer"] != -aligned * n:
                aligned = None
            numbers: dict[str, int] = {}
            for trade in self.trade_ids | trades:
                found = trade_number(trade, pair_id)
                if found is not None:
                    numbers[found[0]] = max(numbers.get(found[0], 0), found[1])
            pairs[pair_id] = PairState(
                pair=pair_id,
                net_inner=net["inner"],
                net_outer=net["outer"],
                units=aligned if aligned is not None else self.units.get(pair_id, 0),
                counted=counted,
                trades=frozenset(trades),
                numbers=numbers,
            )
        self.stats.working = len(self.orders.working())
        return Snapshot(self.orders, pairs, self.stats, self.stage_change)


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "None" or value == "":
        return None
    return Decimal(str(value))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


# -- back to trading -------------------------------------------------------------------------


class RecoveryDesk(Protocol):
    """What :class:`Resumption` needs from the OMS."""

    orders: Orders
    lines: LineWatch
    engine: PairEngine

    def now(self) -> int: ...

    def after(self, delay_ns: int, action: Callable[[], None]) -> None: ...

    def record(self, receipt: Receipt) -> None: ...

    def cancel(self, order: Order, *, cause_ns: int | None, why: str, kill: bool = False) -> bool:
        """Ask the venue to cancel ``order``: whether a cancel went out."""
        ...


@dataclass
class _VenueRecovery:
    lines_up: set[LineRole] = field(default_factory=set)
    grace_booked: bool = False
    asked: bool = False  # its working orders were asked after (or there were none)
    run: int | None = None  # the number of the reconciliation that asked
    reconciled: bool = False


class Resumption:
    """A restored OMS on its way back to trading, on the OMS thread.

    Per venue: wait until every line is logged on again (or the venue's reconcile time-out
    after the first, so that one dead line does not hold it for ever), then ask after the
    venue's working orders on the active line. Once the answers are in, cancel the recovered
    pair orders still working there. Per pair: once both venues are reconciled and none of
    its recovered orders works, hand it back to the pair engine, which repairs it if it is
    out of ratio. Client orders are left working (their client may want them): the venues'
    reports keep them current.
    """

    def __init__(self, desk: RecoveryDesk, snapshot: Snapshot, lines: Mapping[str, int]) -> None:
        self.desk = desk
        self.expected = dict(lines)
        self.venues = {venue: _VenueRecovery() for venue in lines}
        self.orders = {o.key for o in snapshot.working}
        self.working_at_start = len(self.orders)
        self.pairs = set(desk.engine.pairs)
        self.cancelled: set[str] = set()
        self.started_ns = desk.now()
        self.done = False
        self._alert_booked = False
        desk.engine.hold_for_recovery(self.pairs)

    # -- events ----------------------------------------------------------------------------

    def on_line_state(self, event: LineStateChanged) -> None:
        """After the line watch saw it (its ``active`` is current)."""
        state = self.venues.get(event.venue)
        if state is None or self.done:
            return
        if event.state is LineState.LOGGED_ON:
            state.lines_up.add(event.line)
        else:
            state.lines_up.discard(event.line)
        if state.asked or event.active is None:
            return
        if len(state.lines_up) >= self.expected[event.venue]:
            self._ask(event.venue, event.recv_ns, "every line of the venue is logged on again")
        elif not state.grace_booked:
            state.grace_booked = True
            timeout_ms = self.desk.lines.policy(event.venue).reconcile_timeout_ms
            self.desk.after(timeout_ms * 1_000_000, lambda: self._grace(event.venue, timeout_ms))

    def on_reconciled(self, venue: str, cause_ns: int | None) -> None:
        """The line watch finished a reconciliation of ``venue`` (ours, or a later one that
        replaced it after a switch)."""
        state = self.venues.get(venue)
        if state is None or self.done or state.reconciled or state.run is None:
            return
        finished = self.desk.lines.finished
        last = finished[-1] if finished else None
        if last is None or last.venue != venue or last.number < state.run:
            return
        self._venue_done(venue, cause_ns)

    def on_order(self, order: Order, cause_ns: int | None) -> None:
        """A recovered order changed: cancel it if its venue is reconciled, free its pair
        when it is over."""
        if self.done or order.key not in self.orders:
            return
        state = self.venues.get(order.venue)
        if state is not None and state.reconciled:
            self._cancel(order, cause_ns)
        self._step(cause_ns)

    # -- steps -----------------------------------------------------------------------------

    def _grace(self, venue: str, timeout_ms: int) -> None:
        state = self.venues[venue]
        state.grace_booked = False
        if state.asked or self.done or self.desk.lines.active.get(venue) is None:
            return  # asked already, or no line up now: the next logon books the wait again
        self._ask(venue, None, f"the venue's other line is not back after {timeout_ms} ms")

    def _ask(self, venue: str, cause_ns: int | None, why: str) -> None:
        state = self.venues[venue]
        state.asked = True
        line = self.desk.lines.active.get(venue)
        assert line is not None
        number = self.desk.lines.reconcile(
            venue, line, cause_ns or self.desk.now(), f"the gateway restarted: {why}"
        )
        if number is None:  # nothing working there
            self._venue_done(venue, cause_ns)
        else:
            state.run = number

    def _venue_done(self, venue: str, cause_ns: int | None) -> None:
        self.venues[venue].reconciled = True
        for key in sorted(self.orders):
            order = self.desk.orders.by_key(key)
            if order is not None and order.venue == venue:
                self._cancel(order, cause_ns)
        self._step(cause_ns)
        if not self.done and not self._alert_booked:
            self._alert_booked = True
            self.desk.after(ALERT_AFTER_NS, self._alert)

    def _cancel(self, order: Order, cause_ns: int | None) -> None:
        """Cancel a recovered pair order still working, once: the trade that sent it is gone.
        One with a request outstanding waits for its answer first."""
        if (
            order.working
            and order.pair_id is not None
            and order.pending_kind is None
            and order.key not in self.cancelled
        ):
            self.cancelled.add(order.key)
            self.desk.cancel(
                order,
                cause_ns=cause_ns,
                why="recovered working after a restart: the trade that sent it did not survive",
            )

    def _step(self, cause_ns: int | None) -> None:
        engine = self.desk.engine
        for pair_id in sorted(self.pairs):
            spec = engine.pairs[pair_id].spec
            venues = (spec.inner.venue, spec.outer.venue)
            if not all(self.venues[v].reconciled for v in venues if v in self.venues):
                continue
            if any(self._holds(key, pair_id) for key in self.orders):
                continue
            self.pairs.discard(pair_id)
            engine.finish_recovery(pair_id, cause_ns)
        if not self.pairs and all(s.reconciled for s in self.venues.values()):
            self._finish(cause_ns)

    def _holds(self, key: str, pair_id: str) -> bool:
        order = self.desk.orders.by_key(key)
        if order is None or not order.working:
            return False
        pair = self.desk.engine.pair_of(order.pair_id)
        return pair is not None and pair.spec.id == pair_id

    def still_working(self) -> list[Order]:
        orders = (self.desk.orders.by_key(k) for k in sorted(self.orders))
        return [o for o in orders if o is not None and o.working]

    def _finish(self, cause_ns: int | None) -> None:
        self.done = True
        now = self.desk.now()
        left = self.still_working()
        self.desk.record(
            Receipt.of(
                "recovery.done",
                ts_ns=now,
                cause_ns=cause_ns,
                verdict="done",
                reason=f"{self.working_at_start} order(s) working at the restart reconciled; "
                f"{len(self.cancelled)} cancel(s) sent; {len(left)} client order(s) left "
                "working; every pair trades again",
                data={
                    "working_at_start": self.working_at_start,
                    "cancels": len(self.cancelled),
                    "left_working": len(left),
                    "took_us": (now - self.started_ns) // 1000,
                },
            )
        )

    def _alert(self) -> None:
        if self.done:
            return
        held = [o for o in self.still_working() if o.pair_id is not None]
        self.desk.record(
            Receipt.of(
                "alert.recovery",
                ts_ns=self.desk.now(),
                verdict="waiting",
                reason=f"pair(s) {', '.join(sorted(self.pairs))} still wait after the restart: "
                f"{len(held)} recovered order(s) still working "
                f"({', '.join(o.key for o in held[:10])}); check them with `cmc orders "
                "--working`",
                data={"pairs": ",".join(sorted(self.pairs)), "working": len(held)},
            )
        )
