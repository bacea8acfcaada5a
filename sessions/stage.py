"""Delivery stages in a running gateway: shadow, canary, live.

A gateway goes from trial to trading in stages. In ``shadow`` the strategy runs on the
venues' real market data while its orders are filled on paper (``sessions.shadow``); in
``canary`` its orders are real but held to the canary caps (``oms.risk.canary``); ``live`` is
the gateway unbounded. The stage comes from the configuration's ``[stage]`` table at start and
changes by an operator's word (``cmc stage set``), which leaves an ``operator.stage`` receipt
(who, why, from, to).

Why a change waits for a quiet gateway: a change is refused while any order works (or a
spread trade is in flight, or a restarted gateway is still settling what it recovered), so
that no order of one stage is answered in another. Entering or leaving shadow also needs
every position flat: paper fills and real ones would otherwise add up in one position. The
paper P&L made in shadow is dropped when it ends (realised P&L goes back to what it was when
it began), so that the daily loss limit counts real money only.

Why paper receipts get kinds of their own: while in shadow, every receipt about an order or
a spread trade is recorded as ``shadow.<kind>`` (``shadow.event.execution``,
``shadow.command.send_order``...). What reads the trail for real trading (a restart's
recovery, the FIX-log reconciliation, the acceptance figures) then never mistakes paper for
real, and the paper trades stay in the trail for whoever wants to read them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from oms.clock import now_ns
from oms.receipts import Receipt
from oms.recovery import STAGE_CHANGE_KIND
from oms.risk import Canary
from sessions.gateway_config import GatewayConfig, Stage
from sessions.shadow import ShadowVenues

if TYPE_CHECKING:
    from oms.core import Oms
    from oms.recovery import Snapshot

log = logging.getLogger("cmc.stage")

PAPER_PREFIX: Final = "shadow."
"""What a paper receipt's kind starts with."""
CHANGE_KIND: Final = STAGE_CHANGE_KIND
START_KIND: Final = "stage.start"
STAGES: Final = tuple(s.value for s in Stage)
CAUTION: Final = (Stage.SHADOW, Stage.CANARY, Stage.LIVE)
"""The stages from the most cautious: what an operator pulls back to outlives a restart."""


class StageError(ValueError):
    """A stage change (or a start in shadow) refused; the message says why and what to do."""


