"""The OMS driven without FIX or threads: typed events in, commands and receipts out.

Shared by the tests that state exactly the order in which things reach the OMS.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from oms.client_messages import ClientMessage
from oms.commands import Command, SendOrder
from oms.core import Oms
from oms.events import (
    ExecType,
    ExecutionReceived,
    LineRole,
    LineState,
    LineStateChanged,
    MarketDataReceived,
    MdAction,
    MdEntry,
    MdEntryType,
    OrdStatus,
)
from oms.instruments import Instrument
from oms.pairs import PairConfig, PairSpec
from oms.receipts import Receipt
from oms.risk import RiskConfig, RiskEngine

AU = Instrument(
    venue="INNER",
    symbol="AU",
    currency="CNY",
    tick=Decimal("0.02"),
    contract_size=Decimal(1000),
    contract_unit="g",
)
GC = Instrument(
    venue="OUTER",
    symbol="GC",
    currency="USD",
    tick=Decimal("0.1"),
    contract_size=Decimal(100),
    contract_unit="troy_oz",
)

INSTRUMENTS = {(i.venue, i.symbol): i for i in (AU, GC)}


def gold(**pair: Any) -> PairSpec:
    """The gold pair (28 AU lots against 9 GC lots), entry 2.0, with ``pair`` overrides."""
    config: dict[str, Any] = {
        "id": "GOLD",
        "inner": {"venue": "INNER", "symbol": "AU"},
        "outer": {"venue": "OUTER", "symbol": "GC"},
        "fx_rate": "7.25",
        "entry_spread": "2.0",
        "exit_spread": "-1000",
        "max_position": 5,
    }
    config.update(pair)
    return PairSpec.build(PairConfig.model_validate(config), AU, GC)


class Harness:
    """The OMS fed typed events directly, its commands and receipts collected."""

    def __init__(self, spec: PairSpec | None = None, risk: RiskConfig | None = None) -> None:
        self.sent: list[Command] = []
        self.receipts: list[Receipt] = []
        self.to_clients: list[ClientMessage] = []
        self.clock = itertools.count(1_000_000, 1_000)
        self.oms = Oms(
            pairs=[spec or gold()],
            send=self._send,
            record=self.receipts.append,
            risk=RiskEngine(risk or RiskConfig(fx={"CNY": Decimal("0.1379")}), INSTRUMENTS),
            clock=self.clock.__next__,
            emit=self.to_clients.append,
        )
        self._exec_ids = itertools.count(1)
        for venue in ("INNER", "OUTER"):
            self.oms.handle(
                LineStateChanged(
                    venue, LineRole.PRIMARY, LineState.LOGGED_ON, LineRole.PRIMARY, next(self.clock)
                )
            )

    def _send(self, command: Command) -> LineRole:
        self.sent.append(command)
        return LineRole.PRIMARY

    def book(
        self,
        venue: str,
        symbol: str,
        bids: list[tuple[str, int]],
        asks: list[tuple[str, int]],
        *,
        full: bool = True,
    ) -> None:
        """A snapshot (``full``) or an update that states the given levels anew."""
        entries = tuple(
            MdEntry(MdAction.NEW, kind, symbol, Decimal(px), qty)
            for kind, levels in ((MdEntryType.BID, bids), (MdEntryType.OFFER, asks))
            for px, qty in levels
        )
        self.oms.handle(
            MarketDataReceived(
                venue,
                LineRole.PRIMARY,
                "md",
                full,
                entries,
                None,
                next(self.clock),
                snapshot_symbol=symbol if full else None,
            )
        )

    def fill_in_full(self, command: SendOrder, price: str) -> None:
        """The venue's New and then one fill of the whole order."""
        self.reports(
            command,
            price,
            (ExecType.NEW, OrdStatus.NEW, 0, 0),
            (ExecType.TRADE, OrdStatus.FILLED, command.qty, command.qty),
        )

    def reject(self, command: SendOrder) -> None:
        """The venue refuses the order outright."""
        self.reports(command, "0", (ExecType.REJECTED, OrdStatus.REJECTED, 0, 0))

    def reports(
        self, command: SendOrder, price: str, *steps: tuple[ExecType, OrdStatus, int, int]
    ) -> None:
        """Execution reports for ``command``: (ExecType, OrdStatus, LastQty, CumQty) each."""
        for exec_type, status, last, cum in steps:
            leaves = 0 if status in (OrdStatus.REJECTED, OrdStatus.CANCELED) else command.qty - cum
            self.oms.handle(
                ExecutionReceived(
                    venue=command.venue,
                    line=LineRole.PRIMARY,
                    clordid=command.clordid,
                    orig_clordid=None,
                    venue_order_id=f"V-{command.clordid}",
                    exec_id=f"E{next(self._exec_ids)}",
                    exec_type=exec_type,
                    ord_status=status,
                    symbol=command.symbol,
                    side=command.side,
                    order_qty=command.qty,
                    last_qty=last,
                    last_px=Decimal(price) if last else None,
                    cum_qty=cum,
                    leaves_qty=leaves,
                    avg_px=Decimal(price) if cum else Decimal(0),
                    transact_ns=None,
                    sending_ns=None,
                    recv_ns=next(self.clock),
                )
            )


def orders(h: Harness) -> list[SendOrder]:
    return [c for c in h.sent if isinstance(c, SendOrder)]
