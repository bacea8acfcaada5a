"""The OMS's desk for institutional clients: their orders in, their reports out.

Why a desk of its own: a client speaks in its own ClOrdIDs and must never see or touch
another client's orders, while the venues see only the gateway's. The desk keeps the one
mapping between the two (a client's ClOrdID chain <-> the gateway's venue order) and turns
every venue execution of a client's order into that client's ExecutionReport. Orders go out
through the OMS like any other: the same risk checks (``Origin.CLIENT``, booked to the
client's account), the same receipts. Spread orders (35=AB) become paired-leg trades, with
a report per leg fill and one for the spread. Runs on the OMS thread only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from oms.client_messages import (
    ClientCancel,
    ClientCancelReject,
    ClientMessage,
    ClientNewOrder,
    ClientReplace,
    ClientReport,
    ClientRequest,
    ClientSpread,
    ClientStatus,
    DropCopy,
    RejectReason,
    Reporting,
)
from oms.enums import OrderType, Side
from oms.events import CancelRejected, ExecType, ExecutionReceived, OrdStatus
from oms.orders import Applied, Order
from oms.pair_engine import PairBook
from oms.pairs import Direction, SpreadPair, TradeOutcome
from oms.receipts import Receipt

if TYPE_CHECKING:
    from oms.core import Oms

_ZERO: Final = Decimal(0)
_NONE: Final = "NONE"  # FIX's OrderID for an order the gateway does not have
_SPREAD_DONE: Final = {
    TradeOutcome.FILLED: (ExecType.TRADE, OrdStatus.FILLED),
    TradeOutcome.TOPPED_UP: (ExecType.TRADE, OrdStatus.FILLED),
    TradeOutcome.PARTIAL: (ExecType.CANCELED, OrdStatus.CANCELED),
    TradeOutcome.UNWOUND: (ExecType.CANCELED, OrdStatus.CANCELED),
    TradeOutcome.MISSED: (ExecType.CANCELED, OrdStatus.CANCELED),
}


@dataclass
class ClientOrder:
    """One client order: the client's ClOrdID chain and the gateway's order behind it."""

    client: str
    clordid: str  # the client's current (acknowledged) ClOrdID
    key: str  # the gateway's order (its first ClOrdID to the venue): the client's OrderID
    account: str | None
    clordids: list[str] = field(default_factory=list)


@dataclass
class ClientSpreadOrder:
    """One client spread order and the pair trade that executes it."""

    client: str
    clordid: str
    trade: SpreadPair
    pair: PairBook
    units: int
    account: str | None
    reported: bool = False


@dataclass(frozen=True, slots=True)
class _Pending:
    """A client's cancel or replace on its way to the venue under the gateway's ClOrdID."""

    order: ClientOrder
    clordid: str  # the client's ClOrdID of the request
    orig_clordid: str
    replace: bool


class ClientDesk:
    def __init__(self, oms: Oms, emit: Callable[[ClientMessage], None]) -> None:
        self.oms = oms
        self._emit = emit
        self._orders: dict[tuple[str, str], ClientOrder] = {}  # (client, any ClOrdID)
        self._by_key: dict[str, ClientOrder] = {}  # gateway order key
        self._pending: dict[str, _Pending] = {}  # gateway request ClOrdID
        self._spreads: dict[tuple[str, str], ClientSpreadOrder] = {}
        self._spread_of_trade: dict[str, ClientSpreadOrder] = {}
        self._exec_ids = itertools.count(1)
        oms.engine.finished.append(self._trade_finished)

    # -- requests -------------------------------------------------------------------------

    def handle(self, request: ClientRequest) -> None:
        self._receipt(request)
        if isinstance(request, ClientNewOrder):
            self._new(request)
        elif isinstance(request, ClientCancel):
            self._cancel(request)
        elif isinstance(request, ClientReplace):
            self._replace(request)
        elif isinstance(request, ClientStatus):
            self._status(request)
        else:
            self._spread(request)

    def _new(self, req: ClientNewOrder) -> None:
        if self._duplicate(req):
            return
        order, why = self.oms.send_single(
            req.venue,
            req.symbol,
            req.side,
            req.qty,
            req.ord_type,
            req.price,
            req.tif,
            account=req.account or req.client,
            cause_ns=req.recv_ns,
        )
        if order is None:  # refused before an order existed (an unknown venue, a bad quantity)
            self._emit(self._rejection(req, why or "refused", RejectReason.BROKER_OPTION))
            self._orders[(req.client, req.clordid)] = ClientOrder(
                req.client, req.clordid, _NONE, req.account
            )
            return
        co = ClientOrder(req.client, req.clordid, order.key, order.account, [req.clordid])
        self._orders[(req.client, req.clordid)] = co
        self._by_key[order.key] = co
        if why is not None:  # refused by risk or not sent: Rejected here, the client told why
            self._report(co, order, ExecType.REJECTED, text=why, transact_ns=req.recv_ns)

    def _duplicate(self, req: ClientNewOrder | ClientSpread) -> bool:
        """A ClOrdID the client used already is never executed twice: a PossResend gets the
        order's status, anything else a duplicate-order reject."""
        key = (req.client, req.clordid)
        seen = self._orders.get(key)
        spread = self._spreads.get(key)
        if seen is None and spread is None:
            return False
        now = req.recv_ns
        if req.poss_resend and seen is not None and seen.key != _NONE:
            order = self.oms.order(seen.key)
            if order is not None:
                self._report(seen, order, ExecType.ORDER_STATUS, transact_ns=now)
                return True
        if req.poss_resend and spread is not None:
            self._spread_report(spread, ExecType.ORDER_STATUS, now)
            return True
        why = f"ClOrdID {req.clordid} was used already: the order is not sent twice"
        reporting = Reporting.SPREAD if isinstance(req, ClientSpread) else None
        self._emit(self._rejection(req, why, RejectReason.DUPLICATE_ORDER, reporting))
        return True

    def _find(self, client: str, clordid: str) -> tuple[ClientOrder, Order] | None:
        """The client's own order under any ClOrdID of its chain; another client's is not
        found, whatever its ClOrdID."""
        co = self._orders.get((client, clordid))
        if co is None or co.key == _NONE:
            return None
        order = self.oms.order(co.key)
        return None if order is None else (co, order)

    def _cancel(self, req: ClientCancel) -> None:
        found = self._amendable(req, replace=False)
        if found is None:
            return
        co, order = found
        sent = self.oms.cancel(order, cause_ns=req.recv_ns, why=f"client {req.client} cancel")
        refused = None if sent else "the cancel could not be sent to the venue now; try again"
        self._requested(req, co, order, refused, replace=False)

    def _replace(self, req: ClientReplace) -> None:
        found = self._amendable(req, replace=True)
        if found is None:
            return
        co, order = found
        refused = self.oms.replace(order, req.qty, req.price, cause_ns=req.recv_ns)
        self._requested(req, co, order, refused, replace=True)

    def _amendable(
        self, req: ClientCancel | ClientReplace, *, replace: bool
    ) -> tuple[ClientOrder, Order] | None:
        """The client's own working order with no request pending, or None once the client
        has been told why not (an OrderCancelReject)."""
        found = self._find(req.client, req.orig_clordid)
        order = found[1] if found is not None else None
        if order is None:
            why = "unknown order"
        elif not order.working:
            what = "replace" if replace else "cancel"
            why = f"the order is {order.status.name.lower()}: too late to {what}"
        elif order.pending_kind is not None:
            why = f"a {order.pending_kind.value} of the order is already pending"
        else:
            return found
        self._cancel_reject(req.client, req.clordid, req.orig_clordid, order, replace, why)
        return None

    def _requested(
        self,
        req: ClientCancel | ClientReplace,
        co: ClientOrder,
        order: Order,
        refused: str | None,
        *,
        replace: bool,
    ) -> None:
        """After the OMS was asked: the client's request waits for the venue's answer under
        the gateway's ClOrdID, or is refused now."""
        if refused is not None or order.pending_clordid is None:
            why = refused or "not sent"
            self._cancel_reject(req.client, req.clordid, req.orig_clordid, order, replace, why)
            return
        self._pending[order.pending_clordid] = _Pending(co, req.clordid, req.orig_clordid, replace)
        self._remember(co, req.clordid)

    def _status(self, req: ClientStatus) -> None:
        found = self._find(req.client, req.clordid)
        spread = self._spreads.get((req.client, req.clordid))
        if spread is not None:
            self._spread_report(spread, ExecType.ORDER_STATUS, req.recv_ns, req.req_id)
            return
        if found is None:
            self._emit(
                ClientReport(
                    req.client,
                    req.clordid,
                    None,
                    _NONE,
                    self._exec_id(),
                    ExecType.ORDER_STATUS,
                    OrdStatus.REJECTED,
                    "",
                    req.symbol,
                    req.side,
                    0,
                    None,
                    0,
                    None,
                    0,
                    0,
                    _ZERO,
                    None,
                    req.recv_ns,
                    text="unknown order",
                    reject_reason=RejectReason.UNKNOWN_ORDER,
                    status_req_id=req.req_id,
                )
            )
            return
        co, order = found
        self._report(
            co, order, ExecType.ORDER_STATUS, transact_ns=req.recv_ns, status_req_id=req.req_id
        )

    def _spread(self, req: ClientSpread) -> None:
        if self._duplicate(req):
            return
        pair, direction = self._pair_for(req)
        if pair is None or direction is None:
            legs = ", ".join(f"{leg.venue}:{leg.symbol}" for leg in req.legs)
            self._spread_rejected(req, f"the legs ({legs}) are not a configured pair's")
            return
        if req.ord_type is OrderType.LIMIT and req.price is None:
            self._spread_rejected(req, "a limit spread order needs Price(44): the least spread")
            return
        least = req.price if req.ord_type is OrderType.LIMIT else None
        outcome = self.oms.engine.trade_now(
            pair.spec.id, direction, req.units, req.recv_ns, min_spread=least
        )
        if isinstance(outcome, str):
            self._spread_rejected(req, outcome)
            return
        spread = ClientSpreadOrder(
            req.client, req.clordid, outcome, pair, req.units, req.account or req.client
        )
        self._spreads[(req.client, req.clordid)] = spread
        self._spread_of_trade[outcome.intent.intent_id] = spread
        self._spread_report(spread, ExecType.NEW, req.recv_ns)
        if outcome.outcome is not None:  # ended at once (every leg refused, say)
            self._trade_finished(pair, outcome)

    def _pair_for(self, req: ClientSpread) -> tuple[PairBook | None, Direction | None]:
        if len(req.legs) != 2:
            return None, None
        for pair in self.oms.pairs.values():
            spec = pair.spec
            by_place = {(leg.venue, leg.symbol): leg for leg in req.legs}
            inner = by_place.get((spec.inner.venue, spec.inner.symbol))
            outer = by_place.get((spec.outer.venue, spec.outer.symbol))
            if inner is None or outer is None or inner.side is outer.side:
                continue
            return pair, Direction.BUY_INNER if inner.side is Side.BUY else Direction.SELL_INNER
        return None, None

    # -- what the venues said ------------------------------------------------------------

    def on_execution(self, applied: Applied, event: ExecutionReceived) -> None:
        """A venue's report applied to one of the gateway's orders: the drop copy, and the
        client's own report if the order is a client's. A venue's answer to a status
        request (150=I) is not passed on: the gateway asked, after a line switch, and a
        client's own status request is answered here from the OMS."""
        order = applied.order
        if order is None or applied.duplicate or event.exec_type is ExecType.ORDER_STATUS:
            return
        self._emit(DropCopy(self._venue_report(order, event)))
        co = self._by_key.get(order.key)
        if co is not None:
            self._client_report(co, order, event)
            return
        spread = self._spread_of_trade.get(order.pair_id or "")
        if spread is not None and event.exec_type in (ExecType.TRADE, ExecType.TRADE_CANCEL):
            self._emit(self._leg_report(spread, order, event))

    def order_gone(self, order: Order, pending_clordid: str | None, why: str, now_ns: int) -> None:
        """A client's order the venue never received (judged so after a line was lost): the
        client gets it Rejected, and a cancel or replace it had sent for it is refused."""
        co = self._by_key.get(order.key)
        if co is None:
            return
        pending = self._pending.pop(pending_clordid or "", None)
        if pending is not None:
            self._cancel_reject(
                co.client, pending.clordid, pending.orig_clordid, order, pending.replace, why
            )
        self._report(co, order, ExecType.REJECTED, text=why, transact_ns=now_ns)

    def on_cancel_reject(self, applied: Applied, event: CancelRejected) -> None:
        pending = self._pending.pop(event.clordid, None)
        order = applied.order
        if pending is None or order is None:
            return
        self._cancel_reject(
            pending.order.client,
            pending.clordid,
            pending.orig_clordid,
            order,
            pending.replace,
            event.text or "the venue refused it",
        )

    def _client_report(self, co: ClientOrder, order: Order, event: ExecutionReceived) -> None:
        pending = self._pending.get(event.clordid)
        clordid, orig = co.clordid, None
        if pending is not None:
            clordid, orig = pending.clordid, pending.orig_clordid
            if event.exec_type in (ExecType.CANCELED, ExecType.REPLACED):
                del self._pending[event.clordid]
                co.clordid = pending.clordid
        self._report(
            co,
            order,
            event.exec_type,
            clordid=clordid,
            orig_clordid=orig,
            last_qty=event.last_qty,
            last_px=event.last_px,
            exec_id=f"{order.venue}:{event.exec_id}",
            text=event.text,
            transact_ns=event.recv_ns,
        )

    # -- spreads ---------------------------------------------------------------------------

    def _trade_finished(self, pair: PairBook, trade: SpreadPair) -> None:
        spread = self._spread_of_trade.get(trade.intent.intent_id)
        if spread is None or spread.reported or trade.outcome is None:
            return
        spread.reported = True
        exec_type, _ = _SPREAD_DONE[trade.outcome]
        self._spread_report(spread, exec_type, self.oms.now())

    def _spread_report(
        self,
        spread: ClientSpreadOrder,
        exec_type: ExecType,
        now: int,
        status_req_id: str | None = None,
    ) -> None:
        trade = spread.trade
        done_units = abs(spread.pair.units - trade.from_units) if trade.outcome else 0
        if trade.outcome is None:
            status = OrdStatus.NEW
        else:
            status = _SPREAD_DONE[trade.outcome][1]
            if trade.outcome is TradeOutcome.PARTIAL:
                status = OrdStatus.CANCELED
        filled = exec_type is ExecType.TRADE
        self._emit(
            ClientReport(
                spread.client,
                spread.clordid,
                None,
                trade.intent.intent_id,
                self._exec_id(),
                exec_type,
                status,
                "",
                spread.pair.spec.id,
                trade.intent.direction.inner_side,
                spread.units,
                None,
                done_units if filled else 0,
                trade.intent.spread if filled else None,
                done_units,
                0 if trade.outcome else spread.units,
                trade.intent.spread if done_units else _ZERO,
                spread.account,
                now,
                text=None if trade.outcome is None else f"spread trade {trade.outcome.value}",
                reporting=Reporting.SPREAD,
                status_req_id=status_req_id,
            )
        )

    def _spread_rejected(self, req: ClientSpread, why: str) -> None:
        self._orders[(req.client, req.clordid)] = ClientOrder(
            req.client, req.clordid, _NONE, req.account
        )
        self._emit(self._rejection(req, why, RejectReason.BROKER_OPTION, Reporting.SPREAD))

    def _leg_report(
        self, spread: ClientSpreadOrder, order: Order, event: ExecutionReceived
    ) -> ClientReport:
        report = self._venue_report(order, event)
        return ClientReport(
            spread.client,
            spread.clordid,
            None,
            spread.trade.intent.intent_id,
            report.exec_id,
            report.exec_type,
            report.ord_status,
            report.venue,
            report.symbol,
            report.side,
            report.qty,
            report.price,
            report.last_qty,
            report.last_px,
            report.cum_qty,
            report.leaves_qty,
            report.avg_px,
            spread.account,
            report.transact_ns,
            reporting=Reporting.LEG,
        )

    # -- building reports -------------------------------------------------------------------

    def _report(
        self,
        co: ClientOrder,
        order: Order,
        exec_type: ExecType,
        *,
        clordid: str | None = None,
        orig_clordid: str | None = None,
        last_qty: int = 0,
        last_px: Decimal | None = None,
        exec_id: str | None = None,
        text: str | None = None,
        transact_ns: int,
        status_req_id: str | None = None,
    ) -> None:
        self._emit(
            ClientReport(
                co.client,
                clordid or co.clordid,
                orig_clordid,
                order.key,
                exec_id or self._exec_id(),
                exec_type,
                order.status,
                order.venue,
                order.symbol,
                order.side,
                order.qty,
                order.price,
                last_qty,
                last_px,
                order.fill_qty,
                order.leaves_qty if order.working else 0,
                order.vwap or _ZERO,
                co.account,
                transact_ns,
                text=text,
                status_req_id=status_req_id,
            )
        )

    def _venue_report(self, order: Order, event: ExecutionReceived) -> ClientReport:
        """The execution as the venue reported it, in the gateway's own ids (for drop copies
        and leg reports): ExecID ``venue:ExecID`` so each one names the venue's."""
        return ClientReport(
            "",
            order.key,
            None,
            order.key,
            f"{order.venue}:{event.exec_id}",
            event.exec_type,
            order.status,
            order.venue,
            order.symbol,
            order.side,
            order.qty,
            order.price,
            event.last_qty,
            event.last_px,
            order.fill_qty,
            order.leaves_qty if order.working else 0,
            order.vwap or _ZERO,
            order.account,
            event.recv_ns,
            text=event.text,
        )

    def _rejection(
        self,
        req: ClientNewOrder | ClientSpread,
        why: str,
        reason: RejectReason,
        reporting: Reporting | None = None,
    ) -> ClientReport:
        if isinstance(req, ClientNewOrder):
            venue, symbol, side, qty = req.venue, req.symbol, req.side, req.qty
        else:
            venue, symbol, qty = "", "", req.units
            side = req.legs[0].side if req.legs else Side.BUY
        return ClientReport(
            req.client,
            req.clordid,
            None,
            _NONE,
            self._exec_id(),
            ExecType.REJECTED,
            OrdStatus.REJECTED,
            venue,
            symbol,
            side,
            qty,
            req.price,
            0,
            None,
            0,
            0,
            _ZERO,
            req.account,
            req.recv_ns,
            text=why,
            reject_reason=reason,
            reporting=reporting,
        )

    def _cancel_reject(
        self,
        client: str,
        clordid: str,
        orig_clordid: str,
        order: Order | None,
        replace: bool,
        why: str,
    ) -> None:
        self._emit(
            ClientCancelReject(
                client,
                clordid,
                orig_clordid,
                order.key if order is not None else _NONE,
                order.status if order is not None else OrdStatus.REJECTED,
                replace,
                order is None,
                why,
                self.oms.now(),
            )
        )

    def _remember(self, co: ClientOrder, clordid: str) -> None:
        co.clordids.append(clordid)
        self._orders[(co.client, clordid)] = co

    def _exec_id(self) -> str:
        return f"CMC-X{next(self._exec_ids)}"

    def _receipt(self, req: ClientRequest) -> None:
        kind = type(req).__name__
        self.oms.record(
            Receipt.of(
                "event.client_request",
                ts_ns=self.oms.now(),
                cause_ns=req.recv_ns,
                venue=getattr(req, "venue", None),
                symbol=getattr(req, "symbol", None),
                clordid=req.clordid,
                verdict=kind,
                data={"client": req.client, "orig_clordid": getattr(req, "orig_clordid", None)},
            )
        )
