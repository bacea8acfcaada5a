"""A small FIX 4.4 initiator for trading against a venue: from a script, a test or by hand.

It keeps every message it receives (application and session level) with our receive time,
and lets the caller wait for the one it expects. It is deliberately thin: the gateway's own
sessions are built elsewhere, with their own rules; this is the venue's counterparty for
demos and tests, and what an operator uses to poke a venue.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from oms.clock import now_ns
from oms.enums import OrderType, Side, TimeInForce
from sessions.fixengine import (
    FixEngine,
    GuardedApplication,
    build_settings,
    common_defaults,
    data_dictionary,
    owned_session_id,
    send_text,
)
from sessions.fixwire import Field, decimal_text, encode, flat, parse, utc_timestamp


@dataclass(frozen=True)
class Received:
    """One message as it arrived: its type, its fields in order and by tag, when (ns)."""

    msg_type: str
    fields: list[tuple[int, str]]
    tags: dict[int, str]
    recv_ns: int
    admin: bool

    def get(self, tag: int, default: str | None = None) -> str | None:
        return self.tags.get(tag, default)

    def __getitem__(self, tag: int) -> str:
        return self.tags[tag]


class _ClientApplication(GuardedApplication):
    def __init__(self, client: FixClient) -> None:
        super().__init__()
        self._client = client

    def on_logon(self, session: str) -> None:
        self._client._logged_on.set()

    def on_logout(self, session: str) -> None:
        self._client._logged_on.clear()

    def on_from_admin(self, message: Any, session: str) -> None:
        self._client._receive(message.toString(), admin=True)

    def on_from_app(self, message: Any, session: str) -> None:
        self._client._receive(message.toString(), admin=False)


class FixClient:
    def __init__(
        self,
        *,
        port: int,
        sender: str,
        target: str,
        host: str = "127.0.0.1",
        store_dir: Path | None = None,
        heartbeat_s: int = 30,
        reconnect_s: int = 1,
        reset_on_logon: bool = False,
    ) -> None:
        self.sender, self.target = sender, target
        self.session_id = owned_session_id(sender, target)
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._logged_on = threading.Event()
        self._ids = itertools.count(1)
        self._id_prefix = f"{sender}-{int(time.time() * 1000) % 10**9}-"
        self._dd = data_dictionary()
        default = common_defaults(store_dir, heartbeat_s=heartbeat_s)
        default |= {
            "ConnectionType": "initiator",
            "SocketConnectHost": host,
            "SocketConnectPort": port,
            "ReconnectInterval": reconnect_s,
            "ResetOnLogon": reset_on_logon,
        }
        settings = build_settings(default, [{"SenderCompID": sender, "TargetCompID": target}])
        self.app = _ClientApplication(self)
        self._engine = FixEngine(
            self.app, settings, acceptor=False, file_store=store_dir is not None
        )

    # -- life cycle -----------------------------------------------------------------------

    def start(self, *, wait_logon_s: float | None = 10.0) -> FixClient:
        self._engine.start()
        if wait_logon_s is not None and not self._logged_on.wait(wait_logon_s):
            raise TimeoutError(
                f"{self.sender} was not logged on to {self.target} within {wait_logon_s} s"
            )
        return self

    def stop(self) -> None:
        self._engine.stop(reason="client done")

    @property
    def is_logged_on(self) -> bool:
        return self._logged_on.is_set()

    def __enter__(self) -> FixClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- sending --------------------------------------------------------------------------

    def next_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids)}"

    def send(self, msg_type: str, fields: Iterable[Field]) -> bool:
        return send_text(encode(msg_type, fields), self.session_id, self._dd)

    def new_order(
        self,
        symbol: str,
        side: Side,
        qty: int,
        price: Decimal | None = None,
        tif: TimeInForce = TimeInForce.DAY,
        *,
        clordid: str | None = None,
        account: str | None = None,
    ) -> str:
        clordid = clordid or self.next_id()
        ord_type = OrderType.MARKET if price is None else OrderType.LIMIT
        self.send(
            "D",
            [
                (11, clordid),
                (1, account),
                (55, symbol),
                (54, side.value),
                (60, utc_timestamp(now_ns())),
                (38, qty),
                (40, ord_type.value),
                (44, decimal_text(price) if price is not None else None),
                (59, tif.value),
            ],
        )
        return clordid

    def cancel(
        self, orig_clordid: str, symbol: str, side: Side, *, order_id: str | None = None
    ) -> str:
        clordid = self.next_id()
        self.send(
            "F",
            [
                (41, orig_clordid),
                (37, order_id),
                (11, clordid),
                (55, symbol),
                (54, side.value),
                (60, utc_timestamp(now_ns())),
            ],
        )
        return clordid

    def replace(self, orig_clordid: str, symbol: str, side: Side, qty: int, price: Decimal) -> str:
        clordid = self.next_id()
        self.send(
            "G",
            [
                (41, orig_clordid),
                (11, clordid),
                (55, symbol),
                (54, side.value),
                (60, utc_timestamp(now_ns())),
                (38, qty),
                (40, OrderType.LIMIT.value),
                (44, decimal_text(price)),
            ],
        )
        return clordid

    def status(self, clordid: str, symbol: str, side: Side) -> str:
        req_id = self.next_id()
        self.send("H", [(11, clordid), (790, req_id), (55, symbol), (54, side.value)])
        return req_id

    def subscribe(
        self,
        symbols: Iterable[str],
        *,
        depth: int = 5,
        entry_types: Iterable[str] = ("0", "1", "2"),
        subscription: str = "1",
        update_type: str | None = "1",
        md_req_id: str | None = None,
    ) -> str:
        md_req_id = md_req_id or self.next_id()
        types, syms = list(entry_types), list(symbols)
        fields: list[Field] = [
            (262, md_req_id),
            (263, subscription),
            (264, depth),
            (265, update_type),
        ]
        fields += [(267, len(types)), *((269, t) for t in types)]
        fields += [(146, len(syms)), *((55, s) for s in syms)]
        self.send("V", fields)
        return md_req_id

    # -- receiving ------------------------------------------------------------------------

    def _receive(self, text: str, *, admin: bool) -> None:
        fields = parse(text)
        tags = flat(fields)
        msg = Received(tags.get(35, "?"), fields, tags, now_ns(), admin)
        with self._cond:
            self.received.append(msg)
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[Received], bool], timeout: float = 5.0, *, start: int = 0
    ) -> Received:
        """The first message from index ``start`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.received[start:]:
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.sender}: no matching message within {timeout} s")
                self._cond.wait(left)

    def reports(self, clordid: str | None = None) -> list[Received]:
        with self._cond:
            return [
                m
                for m in self.received
                if m.msg_type == "8" and (clordid is None or clordid in (m.get(11), m.get(41)))
            ]

    def wait_report(self, clordid: str, exec_type: str, timeout: float = 5.0) -> Received:
        return self.wait_for(
            lambda m: m.msg_type == "8" and m.get(11) == clordid and m.get(150) == exec_type,
            timeout,
        )

    def wait_msg(self, msg_type: str, timeout: float = 5.0, **tags: str) -> Received:
        wanted = {int(k.lstrip("t")): v for k, v in tags.items()}
        return self.wait_for(
            lambda m: m.msg_type == msg_type and all(m.get(t) == v for t, v in wanted.items()),
            timeout,
        )


class BookView:
    """A book rebuilt from a venue's market data: the snapshot, then every update applied.

    Prices are kept as the ``Decimal`` the venue sent; sizes as ``int``. ``trades`` keeps
    the (price, qty) of every trade entry seen, in order.
    """

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[Decimal, int] = {}
        self.asks: dict[Decimal, int] = {}
        self.trades: list[tuple[Decimal, int]] = []

    def apply(self, msg: Received) -> None:
        """Apply a 35=W or 35=X message; entries for other symbols are ignored."""
        if msg.msg_type == "W":
            if msg.get(55) != self.symbol:
                return
            self.bids, self.asks = {}, {}
            for entry in _entries(msg.fields, 269):
                self._set(entry, "0")
        elif msg.msg_type == "X":
            for entry in _entries(msg.fields, 279):
                if entry.get(55) == self.symbol:
                    self._set(entry, entry[279])

    def _set(self, entry: dict[int, str], action: str) -> None:
        entry_type, price = entry[269], Decimal(entry[270])
        if entry_type == "2":
            self.trades.append((price, int(entry[271])))
            return
        side = self.bids if entry_type == "0" else self.asks
        if action == "2":
            side.pop(price, None)
        else:
            side[price] = int(entry[271])

    def top(self, depth: int = 5) -> dict[str, list[tuple[Decimal, int]]]:
        return {
            "bids": sorted(self.bids.items(), reverse=True)[:depth],
            "asks": sorted(self.asks.items())[:depth],
        }

    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.asks else None


def _entries(fields: list[tuple[int, str]], delimiter: int) -> list[dict[int, str]]:
    """The entries of the message's NoMDEntries(268) group, each as tag -> value."""
    out: list[dict[int, str]] = []
    inside = False
    for tag, value in fields:
        if tag == 268:
            inside = True
            continue
        if not inside:
            continue
        if tag == 10:
            break
        if tag == delimiter:
            out.append({})
        if out:
            out[-1][tag] = value
    return out
