"""A small FIX 4.4 initiator for trading against a venue: from a script, a test or by hand.

It keeps every message it receives (application and session level) with our receive time,
and lets the caller wait for the one it expects. It is deliberately thin: the gateway's own
sessions are built elsewhere, with their own rules; this is the venue's counterparty for
demos and tests, and what an operator uses to poke a venue.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import quickfix as fix

from oms.clock import now_ns
from oms.commands import CancelOrder, ReplaceOrder, SendOrder
from oms.enums import OrderType, Side, TimeInForce
from oms.events import LineRole, MarketDataReceived
from oms.market import MarketView
from sessions.codec import decode, encode_command, market_data_request
from sessions.fixengine import (
    FixEngine,
    GuardedApplication,
    build_settings,
    common_defaults,
    data_dictionary,
    owned_session_id,
    send_text,
)
from sessions.fixwire import Field, encode, flat, parse


@dataclass(frozen=True)
class Received:
    """One message as it arrived: its type, its fields in order and by tag, when (ns), and
    its text."""

    msg_type: str
    fields: list[tuple[int, str]]
    tags: dict[int, str]
    recv_ns: int
    admin: bool
    text: str = ""

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

    def on_to_admin(self, message: Any, session: str) -> None:
        header = message.getHeader()
        if header.getField(35) == "A":
            if self._client.username is not None:
                message.setField(553, self._client.username)
            if self._client.password is not None:
                message.setField(554, self._client.password)

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
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.sender, self.target = sender, target
        self.username, self.password = username, password
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

    def log_out(self, reason: str = "client away", wait_s: float = 5.0) -> None:
        """Log out and stay out (the initiator does not reconnect) until :meth:`log_on`."""
        fix.Session.lookupSession(self.session_id).logout(reason)
        deadline = time.monotonic() + wait_s
        while self._logged_on.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)

    def log_on(self, wait_s: float = 10.0) -> None:
        """Log on again after :meth:`log_out` (the session's sequence numbers carry on)."""
        fix.Session.lookupSession(self.session_id).logon()
        if not self._logged_on.wait(wait_s):
            raise TimeoutError(f"{self.sender} did not log on again within {wait_s} s")

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
        self._send(
            SendOrder(
                self.target, clordid, symbol, side, qty, ord_type, price, tif, account, now_ns()
            )
        )
        return clordid

    def cancel(
        self, orig_clordid: str, symbol: str, side: Side, *, order_id: str | None = None
    ) -> str:
        clordid = self.next_id()
        self._send(
            CancelOrder(self.target, clordid, orig_clordid, order_id, symbol, side, now_ns())
        )
        return clordid

    def replace(self, orig_clordid: str, symbol: str, side: Side, qty: int, price: Decimal) -> str:
        clordid = self.next_id()
        self._send(
            ReplaceOrder(
                self.target,
                clordid,
                orig_clordid,
                None,
                symbol,
                side,
                qty,
                price,
                TimeInForce.DAY,
                now_ns(),
            )
        )
        return clordid

    def _send(self, command: SendOrder | CancelOrder | ReplaceOrder) -> bool:
        return send_text(encode_command(command), self.session_id, self._dd)

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
        text = market_data_request(
            md_req_id,
            symbols,
            depth,
            entry_types=entry_types,
            subscription=subscription,
            update_type=update_type,
        )
        send_text(text, self.session_id, self._dd)
        return md_req_id

    # -- receiving ------------------------------------------------------------------------

    def _receive(self, text: str, *, admin: bool) -> None:
        fields = parse(text)
        tags = flat(fields)
        msg = Received(tags.get(35, "?"), fields, tags, now_ns(), admin, text)
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
    """A book rebuilt from a venue's market data, by the gateway's own decoder and book
    (``sessions.codec`` and ``oms.market``): the snapshot, then every update applied."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._market = MarketView()
        self._book = self._market.book("", symbol)

    def apply(self, msg: Received) -> None:
        """Apply a 35=W or 35=X message; entries for other symbols are ignored."""
        if msg.msg_type not in ("W", "X"):
            return
        event = decode(msg.text, "", LineRole.PRIMARY, msg.recv_ns)
        if not isinstance(event, MarketDataReceived):
            return
        if event.snapshot and event.snapshot_symbol != self.symbol:
            return
        entries = tuple(e for e in event.entries if e.symbol == self.symbol)
        self._market.apply(dataclasses.replace(event, entries=entries))

    def top(self, depth: int = 5) -> dict[str, list[tuple[Decimal, int]]]:
        return {
            "bids": sorted(self._book.bids.items(), reverse=True)[:depth],
            "asks": sorted(self._book.asks.items())[:depth],
        }

    def best_bid(self) -> Decimal | None:
        return self._book.best_bid()

    def best_ask(self) -> Decimal | None:
        return self._book.best_ask()
