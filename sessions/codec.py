"""FIX 4.4 text <-> the OMS's typed events and commands. The only place the two meet.

Decoding reads only the tags the OMS uses; encoding writes only what a venue needs. Both
work on message text (``fixwire``), so a quickfix ``Message`` is touched once on the way in
(``toString``) and once on the way out (``Message(text, dd, False)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from oms.commands import CancelOrder, ReplaceOrder, SendOrder, StatusRequest
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
    md_type = _market_data_type(text)
    if md_type is not None:
        return _market_data(text, venue, line, recv_ns, snapshot=md_type == "W")
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


def _market_data_type(text: str) -> str | None:
    """``"W"`` or ``"X"`` when ``text`` is market data, else None, without parsing it."""
    at = text.find("\x0135=")
    if at < 0:
        return None
    kind = text[at + 4 : at + 6]
    return kind[0] if kind in ("W\x01", "X\x01") else None


def _market_data(
    text: str, venue: str, line: LineRole, recv_ns: int, *, snapshot: bool
) -> MarketDataReceived:
    """Entries of a W (each an implicit NEW for the snapshot's symbol) or an X.

    Market data is most of what a gateway receives, so this reads the text in one pass,
    comparing tags as text, rather than through ``fixwire.parse``. RptSeq(83), where a
    venue's dialect puts it in the entries, is kept per entry so that the venue link can
    see an instrument's updates go missing.
    """
    sending: str | None = None
    md_req_id: str | None = None
    symbol: str | None = None
    delimiter = "269" if snapshot else "279"
    entries: list[MdEntry] = []
    inside = started = False
    action = kind = entry_symbol = price = size = rpt_seq = None

    def close() -> None:
        if kind is None or price is None:
            raise DecodeError("a market-data entry without MDEntryType(269) or MDEntryPx(270)")
        if snapshot:
            md_action, where = MdAction.NEW, symbol
        else:
            if action is None or entry_symbol is None:
                raise DecodeError("an update entry without MDUpdateAction(279) or Symbol(55)")
            md_action, where = _MD_ACTIONS[action], entry_symbol
        if where is None:
            raise DecodeError("a snapshot without Symbol(55)")
        entries.append(
            MdEntry(
                md_action,
                _MD_TYPES[kind],
                where,
                Decimal(price),
                None if size is None else int(size) if size.isdigit() else _qty(size, 271),
                None if rpt_seq is None else int(rpt_seq),
            )
        )

    for part in text.split("\x01"):
        tag, _, value = part.partition("=")
        if not inside:
            if tag == "52":
                sending = value
            elif tag == "262":
                md_req_id = value
            elif tag == "55":
                symbol = value
            elif tag == "268":
                inside = True
            continue
        if tag == delimiter:
            if started:
                close()
            started = True
            action = kind = entry_symbol = price = size = rpt_seq = None
        if tag == "279":
            action = value
        elif tag == "269":
            kind = value
        elif tag == "55":
            entry_symbol = value
        elif tag == "270":
            price = value
        elif tag == "271":
            size = value
        elif tag == "83":
            rpt_seq = value
        elif tag == "10":
            break
    if started:
        close()
    snapshot_symbol = symbol if snapshot else None
    return MarketDataReceived(
        venue,
        line,
        md_req_id,
        snapshot,
        tuple(entries),
        parse_utc_timestamp(sending) if sending else None,
        recv_ns,
        snapshot_symbol,
    )


def encode_command(command: SendOrder | CancelOrder | ReplaceOrder | StatusRequest) -> str:
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
    if isinstance(command, StatusRequest):
        return encode(
            "H",
            [
                (37, command.venue_order_id),
                (11, command.clordid),
                (790, command.status_req_id),
                (55, command.symbol),
                (54, command.side.value),
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
