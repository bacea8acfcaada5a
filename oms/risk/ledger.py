"""What is exposed: positions, working orders, marks and P&L, per contract and in total.

Why a ledger of its own: the OMS owns the orders, but risk must count what they expose the
moment they are sent, and keep counting as they fill, are amended or finish, and as marks
move. The ledger keeps those figures current as the OMS reports each step, with every
total (gross notional, margin per venue, realised and marked-to-market P&L) updated by the
one contract's difference, so that a check reads totals instead of summing them.

P&L is in the base currency: realised on each fill that closes against the average cost,
marked to market at the contract's reference price (mid, or last).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Final

from oms.enums import Side
from oms.risk.books import ZERO, AccountBook, ContractBook, WorkingOrder
from oms.risk.verdicts import OrderLike

_BUY: Final = Side.BUY
_HALF: Final = Decimal("0.5")


class Ledger:
    """Exposure and P&L, mutated only from the OMS thread through the engine."""

    def __init__(
        self,
        contracts: dict[tuple[str, str], ContractBook],
        account_book: Callable[[str | None], AccountBook | None],
    ) -> None:
        self.contracts = contracts
        self._account_book = account_book
        self.working: dict[str, WorkingOrder] = {}
        self.clordids: set[str] = set()
        """Every ClOrdID sent today, replaces' included: a new order may reuse none."""
        self.open_orders = 0
        self.gross_notional = ZERO
        self.realized = ZERO
        self.upnl = ZERO

    @property
    def pnl(self) -> Decimal:
        """Today's realised plus marked-to-market P&L, in the base currency."""
        return self.realized + self.upnl

    def order_sent(self, order: OrderLike, strategy: str | None) -> None:
        """The order is on its way: its quantity counts as working from now on."""
        c = self.contracts.get((order.venue, order.symbol))
        self.clordids.add(order.clordid)
        if c is None:
            return
        buy = order.side is _BUY
        acct = self._account_book(order.account)
        w = WorkingOrder(order.clordid, c, acct, buy, order.qty, 0, order.price, strategy)
        self.working[order.clordid] = w
        self._add_working(w, order.qty)
        c.venue.open_orders += 1
        self.open_orders += 1
        if acct is not None:
            acct.open_orders += 1
        if c.mark is None and order.price is not None:
            c.value_px = order.price
        self._revalue(c)

    def replace_sent(self, key: str, new_clordid: str, qty: int, price: Decimal) -> None:
        """A replace is on its way: until the venue answers, count the larger of the two."""
        self.clordids.add(new_clordid)
        w = self.working.get(key)
        if w is None:
            return
        leaves = qty - w.filled
        if leaves > w.leaves:
            self._add_working(w, leaves - w.leaves)
            self._revalue(w.contract)

    def order_amended(self, key: str, leaves: int, price: Decimal | None) -> None:
        """The venue says what is left of the order (Replaced, a refused replace, a
        restatement): the working quantity becomes exactly that."""
        w = self.working.get(key)
        if w is None:
            return
        if price is not None:
            w.price = price
        self._add_working(w, max(0, leaves) - w.leaves)
        self._revalue(w.contract)

    def order_done(self, key: str) -> None:
        """The order is finished (filled, cancelled, rejected, expired, done for the day)."""
        w = self.working.pop(key, None)
        if w is None:
            return
        c = w.contract
        self._add_working(w, -w.leaves)
        c.venue.open_orders -= 1
        self.open_orders -= 1
        if w.account is not None:
            w.account.open_orders -= 1
        self._revalue(c)

    def _add_working(self, w: WorkingOrder, delta: int) -> None:
        if not delta:
            return
        w.leaves += delta
        c = w.contract
        if w.buy:
            c.working_buy += delta
        else:
            c.working_sell += delta
        if w.account is not None:
            ap = w.account.at(c.key)
            if w.buy:
                ap.working_buy += delta
            else:
                ap.working_sell += delta

    def fill(
        self,
        key: str | None,
        venue: str,
        symbol: str,
        side: Side,
        qty: int,
        price: Decimal,
    ) -> None:
        """One fill (the OMS has dropped duplicates): position, cost and realised P&L move,
        and the order's working quantity falls by as much (never below zero)."""
        c = self.contracts.get((venue, symbol))
        if c is None:
            return
        buy = side is _BUY
        w = self.working.get(key) if key is not None else None
        if w is not None:
            w.filled += qty
            self._add_working(w, -min(qty, w.leaves))
            if w.account is not None:
                ap = w.account.at(c.key)
                ap.position += qty if buy else -qty
        self._book_fill(c, qty if buy else -qty, price)
        if c.mark is None:
            c.value_px = price
        self._revalue(c)

    def _book_fill(self, c: ContractBook, signed: int, price: Decimal) -> None:
        position = c.position
        if position == 0 or (position > 0) == (signed > 0):
            total = abs(position) + abs(signed)
            c.avg_px = (c.avg_px * abs(position) + price * abs(signed)) / total
        else:
            closed = min(abs(signed), abs(position))
            pnl = (price - c.avg_px) * closed * c.mult
            if position < 0:
                pnl = -pnl
            c.realized += pnl
            self.realized += pnl
            if abs(signed) > abs(position):
                c.avg_px = price
            elif abs(signed) == abs(position):
                c.avg_px = ZERO
        c.position = position + signed

    def market(
        self,
        venue: str,
        symbol: str,
        bid: Decimal | None,
        ask: Decimal | None,
        last: Decimal | None,
        book_ts_ns: int,
    ) -> bool:
        """The top of one book after a market-data message (``book_ts_ns``: when we received
        it). Sets the reference price, marks the position, revalues exposure and margin; says
        whether anything held was revalued (so P&L may have moved)."""
        c = self.contracts.get((venue, symbol))
        if c is None:
            return False
        c.bid = bid
        c.ask = ask
        if last is not None:
            c.last = last
        c.book_ns = book_ts_ns
        mark = c.last if c.use_last or bid is None or ask is None else (bid + ask) * _HALF
        c.mark = mark
        if mark is not None:
            c.value_px = mark
        if c.position or c.working_buy or c.working_sell or c.upnl:
            self._revalue(c)
            return True
        return False

    def _revalue(self, c: ContractBook) -> None:
        """Recompute the contract's cached exposure, margin and unrealised P&L, and the
        totals they are part of."""
        px = c.value_px
        position = c.position
        long_worst = position + c.working_buy
        short_worst = c.working_sell - position
        if px is not None:
            gross = (long_worst if long_worst > 0 else 0) + (short_worst if short_worst > 0 else 0)
            value = gross * px * c.mult
            self.gross_notional += value - c.gross_notional
            c.gross_notional = value
            if c.margin_mult is not None:
                net = long_worst if long_worst > short_worst else short_worst
                margin = (net if net > 0 else 0) * px * c.margin_mult
                c.venue.margin_used += margin - c.margin
                c.margin = margin
        mark = c.mark
        upnl = position * (mark - c.avg_px) * c.mult if mark is not None and position else ZERO
        self.upnl += upnl - c.upnl
        c.upnl = upnl

    def start_day(self) -> None:
        """Today's P&L from zero: realised cleared, open positions re-costed at the mark."""
        self.realized = ZERO
        for c in self.contracts.values():
            c.realized = ZERO
            if c.position and c.mark is not None:
                c.avg_px = c.mark
            self._revalue(c)
