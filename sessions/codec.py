"""FIX 4.4 text <-> the OMS's typed events and commands. The only place the two meet.

Decoding reads only the tags the OMS uses; encoding writes only what a venue needs. Both
work on message text (``fixwire``), so a quickfix ``Message`` is touched once on the way in
(``toString``) and once on the way out (``Message(text, dd, False)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from oms.commands import CancelOrder, ReplaceOrder, SendOrder
from oms.enums import OrderType, Side
from oms.events import (
    CancelRejected,
    CancelRejectResponseTo,
    ExecType,
    ExecutionReceived,
    LineRole,
    MarketDataReceived,
    MdAction,
    MdEntry,
    MdEntryType,
    OrdStatus,
    SessionRejected,
)
from sessions.fixwire import (
    Field,
    decimal_text,
    encode,
    flat,
    parse,
    parse_utc_timestamp,
    utc_timestamp,
)

_SIDES = {s.value: s for s in Side}
_EXEC_TYPES = {e.value: e for e in ExecType}
_ORD_STATUS = {s.value: s for s in OrdStatus}
_MD_ACTIONS = {a.value: a for a in MdAction}
_MD_TYPES = {t.value: t for t in MdEntryType}

Decoded = ExecutionReceived | CancelRejected | MarketDataReceived | SessionRejected


class DecodeError(ValueError):
    """A message quickfix accepted but the OMS cannot use (say, a fractional quantity)."""


def _qty(text: str | None, tag: int) -> int:
    if text is None:
        return 0
    value = Decimal(text)
    if value != value.to_integral_value():
        raise DecodeError(f"tag {tag}={text} is not a whole number of contracts")
    return int(value)


def _timestamp(text: str | None) -> int | None:
    return parse_utc_timestamp(text) if text else None


def decode(text: str, venue: str, line: LineRole, recv_ns: int) -> Decoded | None:
    """The event for an application or reject message, or None for ones the OMS ignores."""
    fields = parse(text)
    tags = flat(fields)
    msg_type = tags.get(35)
    poss_dup = tags.get(43) == "Y" or tags.get(97) == "Y"
    if msg_type == "8":
        last_px = tags.get(31)
        return ExecutionReceived(
            venue=venue,
            line=line,
            clordid=tags.get(11, ""),
            orig_clordid=tags.get(41),
            venue_order_id=tags[37],
            exec_id=tags[17],
            exec_type=_EXEC_TYPES[tags[150]],
            ord_status=_ORD_STATUS[tags[39]],
            symbol=tags[55],
            side=_SIDES[tags[54]],
            order_qty=_qty(tags[38], 38) if 38 in tags else None,
            last_qty=_qty(tags.get(32), 32),
            last_px=Decimal(last_px) if last_px else None,
            cum_qty=_qty(tags[14], 14),
            leaves_qty=_qty(tags[151], 151),
            avg_px=Decimal(tags.get(6, "0")),
            transact_ns=_timestamp(tags.get(60)),
            sending_ns=_timestamp(tags.get(52)),
            recv_ns=recv_ns,
            poss_dup=poss_dup,
            exec_ref_id=tags.get(19),
            text=tags.get(58),
            raw=text,
        )
    if msg_type == "9":
        status = tags.get(39)
        return CancelRejected(
            venue=venue,
            line=line,
            clordid=tags[11],
            orig_clordid=tags[41],
            venue_order_id=tags.get(37),
            ord_status=_ORD_STATUS.get(status) if status else None,
            response_to=CancelRejectResponseTo(tags[434]),
            reason=tags.get(102),
            text=tags.get(58),
            recv_ns=recv_ns,
            poss_dup=poss_dup,
            raw=text,
        )
    if msg_type in ("W", "X"):
        return _market_data(fields, tags, venue, line, recv_ns, snapshot=msg_type == "W")
    if msg_type in ("3", "j"):
        ref_seq = tags.get(45)
        return SessionRejected(
            venue=venue,
            line=line,
            msg_type=msg_type,
            ref_seq_num=int(ref_seq) if ref_seq else None,
            ref_msg_type=tags.get(372),
            reason=tags.get(373) or tags.get(380),
            text=tags.get(58),
            recv_ns=recv_ns,
            raw=text,
        )
    return None


def _market_data(
    fields: list[tuple[int, str]],
    tags: dict[int, str],
    venue: str,
    line: LineRole,
    recv_ns: int,
    *,
    snapshot: bool,
) -> MarketDataReceived:
    """Entries of a W (each an implicit NEW for the snapshot's symbol) or an X."""
    symbol = tags.get(55) if snapshot else None
    delimiter = 269 if snapshot else 279
    entries: list[MdEntry] = []
    current: dict[int, str] | None = None
    inside = False

    def close(entry: dict[int, str] | None) -> None:
        if entry is None:
            return
        size = entry.get(271)
        entries.append(
            MdEntry(
                action=MdAction.NEW if snapshot else _MD_ACTIONS[entry[279]],
                entry_type=_MD_TYPES[entry[269]],
                symbol=symbol if snapshot else entry[55],  # type: ignore[arg-type]
                price=Decimal(entry[270]),
                size=_qty(size, 271) if size is not None else None,
            )
        )

    for tag, value in fields:
        if tag == 268:
            inside = True
            continue
        if not inside or tag == 10:
            continue
        if tag == delimiter:
            close(current)
            current = {}
        if current is not None:
            current[tag] = value
    close(current)
    return MarketDataReceived(
        venue=venue,
        line=line,
        md_req_id=tags.get(262),
        snapshot=snapshot,
        entries=tuple(entries),
        sending_ns=_timestamp(tags.get(52)),
        recv_ns=recv_ns,
        snapshot_symbol=symbol,
    )


def encode_command(command: SendOrder | CancelOrder | ReplaceOrder) -> str:
    """The FIX text of a command (header fields are quickfix's to fill)."""
    now = utc_timestamp(command.created_ns)
    if isinstance(command, SendOrder):
        fields: list[Field] = [
            (11, command.clordid),
            (1, command.account),
            (55, command.symbol),
            (54, command.side.value),
            (60, now),
            (38, command.qty),
            (40, command.ord_type.value),
            (
                44,
                decimal_text(command.price)
                if command.ord_type is OrderType.LIMIT and command.price is not None
                else None,
            ),
            (59, command.tif.value),
        ]
        return encode("D", fields)
    if isinstance(command, CancelOrder):
        return encode(
            "F",
            [
                (41, command.orig_clordid),
                (37, command.venue_order_id),
                (11, command.clordid),
                (55, command.symbol),
                (54, command.side.value),
                (60, now),
            ],
        )
    return encode(
        "G",
        [
            (37, command.venue_order_id),
            (41, command.orig_clordid),
            (11, command.clordid),
            (55, command.symbol),
            (54, command.side.value),
            (60, now),
            (38, command.qty),
            (40, OrderType.LIMIT.value),
            (44, decimal_text(command.price)),
            (59, command.tif.value),
        ],
    )


def market_data_request(
    md_req_id: str,
    symbols: Iterable[str],
    depth: int,
    *,
    entry_types: Iterable[str] = ("0", "1", "2"),
    subscription: str = "1",
    update_type: str | None = "1",
) -> str:
    """A MarketDataRequest (35=V): by default, snapshot + incremental bids, offers and trades.

    ``subscription`` is SubscriptionRequestType(263): 0 snapshot, 1 snapshot + updates,
    2 unsubscribe.
    """
    types, syms = list(entry_types), list(symbols)
    fields: list[Field] = [(262, md_req_id), (263, subscription), (264, depth), (265, update_type)]
    fields += [(267, len(types)), *((269, t) for t in types)]
    fields += [(146, len(syms)), *((55, s) for s in syms)]
    return encode("V", fields)


def market_data_cancel(md_req_id: str) -> str:
    """Unsubscribe (263=2) a market data request made with ``market_data_request``."""
    return market_data_request(
        md_req_id, (), 0, entry_types=("0",), subscription="2", update_type=None
    )
