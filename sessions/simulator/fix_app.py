"""The venue's quickfix ``Application``: decode, enqueue, nothing else.

quickfix has already checked the message against the FIX 4.4 data dictionary (required
tags, types, enumerations) and answered bad ones with a session Reject (35=3) before
``fromApp`` runs. What is left here is the venue's own business: which order types it
takes. Messages it does not handle at all get a BusinessMessageReject (35=j) by raising
``UnsupportedMessageType``, which quickfix turns into one.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import quickfix as fix

from oms.clock import monotonic_ns, now_ns
from oms.enums import OrderType, Side, TimeInForce
from sessions.fixengine import GuardedApplication
from sessions.fixwire import MissingTag, Tags, flat, not_utf8, parse
from sessions.simulator.commands import (
    CancelOrder,
    Command,
    MarketDataRequest,
    NewOrder,
    ReplaceOrder,
    SessionDown,
    SessionUp,
    StatusRequest,
    UnsupportedOrder,
)

_ORD_TYPES = {t.value: t for t in OrderType}
_TIFS = {t.value: t for t in TimeInForce}
_SIDES = {s.value: s for s in Side}


class VenueApplication(GuardedApplication):
    def __init__(
        self,
        enqueue: Callable[[Command], None],
        refuses_logon: Callable[[str], bool],
        order_arrived: Callable[[str, str, int], None] | None = None,
    ) -> None:
        super().__init__()
        self._enqueue = enqueue
        self._refuses_logon = refuses_logon
        self._order_arrived = order_arrived  # (session, ClOrdID, monotonic ns): benchmarks

    def on_logon(self, session: str) -> None:
        self._enqueue(SessionUp(session))

    def on_logout(self, session: str) -> None:
        self._enqueue(SessionDown(session))

    def on_from_admin(self, message: Any, session: str) -> None:
        if message.getHeader().getField(35) == "A":
            client = session.split("->", 1)[1]
            if self._refuses_logon(client):
                raise fix.RejectLogon(f"logon refused for {client} (venue fault injection)")

    def on_from_app(self, message: Any, session: str) -> None:
        arrived_mono = monotonic_ns()  # first: a probe's "arrived" excludes our own parsing
        recv_ns = now_ns()
        text = message.toString()
        fields = parse(text)
        bad = not_utf8(text, fields)
        if bad is not None:  # nothing downstream can carry it: refuse the field
            raise fix.IncorrectDataFormat(bad)
        try:
            command = self._command(Tags(flat(fields)), fields, session, recv_ns, arrived_mono)
        except MissingTag as exc:  # optional in FIX 4.4's dictionary, needed here
            raise fix.FieldNotFound(exc.tag) from None
        self._enqueue(command)

    def _command(
        self,
        tags: Tags,
        fields: list[tuple[int, str]],
        session: str,
        recv_ns: int,
        arrived_mono: int,
    ) -> Command:
        msg_type = tags[35]
        command: Command
        if msg_type == "D":
            if self._order_arrived is not None:
                self._order_arrived(session, tags[11], arrived_mono)
            command = _new_order(session, tags, recv_ns)
        elif msg_type == "F":
            command = CancelOrder(
                session, tags[11], tags[41], tags.get(37), tags[55], _SIDES[tags[54]], recv_ns
            )
        elif msg_type == "G":
            command = ReplaceOrder(
                session,
                tags[11],
                tags[41],
                tags.get(37),
                tags[55],
                _SIDES[tags[54]],
                _whole(tags.get(38, "0")) or 0,
                Decimal(tags[44]) if 44 in tags else None,
                recv_ns,
            )
        elif msg_type == "H":
            command = StatusRequest(
                session, tags[11], tags.get(37), tags.get(790), tags[55], _SIDES[tags[54]]
            )
        elif msg_type == "V":
            command = MarketDataRequest(
                session,
                md_req_id=tags[262],
                subscription=tags[263],
                depth=int(tags[264]),
                update_type=tags.get(265),
                entry_types=tuple(v for t, v in fields if t == 269),
                symbols=tuple(v for t, v in fields if t == 55),
            )
        else:
            raise fix.UnsupportedMessageType()
        return command


def _whole(text: str) -> int | None:
    """A quantity in whole contracts, or None if it has a fractional part."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return int(value) if value == value.to_integral_value() else None


def _new_order(session: str, tags: dict[int, str], recv_ns: int) -> Command:
    clordid, symbol, side = tags[11], tags[55], _SIDES[tags[54]]

    def unsupported(text: str) -> UnsupportedOrder:
        return UnsupportedOrder(session, clordid, symbol, side, tags.get(38, "0"), text)

    ord_type = _ORD_TYPES.get(tags[40])
    if ord_type is None:
        return unsupported(f"OrdType(40)={tags[40]} is not supported; use 1 (market) or 2 (limit)")
    tif = _TIFS.get(tags.get(59, "0"))
    if tif is None:
        return unsupported(f"TimeInForce(59)={tags[59]} is not supported; use 0, 1, 3 or 4")
    qty = _whole(tags[38])
    if qty is None:
        return unsupported(f"OrderQty(38)={tags[38]} is not a whole number of contracts")
    price: Decimal | None = None
    if ord_type is OrderType.LIMIT:
        if 44 not in tags:
            return unsupported("a limit order needs Price(44)")
        price = Decimal(tags[44])
    return NewOrder(session, clordid, symbol, side, qty, ord_type, price, tif, tags.get(1), recv_ns)