class StageControl:
    """The gateway's stage, its canary caps and its shadow venues.

    Built before the OMS (its ``tee`` is the OMS's receipt recorder), bound to it with
    ``attach``. ``change`` and ``status`` run on the OMS thread (``oms.call``); ``current``
    may be read from any thread.
    """

    def __init__(self, config: GatewayConfig) -> None:
        self.current: Stage = config.stage.current
        self.since_ns = now_ns()
        self.who = "configuration"
        self.why = "[stage] current" if "stage" in config.model_fields_set else "the default"
        caps = config.stage.canary
        self.canary = (
            Canary(caps, config.risk.base_currency) if caps is not None and caps.any else None
        )
        self.shadow = ShadowVenues(config.instruments())
        self.paper = self.current is Stage.SHADOW  # read by the receipt tee on every receipt
        self._real_pnl: tuple[Decimal, dict[tuple[str, str], Decimal]] | None = None
        self._oms: Oms | None = None

    # -- wiring ----------------------------------------------------------------------------

    def tee(self, forward: Callable[[Receipt], None]) -> Callable[[Receipt], None]:
        """The OMS's recorder: in shadow, receipts about orders and spread trades take their
        paper kind on their way to ``forward``."""

        def record(receipt: Receipt) -> None:
            if (
                self.paper
                and (receipt.clordid is not None or receipt.pair_id is not None)
                and not receipt.kind.startswith(PAPER_PREFIX)
            ):
                receipt = replace(receipt, kind=PAPER_PREFIX + receipt.kind)
            forward(receipt)

        return record

    def attach(self, oms: Oms) -> None:
        """Bind to the OMS (before its thread starts): the shadow posts to it and follows its
        market data, and risk gets the canary caps when the stage is canary."""
        self._oms = oms
        self.shadow.bind(oms.post)
        oms.hooks.append(self.shadow.on_event)
        self._enter(oms, self.current, seed=False)

    @property
    def shadow_on(self) -> bool:
        return self.shadow.active

    def started(self, oms: Oms, recovered: Snapshot | None) -> None:
        """At start, before the OMS thread runs: a gateway that starts in shadow must not
        inherit real orders or positions from its receipt store; the start's stage is
        recorded."""
        if recovered is not None:
            self._keep_pull_back(oms, recovered)
        if self.current is Stage.SHADOW and recovered is not None and not recovered.empty:
            held = self._blockers(oms) + self._exposure(oms)
            if held:
                raise StageError(
                    "the gateway cannot start in shadow: its receipt store leaves "
                    + "; ".join(held)
                    + ". Start it in canary or live to settle them, then `cmc stage set "
                    "shadow`"
                )
        self.since_ns = oms.now()
        oms.record(
            Receipt.of(
                START_KIND,
                ts_ns=self.since_ns,
                verdict=self.current.value,
                reason=f"from {self.why}",
                data={"to": self.current.value, "who": self.who, **self._caps_data()},
            )
        )

    def _keep_pull_back(self, oms: Oms, recovered: Snapshot) -> None:
        """Start in the stage an operator last set when it is more cautious than the
        configuration's: a gateway pulled back to shadow or canary after an incident must
        not come back live because it restarted. Moving on again is an operator's act
        (`cmc stage set`), which also ends the pull-back for later restarts. A configuration
        can still make a start more cautious, never less."""
        change = recovered.stage_change
        if change is None:
            return
        try:
            kept = Stage(str(change.data.get("to")))
        except ValueError:
            return
        configured = self.current
        if CAUTION.index(kept) >= CAUTION.index(configured):
            return
        if kept is Stage.CANARY and self.canary is None:
            log.warning(
                "an operator last set the canary stage, but the configuration has no "
                "[stage.canary] caps any more: starting in %s as configured",
                configured.value,
            )
            return
        if kept is Stage.SHADOW and not recovered.empty and self._exposure(oms):
            log.warning(  # cannot happen through cmc: shadow is entered flat, trades paper
                "an operator last set shadow, but the receipt store holds real positions: "
                "starting in %s as configured",
                configured.value,
            )
            return
        self._leave(oms, configured)
        self._enter(oms, kept, seed=False)
        who = str(change.data.get("who") or "an operator")
        self.current, self.who = kept, who
        self.why = (
            f"kept from before the restart ({change.reason or 'no reason given'}); the "
            f"configuration says {configured.value}: `cmc stage set {configured.value}` to "
            "move on"
        )
        log.warning(
            "starting in %s, not the configured %s: %s set it before the restart; "
            "`cmc stage set %s` moves on",
            kept.value,
            configured.value,
            who,
            configured.value,
        )

    # -- the OMS thread ------------------------------------------------------------------------

    def status(self, oms: Oms) -> dict[str, Any]:
        """The stage, who set it, why and since when; the canary's figures for today."""
        canary = self.canary
        return {
            "stage": self.current.value,
            "since_ns": self.since_ns,
            "who": self.who,
            "why": self.why,
            "working_orders": sum(1 for _ in oms.orders.working()),
            "canary": None if canary is None else canary.status(oms.now()),
        }

    def change(self, oms: Oms, to: Stage, who: str, why: str) -> dict[str, Any]:
        """Move to ``to``, or raise ``StageError`` saying why not and what to do."""
        if not who or not why:
            raise StageError("a stage change needs who asks and why")
        before = self.current
        if to is before:
            return {**self.status(oms), "changed": False, "from": before.value}
        if to is Stage.CANARY and self.canary is None:
            raise StageError(
                "the canary stage needs its caps: add a [stage.canary] table with at least "
                "one of max_lots_per_order, max_pairs_per_day, max_order_notional, "
                "max_day_notional to the configuration, and restart the gateway"
            )
        blockers = self._blockers(oms)
        if blockers:
            raise StageError(
                f"the stage stays {before.value}: "
                + "; ".join(blockers)
                + ". A stage changes only with nothing working, so that no order of one "
                "stage is answered in another: see them with `cmc orders --working`, cancel "
                "them with `cmc kill --reason ...` (then `cmc resume`), or wait for them to end"
            )
        if Stage.SHADOW in (before, to):
            held = self._exposure(oms)
            if held:
                raise StageError(
                    f"the stage stays {before.value}: "
                    + "; ".join(held)
                    + ". Shadow starts and ends flat, so that paper fills and real ones never "
                    "add up in one position: let the strategy close it, or (from shadow) "
                    "restart the gateway, which comes back in shadow with real positions "
                    "only (flat), and set the stage then"
                )
        self._leave(oms, before)
        self._enter(oms, to, seed=True)
        self.current, self.since_ns, self.who, self.why = to, oms.now(), who, why
        oms.record(
            Receipt.of(
                CHANGE_KIND,
                ts_ns=self.since_ns,
                verdict=to.value,
                reason=why,
                data={"who": who, "from": before.value, "to": to.value, **self._caps_data()},
            )
        )
        log.warning("operator %s: stage %s -> %s (%s)", who, before.value, to.value, why)
        return {**self.status(oms), "changed": True, "from": before.value}

    def _enter(self, oms: Oms, stage: Stage, *, seed: bool) -> None:
        oms.risk.canary = self.canary if stage is Stage.CANARY else None
        if stage is Stage.SHADOW:
            risk = oms.risk
            self._real_pnl = (
                risk.ledger.realized,
                {key: c.realized for key, c in risk.contracts.items()},
            )
            self.shadow.activate(oms.market if seed else None)
        self.paper = stage is Stage.SHADOW

    def _leave(self, oms: Oms, stage: Stage) -> None:
        if stage is not Stage.SHADOW:
            return
        self.shadow.deactivate()
        if self._real_pnl is not None:  # flat at both ends: only realised P&L was paper's
            realized, by_contract = self._real_pnl
            risk = oms.risk
            risk.ledger.realized = realized
            for key, c in risk.contracts.items():
                c.realized = by_contract.get(key, c.realized)
            self._real_pnl = None

    @staticmethod
    def _blockers(oms: Oms) -> list[str]:
        """What is in flight: working orders, spread trades, a restart's settling."""
        out = []
        working = sum(1 for _ in oms.orders.working())
        if working:
            out.append(f"{working} order(s) working")
        trades = sorted(p.spec.id for p in oms.pairs.values() if p.working is not None)
        if trades:
            out.append(f"a spread trade in flight on {', '.join(trades)}")
        if oms.engine.recovering:
            out.append(
                "recovered orders still settling on " + ", ".join(sorted(oms.engine.recovering))
            )
        return out

    @staticmethod
    def _exposure(oms: Oms) -> list[str]:
        """Open positions: each pair's legs, and each contract's (a client's orders too)."""
        out = []
        for pair_id, book in sorted(oms.pairs.items()):
            if book.net_inner or book.net_outer:
                spec = book.spec
                out.append(
                    f"pair {pair_id} holds {book.net_inner:+d} {spec.inner.venue} "
                    f"{spec.inner.symbol} / {book.net_outer:+d} {spec.outer.venue} "
                    f"{spec.outer.symbol} lots"
                )
        if not out:  # a pair's legs are its contracts' positions: said once is enough
            for (venue, symbol), c in sorted(oms.risk.contracts.items()):
                if c.position:
                    out.append(f"{venue} {symbol} position {c.position:+d}")
        return out

    def _caps_data(self) -> dict[str, str | int | None]:
        canary = self.canary
        if canary is None:
            return {}
        caps = canary.caps
        return {
            f"canary_{name}": None if value is None else str(value)
            for name, value in caps.model_dump().items()
        }
