"""The pre-trade risk engine: every order the OMS would send is checked here first.

Why one engine on the OMS thread: the OMS owns orders and positions and is their single
writer; risk must see exactly what the OMS is about to do, in the same order, and answer
before the order leaves. So the engine is plain synchronous code the OMS calls on its own
thread: no I/O, no locks, no clock read (time comes in as ``now_ns``), limits resolved into
plain values when it is built. It never sends anything: it answers with a :class:`Verdict`
(and, for the kill switch, a :class:`KillOrder`), and the OMS acts and records a receipt.

How the OMS uses it (all on the OMS thread, ``now_ns`` its own clock):

* before an entry, ``check_intent(IntentFacts, now_ns)``; then ``check_order`` on each leg
  with the same ``now_ns`` (an intent that passed has checked that both legs will find a
  throttle token and fit every limit at their worst price, so both legs pass);
* before any order (leg, top-up, unwind, client order) ``check_order(order, ctx, now_ns)``;
  before a cancel ``check_cancel``; before a replace ``check_replace``;
* a passing verdict has taken its throttle token: send the order, then
  ``on_order_sent(order, ctx, now_ns)`` (exposure counts from then on);
* from execution reports: ``on_ack`` (New, with the ack latency), ``on_reject`` (Rejected),
  ``on_fill`` (each fill, once), ``on_order_amended`` (Replaced, a refused replace, a
  restatement), ``on_order_done`` (Filled, Canceled, Rejected, Expired, DoneForDay);
* from market data ``on_market`` (the top of the book and its receive time), from clock
  calibration ``on_clock_offset``, from line changes ``on_session``;
* an operator's ``set_state`` and ``kill``.

Every call that can change a state or raise an alert returns those as notices (a verdict
carries its own in ``Verdict.notices``): the OMS records one receipt per notice.

The split with the OMS on the kill switch: the engine does not know the orders, so ``kill``
halts the scope (nothing new passes) and returns a :class:`KillOrder`; the OMS cancels every
working order it covers, calling ``check_cancel(..., kill=True)`` (never throttled).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from oms.enums import Side
from oms.instruments import Instrument
from oms.risk import verdicts as v
from oms.risk.books import (
    ZERO,
    AccountBook,
    AccountPosition,
    ContractBook,
    StrategyBook,
    VenueBook,
)
from oms.risk.build import account_book, build_books, has_account_defaults, strategy_book
from oms.risk.canary import COUNTED_NOTIONAL, COUNTED_PAIR, Canary
from oms.risk.health import HealthMonitor
from oms.risk.ledger import Ledger
from oms.risk.limits import RiskConfig
from oms.risk.refusals import no, position_refusal, state_refusal, too_many
from oms.risk.states import (
    GLOBAL,
    NO_NOTICES,
    Alert,
    Figures,
    KillOrder,
    Notice,
    Scope,
    ScopeKind,
    StateChange,
    TradingState,
)
from oms.risk.verdicts import IntentFacts, LegFacts, OrderContext, OrderLike, Origin, Verdict

_BUY: Final = Side.BUY
_ACTIVE: Final = TradingState.ACTIVE
_REDUCING: Final = TradingState.REDUCING
_HALTED: Final = TradingState.HALTED
_ENTRIES: Final = frozenset({Origin.ENTRY, Origin.CLIENT})
_CANARY_CAPPED: Final = frozenset({Origin.ENTRY, Origin.CLIENT, Origin.OPERATOR})
"""What the canary caps may refuse: not the top-ups, hedges and unwinds of a pair on the
market (``oms.risk.canary``)."""
_NO_FIGURES: Final[Figures] = {}


class _Pending:
    """What the other leg of an intent adds before this one is checked."""

    __slots__ = ("gross_notional", "margin", "margin_venue", "open_total", "open_venue", "venue")

    def __init__(self) -> None:
        self.venue: VenueBook | None = None
        self.open_venue = 0
        self.open_total = 0
        self.gross_notional = ZERO
        self.margin_venue: VenueBook | None = None
        self.margin = ZERO


class RiskEngine:
    """Pre-trade checks, trading states and the kill switch, for the OMS thread only."""

    def __init__(
        self,
        config: RiskConfig,
        instruments: Mapping[tuple[str, str], Instrument],
    ) -> None:
        self.config = config
        self.state: TradingState = _ACTIVE
        self.daily_loss_limit = config.daily_loss_limit
        self.max_gross_notional = config.max_gross_notional
        self.max_open_orders = config.max_open_orders
        self._loss_breached = False
        self.strategies: dict[str, StrategyBook] = {}
        self.accounts: dict[str, AccountBook] = {}
        self._account_defaults_set = has_account_defaults(config)
        self.venues, self.contracts = build_books(config, instruments)
        self.ledger = Ledger(self.contracts, self._account)
        self.health = HealthMonitor(self.venues, self._strategy, self._change)
        for name in config.strategies:
            self._strategy(name)
        for name in config.accounts:
            self._account(name)
        self.canary: Canary | None = None
        """The canary stage's caps while the gateway is in it, else None."""

    def _strategy(self, name: str) -> StrategyBook:
        book = self.strategies.get(name)
        if book is None:
            book = self.strategies[name] = strategy_book(self.config, name)
        return book

    def _account(self, name: str | None) -> AccountBook | None:
        """The account's book if it has limits of its own (or defaults apply), else None."""
        if name is None:
            return None
        book = self.accounts.get(name)
        if book is None and (self._account_defaults_set or name in self.config.accounts):
            book = self.accounts[name] = account_book(self.config, name)
        return book

    # -- verdict helpers --------------------------------------------------------------------

    def _scopes(
        self, venues: tuple[VenueBook, ...], strategy: StrategyBook | None
    ) -> list[tuple[Scope, TradingState]]:
        out: list[tuple[Scope, TradingState]] = [(GLOBAL, self.state)]
        out += [(Scope.venue(vb.name), vb.state) for vb in venues]
        if strategy is not None:
            out.append((Scope.strategy(strategy.name), strategy.state))
        return out

    # -- the hot path -----------------------------------------------------------------------

    def check_order(self, order: OrderLike, ctx: OrderContext, now_ns: int) -> Verdict:
        """Whether one order may be sent now. A pass has taken a throttle token."""
        c = self.contracts.get((order.venue, order.symbol))
        if c is None:
            return no(
                v.UNKNOWN_INSTRUMENT,
                f"{order.venue}:{order.symbol} is not an instrument risk knows",
                {"venue": order.venue, "symbol": order.symbol},
            )
        vb = c.venue
        buy = order.side is _BUY
        qty = order.qty
        strat = None
        if ctx.strategy is not None:
            strat = self.strategies.get(ctx.strategy) or self._strategy(ctx.strategy)
        side_after = (c.position + c.working_buy if buy else c.working_sell - c.position) + qty
        reducing = side_after <= 0
        state = self.state
        if vb.state > state:
            state = vb.state
        if strat is not None and strat.state > state:
            state = strat.state
        if state and (state is _HALTED or not reducing):
            return state_refusal(state, self._scopes((vb,), strat), "this order")
        if strat is not None and not strat.enabled:
            return no(
                v.STRATEGY_DISABLED,
                f"strategy {strat.name} is disabled in the risk configuration",
                {"strategy": strat.name},
            )
        clordid = order.clordid
        if clordid in self.ledger.clordids:
            return no(
                v.DUPLICATE_CLORDID,
                f"ClOrdID {clordid} has been used already",
                {"clordid": clordid},
            )
        price = order.price
        verdict = self._leg(
            c,
            buy,
            qty,
            qty,
            price,
            price,
            price,
            self._account(order.account),
            ctx.origin in _ENTRIES,
            reducing,
            now_ns,
            None,
        )
        if not verdict.passed:
            return verdict
        canary = self.canary
        if canary is not None and not reducing and ctx.origin in _CANARY_CAPPED:
            refusal = canary.check_order(qty, _notional(verdict), now_ns)
            if refusal is not None:
                return refusal
        bucket = vb.orders
        if bucket is not None and not bucket.take(now_ns):
            return no(
                v.ORDERS_PER_S,
                f"{vb.name} allows {bucket.rate_per_s} new orders a second (burst "
                f"{bucket.burst}); the next is free in {bucket.wait_ns(now_ns) / 1e6:.3f} ms",
                {
                    "venue": vb.name,
                    "rate_per_s": bucket.rate_per_s,
                    "burst": bucket.burst,
                    "wait_ns": bucket.wait_ns(now_ns),
                },
                reducing=reducing,
            )
        if canary is not None:
            counted = _notional(verdict)
            canary.count_order(counted, now_ns)
            return _with(verdict, {COUNTED_NOTIONAL: counted})
        return verdict

    def _leg(
        self,
        c: ContractBook,
        buy: bool,
        qty: int,
        add: int,
        price: Decimal | None,
        worst_px: Decimal | None,
        notional_px: Decimal | None,
        acct: AccountBook | None,
        entry: bool,
        reducing: bool,
        now_ns: int,
        pend: _Pending | None,
    ) -> Verdict:
        """Every check of one order (or one leg at its worst) but the states and throttles.

        ``qty`` is the order's size, ``add`` what it adds to the working side (a replace adds
        only its increase); ``price`` is checked for tick and precision, ``worst_px`` against
        the collar, ``notional_px`` gives the order's notional (None: a market order, valued
        at the reference price moved by the whole collar).
        """
        vb = c.venue
        if not c.enabled:
            return no(
                v.INSTRUMENT_DISABLED,
                f"{vb.name}:{c.instrument.symbol} is disabled in the risk configuration",
                {"venue": vb.name, "symbol": c.instrument.symbol},
            )
        if not vb.up:
            return no(
                v.SESSION_CLOSED,
                f"no line to {vb.name} is logged on",
                {"venue": vb.name},
            )
        if acct is not None and not acct.enabled:
            return no(
                v.ACCOUNT_DISABLED,
                f"account {acct.name} is disabled in the risk configuration",
                {"account": acct.name},
            )
        # -- size ---------------------------------------------------------------------------
        if qty < 1 or qty % c.lot:
            return no(
                v.LOT,
                f"quantity {qty} is not a whole number of lots of {c.lot}",
                {"qty": qty, "lot": c.lot},
            )
        if c.min_qty is not None and qty < c.min_qty:
            return no(
                v.MIN_QTY,
                f"quantity {qty} is below the minimum of {c.min_qty}",
                {"qty": qty, "limit": c.min_qty},
            )
        limit_qty = c.max_qty
        if limit_qty is not None and qty > limit_qty:
            return no(
                v.MAX_QTY,
                f"quantity {qty} is above the maximum of {limit_qty} per order",
                {"qty": qty, "limit": limit_qty, "scope": "instrument"},
            )
        if acct is not None and acct.max_qty is not None and qty > acct.max_qty:
            return no(
                v.MAX_QTY,
                f"quantity {qty} is above account {acct.name}'s maximum of {acct.max_qty}",
                {"qty": qty, "limit": acct.max_qty, "scope": f"account:{acct.name}"},
            )
        # -- price --------------------------------------------------------------------------
        if price is not None and (price <= 0 or price % c.tick):
            if price > 0 and (price * c.tick_scale) % 1:
                return no(
                    v.PRECISION,
                    f"price {price} has more decimal places than the tick {c.tick} allows",
                    {"price": price, "tick": c.tick},
                )
            return no(
                v.TICK,
                f"price {price} is not a positive multiple of the tick {c.tick}",
                {"price": price, "tick": c.tick},
            )
        ref = c.mark
        if entry and not reducing and c.stale_ns is not None:
            book_ns = c.book_ns
            if book_ns is None or now_ns - book_ns > c.stale_ns:
                age = None if book_ns is None else now_ns - book_ns
                return no(
                    v.STALE_MARKET_DATA,
                    f"market data for {vb.name}:{c.instrument.symbol} is "
                    + ("missing" if age is None else f"{age / 1e6:.1f} ms old")
                    + f", more than {c.stale_ns / 1e6:g} ms: entries wait for a fresh book",
                    {"age_ns": age, "limit_ns": c.stale_ns},
                )
        width = c.collar_width
        frac = c.collar_frac
        if width is not None or frac is not None:
            if ref is None:
                return no(
                    v.NO_REFERENCE_PRICE,
                    f"no reference price for {vb.name}:{c.instrument.symbol} yet, so the "
                    "price collar cannot be checked",
                    {"venue": vb.name, "symbol": c.instrument.symbol},
                )
            if frac is not None:
                pct_width = ref * frac
                if width is None or pct_width < width:
                    width = pct_width
            assert width is not None
            if worst_px is None:
                worst_px = ref + width if buy else ref - width
            elif (worst_px - ref if worst_px > ref else ref - worst_px) > width:
                return no(
                    v.PRICE_COLLAR,
                    f"price {worst_px} is more than {width} from the reference {ref}",
                    {
                        "price": worst_px,
                        "reference": ref,
                        "low": ref - width,
                        "high": ref + width,
                    },
                    reducing=reducing,
                )
        if notional_px is None:
            notional_px = worst_px if worst_px is not None else ref
            if notional_px is None:
                return no(
                    v.NO_REFERENCE_PRICE,
                    f"a market order on {vb.name}:{c.instrument.symbol} needs a reference "
                    "price to be valued, and there is none yet",
                    {"venue": vb.name, "symbol": c.instrument.symbol},
                )
        notional = qty * notional_px * c.mult
        limit = c.max_notional
        if limit is not None and notional > limit:
            return no(
                v.MAX_NOTIONAL,
                f"order notional {notional:.2f} {self.config.base_currency} is above the "
                f"limit of {limit} per order",
                {"notional": notional, "limit": limit, "scope": "instrument"},
                reducing=reducing,
            )
        if acct is not None and acct.max_notional is not None and notional > acct.max_notional:
            return no(
                v.MAX_NOTIONAL,
                f"order notional {notional:.2f} {self.config.base_currency} is above account "
                f"{acct.name}'s limit of {acct.max_notional} per order",
                {"notional": notional, "limit": acct.max_notional, "scope": f"account:{acct.name}"},
                reducing=reducing,
            )
        # -- open orders --------------------------------------------------------------------
        if add:
            more_v = more_t = 1
            if pend is not None:
                more_t += pend.open_total
                if pend.venue is vb:
                    more_v += pend.open_venue
            cap = vb.max_open_orders
            if cap is not None and vb.open_orders + more_v > cap:
                return too_many(f"venue:{vb.name}", vb.open_orders, more_v, cap)
            cap = self.max_open_orders
            if cap is not None and self.ledger.open_orders + more_t > cap:
                return too_many("global", self.ledger.open_orders, more_t, cap)
            cap = acct.max_open_orders if acct is not None else None
            if cap is not None and acct is not None and acct.open_orders + more_t > cap:
                return too_many(f"account:{acct.name}", acct.open_orders, more_t, cap)
        # -- exposure -----------------------------------------------------------------------
        position = c.position
        if buy:
            side_after = position + c.working_buy + add
            other = c.working_sell - position
        else:
            side_after = c.working_sell - position + add
            other = position + c.working_buy
        if other < 0:
            other = 0
        gross_after = (side_after if side_after > 0 else 0) + other
        value_px = ref if ref is not None else notional_px
        if add and acct is not None and (acct.max_net is not None or acct.max_gross is not None):
            refusal = self._account_position(acct, c, buy, add)
            if refusal is not None:
                return refusal
        if add and side_after > 0:
            limit_pos = c.max_net
            if limit_pos is not None and side_after > limit_pos:
                return position_refusal(
                    v.MAX_NET_POSITION,
                    "instrument",
                    c,
                    buy,
                    add,
                    side_after,
                    limit_pos,
                    position,
                    c.working_buy,
                    c.working_sell,
                )
            limit_pos = c.max_gross
            if limit_pos is not None and gross_after > limit_pos:
                return position_refusal(
                    v.MAX_GROSS_POSITION,
                    "instrument",
                    c,
                    buy,
                    add,
                    gross_after,
                    limit_pos,
                    position,
                    c.working_buy,
                    c.working_sell,
                )
            limit = c.max_position_notional
            if limit is not None:
                exposure = side_after * value_px * c.mult
                if exposure > limit:
                    return no(
                        v.MAX_POSITION_NOTIONAL,
                        f"the worst {'long' if buy else 'short'} position would be {side_after}"
                        f" contracts worth {exposure:.2f} {self.config.base_currency} at "
                        f"{value_px}, above the limit of {limit}",
                        {
                            "net_after": side_after,
                            "value_px": value_px,
                            "notional": exposure,
                            "limit": limit,
                        },
                    )
            limit = self.max_gross_notional
            if limit is not None:
                total = (
                    self.ledger.gross_notional
                    - c.gross_notional
                    + gross_after * value_px * c.mult
                    + (pend.gross_notional if pend is not None else ZERO)
                )
                if total > limit:
                    return no(
                        v.MAX_GROSS_NOTIONAL,
                        f"gross exposure across all contracts would be {total:.2f} "
                        f"{self.config.base_currency}, above the limit of {limit}",
                        {"gross_notional": total, "limit": limit},
                    )
            margin_mult = c.margin_mult
            available = vb.margin_available
            if margin_mult is not None and available is not None:
                net_after = side_after if side_after > other else other
                used = vb.margin_used - c.margin + net_after * value_px * margin_mult
                if pend is not None and pend.margin_venue is vb:
                    used += pend.margin
                if used > available:
                    return no(
                        v.MARGIN,
                        f"initial margin on {vb.name} would be {used:.2f} {vb.currency}, "
                        f"above the {available} available",
                        {"margin": used, "available": available, "currency": vb.currency},
                    )
            limit = self.daily_loss_limit
            if limit is not None:
                pnl = self.ledger.realized + self.ledger.upnl
                if pnl <= -limit:
                    return no(
                        v.DAILY_LOSS,
                        f"today's P&L is {pnl:.2f} {self.config.base_currency}, at or past the "
                        f"loss limit of {limit}: only reducing orders pass",
                        {"pnl": pnl, "limit": limit},
                    )
        return Verdict(
            True,
            v.PASSED,
            "within every limit",
            {
                "notional": notional,
                "net_after": side_after if side_after > other else other,
                "gross_after": gross_after,
            },
            NO_NOTICES,
            reducing,
        )

    def _account_position(
        self, acct: AccountBook, c: ContractBook, buy: bool, add: int
    ) -> Verdict | None:
        ap = acct.positions.get(c.key) or AccountPosition()
        if buy:
            side_after = ap.position + ap.working_buy + add
            other = ap.working_sell - ap.position
        else:
            side_after = ap.working_sell - ap.position + add
            other = ap.position + ap.working_buy
        if side_after <= 0:
            return None
        scope = f"account:{acct.name}"
        if acct.max_net is not None and side_after > acct.max_net:
            return position_refusal(
                v.MAX_NET_POSITION,
                scope,
                c,
                buy,
                add,
                side_after,
                acct.max_net,
                ap.position,
                ap.working_buy,
                ap.working_sell,
            )
        gross = side_after + (other if other > 0 else 0)
        if acct.max_gross is not None and gross > acct.max_gross:
            return position_refusal(
                v.MAX_GROSS_POSITION,
                scope,
                c,
                buy,
                add,
                gross,
                acct.max_gross,
                ap.position,
                ap.working_buy,
                ap.working_sell,
            )
        return None

    # -- intents ----------------------------------------------------------------------------

    def check_intent(self, intent: IntentFacts, now_ns: int) -> Verdict:
        """Whether a spread intent may go ahead: every leg order it could produce, at once,
        at its worst price (the limit moved by the full pay-up), within every limit.

        It takes no throttle token but checks that each venue has one for each of its legs,
        so the legs' own ``check_order`` calls at the same ``now_ns`` find them.
        """
        inner = intent.inner
        outer = intent.outer
        ci = self.contracts.get((inner.venue, inner.symbol))
        co = self.contracts.get((outer.venue, outer.symbol))
        if ci is None or co is None:
            leg = inner if ci is None else outer
            return no(
                v.UNKNOWN_INSTRUMENT,
                f"{leg.venue}:{leg.symbol} is not an instrument risk knows",
                {"venue": leg.venue, "symbol": leg.symbol},
            )
        if ci is co:
            return no(
                v.INVALID_INTENT,
                "both legs are the same contract",
                {"venue": inner.venue, "symbol": inner.symbol},
            )
        strat = self.strategies.get(intent.strategy) or self._strategy(intent.strategy)
        inner_buy = inner.side is _BUY
        outer_buy = outer.side is _BUY
        inner_reducing = (
            ci.position + ci.working_buy if inner_buy else ci.working_sell - ci.position
        ) + inner.qty <= 0
        outer_reducing = (
            co.position + co.working_buy if outer_buy else co.working_sell - co.position
        ) + outer.qty <= 0
        closing = inner_reducing and outer_reducing
        vi = ci.venue
        vo = co.venue
        state = self.state
        for scope_state in (vi.state, vo.state, strat.state):
            if scope_state > state:
                state = scope_state
        if state and (state is _HALTED or not closing):
            scopes = self._scopes((vi, vo), strat)
            return state_refusal(state, scopes, "this spread trade")
        refusal = self._strategy_limits(strat, intent, now_ns)
        if refusal is not None:
            return refusal
        pay_up = intent.max_pay_up_ticks
        pend = _Pending()
        acct = self._account(intent.account)
        entry = not closing
        first = self._intent_leg(
            "inner", ci, inner, inner_buy, pay_up, strat, acct, entry, inner_reducing, now_ns, pend
        )
        if not first.passed:
            return first
        second = self._intent_leg(
            "outer", co, outer, outer_buy, pay_up, strat, acct, entry, outer_reducing, now_ns, pend
        )
        if not second.passed:
            return second
        canary = self.canary
        if canary is not None and not closing:
            legs = (("inner", inner.qty, _notional(first)), ("outer", outer.qty, _notional(second)))
            refusal = canary.check_intent(legs, now_ns)
            if refusal is not None:
                return refusal
        if vi is vo:
            refusal = self._tokens(vi, 2, now_ns)
        else:
            refusal = self._tokens(vi, 1, now_ns) or self._tokens(vo, 1, now_ns)
        if refusal is not None:
            return refusal
        if strat.entries is not None:
            strat.entries.add(now_ns)
        counted: Figures = {}
        if canary is not None and not closing:
            canary.count_pair(now_ns)
            counted = {COUNTED_PAIR: 1}
        f1 = first.figures
        f2 = second.figures
        return Verdict(
            True,
            v.PASSED,
            "every leg order within every limit",
            {
                "inner_notional": f1["notional"],
                "inner_net_after": f1["net_after"],
                "inner_gross_after": f1["gross_after"],
                "outer_notional": f2["notional"],
                "outer_net_after": f2["net_after"],
                "outer_gross_after": f2["gross_after"],
                "pay_up_ticks": pay_up,
                **counted,
            },
            NO_NOTICES,
            closing,
        )

    def _strategy_limits(
        self, strat: StrategyBook, intent: IntentFacts, now_ns: int
    ) -> Verdict | None:
        """The strategy's own limits on a spread trade: enabled, pay-up, top-up retries and
        the repeated-execution throttle (which halts the strategy when it trips)."""
        if not strat.enabled:
            return no(
                v.STRATEGY_DISABLED,
                f"strategy {strat.name} is disabled in the risk configuration",
                {"strategy": strat.name},
            )
        pay_up = intent.max_pay_up_ticks
        if strat.max_pay_up_ticks is not None and pay_up > strat.max_pay_up_ticks:
            return no(
                v.MAX_PAY_UP,
                f"the intent may pay up {pay_up} ticks on a top-up; strategy {strat.name} "
                f"allows {strat.max_pay_up_ticks}",
                {"pay_up_ticks": pay_up, "limit": strat.max_pay_up_ticks},
            )
        retries = intent.max_top_up_retries
        if strat.max_top_up_retries is not None and retries > strat.max_top_up_retries:
            return no(
                v.MAX_TOP_UP_RETRIES,
                f"the intent may top up {retries} times; strategy {strat.name} allows "
                f"{strat.max_top_up_retries}",
                {"retries": retries, "limit": strat.max_top_up_retries},
            )
        entries = strat.entries
        if entries is None:
            return None
        trades = entries.within(now_ns)
        if trades < entries.count:
            return None
        window_s = entries.window_ns / 1e9
        figures = {"trades": trades, "limit": entries.count, "window_ns": entries.window_ns}
        change = self._change(
            Scope.strategy(strat.name),
            _HALTED,
            "risk",
            f"more than {entries.count} spread trades within {window_s:g} s",
            now_ns,
            v.REPEATED_EXECUTION,
            figures,
        )
        return no(
            v.REPEATED_EXECUTION,
            f"strategy {strat.name} has started {trades} spread trades within {window_s:g} s, "
            "the most allowed: it is halted until an operator re-enables it",
            figures,
            (change,) if change is not None else NO_NOTICES,
        )

    def _intent_leg(
        self,
        name: str,
        c: ContractBook,
        leg: LegFacts,
        buy: bool,
        pay_up: int,
        strat: StrategyBook,
        acct: AccountBook | None,
        entry: bool,
        reducing: bool,
        now_ns: int,
        pend: _Pending,
    ) -> Verdict:
        """One leg at its worst: its limit moved by the whole pay-up (for the collar, the
        slippage and a buy's notional; a sell's notional is largest at its limit)."""
        limit_px = leg.limit
        shift = c.tick * pay_up
        worst = limit_px + shift if buy else limit_px - shift
        verdict = self._slippage(strat, c, leg, worst)
        if verdict is None:
            verdict = self._leg(
                c,
                buy,
                leg.qty,
                leg.qty,
                limit_px,
                worst,
                worst if buy else limit_px,
                acct,
                entry,
                reducing,
                now_ns,
                pend,
            )
            if verdict.passed:
                self._pend(pend, c, leg, worst)
                return verdict
        detail = dict(verdict.figures)
        detail["leg"] = name
        return no(
            verdict.check,
            f"{name} leg ({leg.venue}:{leg.symbol}): {verdict.reason}",
            detail,
            verdict.notices,
            verdict.reducing,
        )

    @staticmethod
    def _tokens(vb: VenueBook, need: int, now_ns: int) -> Verdict | None:
        bucket = vb.orders
        if bucket is None:
            return None
        tokens = bucket.available(now_ns)
        if tokens >= need:
            return None
        return no(
            v.ORDERS_PER_S,
            f"{vb.name} has {tokens} order tokens now and the intent needs {need}: both legs "
            "must go out at once",
            {"venue": vb.name, "tokens": tokens, "needed": need, "rate_per_s": bucket.rate_per_s},
        )

    def _slippage(
        self, strat: StrategyBook, c: ContractBook, leg: LegFacts, worst: Decimal
    ) -> Verdict | None:
        limit = strat.max_slippage_ticks
        if limit is None:
            return None
        touch = c.ask if leg.side is _BUY else c.bid
        if touch is None:
            return no(
                v.NO_REFERENCE_PRICE,
                f"no {'ask' if leg.side is _BUY else 'bid'} on {leg.venue}:{leg.symbol} to "
                "measure slippage from",
                {"venue": leg.venue, "symbol": leg.symbol},
            )
        beyond = worst - touch if leg.side is _BUY else touch - worst
        ticks = beyond / c.tick
        if ticks > limit:
            return no(
                v.MAX_SLIPPAGE,
                f"{leg.venue}:{leg.symbol} worst price {worst} is {ticks.normalize()} ticks "
                f"past the touch {touch}; strategy {strat.name} allows {limit}",
                {"price": worst, "touch": touch, "ticks": ticks, "limit": limit},
            )
        return None

    def _pend(self, pend: _Pending, c: ContractBook, leg: LegFacts, worst: Decimal) -> None:
        """Carry a checked leg's additions over to the checks of the next one."""
        vb = c.venue
        pend.venue = vb
        pend.open_venue += 1
        pend.open_total += 1
        value_px = c.mark if c.mark is not None else worst
        buy = leg.side is _BUY
        position = c.position
        side_after = (position + c.working_buy if buy else c.working_sell - position) + leg.qty
        other = c.working_sell - position if buy else position + c.working_buy
        other = other if other > 0 else 0
        side_after = side_after if side_after > 0 else 0
        pend.gross_notional += (side_after + other) * value_px * c.mult - c.gross_notional
        if c.margin_mult is not None:
            net_after = side_after if side_after > other else other
            pend.margin_venue = vb
            pend.margin += net_after * value_px * c.margin_mult - c.margin

    # -- cancels and replaces ---------------------------------------------------------------

    def check_cancel(self, venue: str, now_ns: int, *, kill: bool = False) -> Verdict:
        """Cancels pass in every trading state; only the venue's cancel throttle and its
        session can hold one back, and a kill switch's cancels are never throttled."""
        vb = self.venues.get(venue)
        if vb is None:
            return no(v.UNKNOWN_VENUE, f"{venue} is not a venue risk knows", {"venue": venue})
        if not vb.up:
            return no(v.SESSION_CLOSED, f"no line to {venue} is logged on", {"venue": venue})
        bucket = vb.cancels
        if not kill and bucket is not None and not bucket.take(now_ns):
            return no(
                v.CANCELS_PER_S,
                f"{venue} allows {bucket.rate_per_s} cancels a second (burst {bucket.burst})",
                {
                    "venue": venue,
                    "rate_per_s": bucket.rate_per_s,
                    "burst": bucket.burst,
                    "wait_ns": bucket.wait_ns(now_ns),
                },
            )
        return _CANCEL_PASSED

    def check_replace(
        self,
        key: str,
        new_clordid: str,
        qty: int,
        price: Decimal,
        ctx: OrderContext,
        now_ns: int,
    ) -> Verdict:
        """Whether a working order may be replaced by ``qty`` (its new total, filled part
        included) at ``price``. Only an increase of what is left adds to exposure."""
        w = self.ledger.working.get(key)
        if w is None:
            return no(v.UNKNOWN_ORDER, f"no working order {key} is known to risk", {"order": key})
        c = w.contract
        vb = c.venue
        strat = self._strategy(ctx.strategy) if ctx.strategy is not None else None
        leaves = qty - w.filled
        add = leaves - w.leaves if leaves > w.leaves else 0
        side_after = (c.position + c.working_buy if w.buy else c.working_sell - c.position) + add
        reducing = add == 0 or side_after <= 0
        state = max(self.state, vb.state, strat.state if strat is not None else _ACTIVE)
        if state and (state is _HALTED or not reducing):
            return state_refusal(state, self._scopes((vb,), strat), "this replace")
        if new_clordid in self.ledger.clordids:
            return no(
                v.DUPLICATE_CLORDID,
                f"ClOrdID {new_clordid} has been used already",
                {"clordid": new_clordid},
            )
        if leaves < 1:
            return no(
                v.LOT,
                f"a replace to {qty} leaves nothing of the {w.filled} filled",
                {"qty": qty, "filled": w.filled},
            )
        verdict = self._leg(
            c,
            w.buy,
            qty,
            add,
            price,
            price,
            price,
            w.account,
            ctx.origin in _ENTRIES,
            reducing,
            now_ns,
            None,
        )
        if not verdict.passed:
            return verdict
        canary = self.canary
        added = add * price * c.mult
        if canary is not None and not reducing and ctx.origin in _CANARY_CAPPED:
            refusal = canary.check_order(qty, _notional(verdict), now_ns, adds=added)
            if refusal is not None:
                return refusal
        bucket = vb.replaces
        if bucket is not None and not bucket.take(now_ns):
            return no(
                v.REPLACES_PER_S,
                f"{vb.name} allows {bucket.rate_per_s} replaces a second (burst {bucket.burst})",
                {
                    "venue": vb.name,
                    "rate_per_s": bucket.rate_per_s,
                    "burst": bucket.burst,
                    "wait_ns": bucket.wait_ns(now_ns),
                },
            )
        if canary is not None:
            canary.count_order(added, now_ns)
            return _with(verdict, {COUNTED_NOTIONAL: added})
        return verdict

    # -- what the OMS feeds back -------------------------------------------------------------

    def on_order_sent(self, order: OrderLike, ctx: OrderContext, now_ns: int) -> None:
        """The order is on its way: its quantity counts as working from now on."""
        self.ledger.order_sent(order, ctx.strategy)

    def on_replace_sent(self, key: str, new_clordid: str, qty: int, price: Decimal) -> None:
        """A replace is on its way: until the venue answers, the larger of the old and the
        new quantity counts as working."""
        self.ledger.replace_sent(key, new_clordid, qty, price)

    def on_order_amended(self, key: str, leaves: int, price: Decimal | None) -> None:
        """The venue says what is left of the order (Replaced, a refused replace, a
        restatement): the working quantity becomes exactly that."""
        self.ledger.order_amended(key, leaves, price)

    def on_order_done(self, key: str) -> None:
        """The order is finished (filled, cancelled, rejected, expired, done for the day)."""
        self.ledger.order_done(key)

    def on_fill(
        self,
        key: str | None,
        venue: str,
        symbol: str,
        side: Side,
        qty: int,
        price: Decimal,
        now_ns: int,
    ) -> tuple[Notice, ...]:
        """One fill of order ``key`` (the OMS has dropped duplicates; None for a fill of no
        order of ours): position, cost and P&L move, working quantity falls by as much."""
        self.ledger.fill(key, venue, symbol, side, qty, price)
        return self._check_loss(now_ns)

    def on_market(
        self,
        venue: str,
        symbol: str,
        bid: Decimal | None,
        ask: Decimal | None,
        last: Decimal | None,
        book_ts_ns: int,
    ) -> tuple[Notice, ...]:
        """The top of one book after a market-data message; ``book_ts_ns`` is when we
        received it (what staleness is measured from). Marks move, and P&L with them."""
        if self.ledger.market(venue, symbol, bid, ask, last, book_ts_ns):
            return self._check_loss(book_ts_ns)
        return NO_NOTICES

    def on_ack(self, venue: str, latency_ns: int, now_ns: int) -> tuple[Notice, ...]:
        """An order acknowledged after ``latency_ns``: slow ones alert, a run of them halts."""
        return self.health.ack(venue, latency_ns, now_ns)

    def on_reject(self, venue: str, strategy: str | None, now_ns: int) -> tuple[Notice, ...]:
        """A venue refused an order: counted against the venue's and the strategy's breaker."""
        return self.health.reject(venue, strategy, now_ns)

    def on_clock_offset(self, venue: str, offset_ns: int, now_ns: int) -> tuple[Notice, ...]:
        """The venue's clock measured against ours: an alert when it leaves the tolerance and
        one when it comes back."""
        return self.health.clock_offset(venue, offset_ns, now_ns)

    def _check_loss(self, now_ns: int) -> tuple[Notice, ...]:
        limit = self.daily_loss_limit
        if limit is None:
            return NO_NOTICES
        pnl = self.ledger.realized + self.ledger.upnl
        breached = pnl <= -limit
        if breached == self._loss_breached:
            return NO_NOTICES
        self._loss_breached = breached
        figures = {"pnl": pnl, "limit": limit}
        if not breached:
            return (
                Alert(
                    v.DAILY_LOSS,
                    GLOBAL,
                    f"today's P&L {pnl:.2f} is back within the loss limit of {limit}; "
                    "trading stays as it is until an operator changes it",
                    now_ns,
                    figures,
                ),
            )
        if self.state >= _REDUCING:
            return NO_NOTICES
        change = self._change(
            GLOBAL,
            _REDUCING,
            "risk",
            f"today's P&L {pnl:.2f} reached the loss limit of {limit}",
            now_ns,
            v.DAILY_LOSS,
            figures,
        )
        return (change,) if change is not None else NO_NOTICES

    def on_session(self, venue: str, up: bool) -> None:
        """Whether the venue has a line logged on (orders can only go out when it has)."""
        vb = self.venues.get(venue)
        if vb is not None:
            vb.up = up

    def set_margin_available(self, venue: str, amount: Decimal) -> None:
        """The venue's or broker's latest figure for the margin available, in its currency."""
        self.venues[venue].margin_available = amount

    # -- states and the kill switch -----------------------------------------------------------

    def state_of(self, scope: Scope) -> TradingState:
        if scope.kind is ScopeKind.GLOBAL:
            return self.state
        if scope.kind is ScopeKind.VENUE:
            return self._venue_book(scope).state
        return self._strategy(scope.name or "").state

    def _venue_book(self, scope: Scope) -> VenueBook:
        vb = self.venues.get(scope.name or "")
        if vb is None:
            known = ", ".join(sorted(self.venues))
            raise ValueError(f"unknown venue {scope.name!r}; venues are: {known}")
        return vb

    def set_state(
        self,
        scope: Scope,
        state: TradingState,
        who: str,
        why: str,
        now_ns: int,
    ) -> StateChange | None:
        """An operator's change of a scope's trading state (None if it was already so)."""
        if not who or not why:
            raise ValueError("a change of trading state needs who made it and why")
        return self._change(scope, state, who, why, now_ns, None, _NO_FIGURES)

    def _change(
        self,
        scope: Scope,
        state: TradingState,
        who: str,
        why: str,
        now_ns: int,
        rule: str | None,
        figures: Figures,
    ) -> StateChange | None:
        if scope.kind is ScopeKind.GLOBAL:
            previous = self.state
            self.state = state
        elif scope.kind is ScopeKind.VENUE:
            vb = self._venue_book(scope)
            previous = vb.state
            vb.state = state
            if state is _ACTIVE:
                vb.slow_acks = 0
        else:
            sb = self._strategy(scope.name or "")
            previous = sb.state
            sb.state = state
        if previous is state:
            return None
        return StateChange(scope, previous, state, who, why, now_ns, rule, figures)

    def kill(self, venue: str | None, who: str, why: str, now_ns: int) -> KillOrder:
        """Halt one venue (or everything) and say what the OMS must cancel: every working
        order there. Undo with ``set_state(scope, ACTIVE, ...)`` once the cause is fixed."""
        if not who or not why:
            raise ValueError("the kill switch needs who pulled it and why")
        scope = GLOBAL if venue is None else Scope.venue(venue)
        change = self._change(scope, _HALTED, who, why, now_ns, v.KILL, _NO_FIGURES)
        return KillOrder(venue, who, why, now_ns, change)

    # -- for operators and tests ---------------------------------------------------------------

    def states(self) -> dict[str, str]:
        """Every scope's trading state by scope (``global``, ``venue:X``, ``strategy:Y``)."""
        out = {str(GLOBAL): self.state.label}
        out.update({f"venue:{n}": vb.state.label for n, vb in sorted(self.venues.items())})
        out.update({f"strategy:{n}": sb.state.label for n, sb in sorted(self.strategies.items())})
        return out

    def start_day(self) -> None:
        """A new trading day: the daily loss limit counts again from zero. Realised P&L is
        cleared and open positions take today's mark as their cost; states stay as they are
        (an operator reopens what a rule closed)."""
        self.ledger.start_day()
        self._loss_breached = False
        if self.canary is not None:
            self.canary.reset()

    def pnl(self) -> Decimal:
        """Today's realised plus marked-to-market P&L, in the base currency."""
        return self.ledger.realized + self.ledger.upnl

    def exposure(self, venue: str, symbol: str) -> tuple[int, int, int]:
        """(position, working buys, working sells) of one contract."""
        c = self.contracts[(venue, symbol)]
        return c.position, c.working_buy, c.working_sell


_CANCEL_PASSED: Final = Verdict(True, v.PASSED, "cancels pass in every trading state")


def _with(verdict: Verdict, figures: Figures) -> Verdict:
    """``verdict`` with more figures: what the canary counted goes in its receipt."""
    return dataclasses.replace(verdict, figures={**verdict.figures, **figures})


def _notional(verdict: Verdict) -> Decimal:
    """The notional a passing verdict valued its order at (what the canary caps read)."""
    value = verdict.figures["notional"]
    return value if isinstance(value, Decimal) else Decimal(str(value))
