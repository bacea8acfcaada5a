"""The gateway's FIX acceptor for institutional clients and drop-copy consumers.

One quickfix acceptor holds a session per configured client and per drop-copy consumer;
any other CompID is refused at logon (quickfix knows no session for it), and a client or
consumer with a password configured must send it on Logon (Username 553, Password 554,
compared in constant time with the secret named by its environment variable). Incoming
orders are decoded here into :mod:`oms.client_messages` requests and posted to the OMS;
what the OMS answers comes back through :meth:`ClientSessions.send` on the OMS thread.

Messages are persisted (FileStore, ``PersistMessages``), so a client or a consumer that was
away gets what it missed by the session's own resend, and nothing twice: quickfix resends
only the sequence numbers the counterparty asks for.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import quickfix as fix

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
    SpreadLeg,
)
from oms.clock import now_ns
from oms.enums import OrderType, Side, TimeInForce
from sessions.client_config import ClientAcceptorConfig
from sessions.fixengine import (
    FixEngine,
    GuardedApplication,
    build_settings,
    common_defaults,
    data_dictionary,
    owned_session_id,
    send_text,
)
from sessions.fixwire import (
    Field,
    MissingTag,
    Tags,
    decimal_text,
    encode,
    flat,
    not_utf8,
    parse,
    utc_timestamp,
)

log = logging.getLogger("cmc.clients")

_SIDES = {s.value: s for s in Side}
_ORD_TYPES = {t.value: t for t in OrderType}
_TIFS = {t.value: t for t in TimeInForce}
Post = Callable[[ClientRequest], None]


class BadRequest(ValueError):
    """A message quickfix found well formed that the gateway still cannot take; ``tag`` is
    the field at fault, for the session Reject's RefTagID."""

    def __init__(self, message: str, tag: int = 0) -> None:
        super().__init__(message)
        self.tag = tag


class NotUtf8(BadRequest):
    """A field whose bytes were not UTF-8: the gateway stores and returns text, so it refuses
    it (RefTagID the field) rather than carry it on."""


class _Application(GuardedApplication):
    def __init__(self, link: ClientSessions) -> None:
        super().__init__()
        self._link = link

    def on_from_admin(self, message: Any, session: str) -> None:
        if message.getHeader().getField(35) == "A":
            self._link.check_logon(session, flat(parse(message.toString())))

    def on_from_app(self, message: Any, session: str) -> None:
        self._link.received(message.toString(), session)


class ClientSessions:
    def __init__(
        self, config: ClientAcceptorConfig, store_dir: Path, post: Post, log_dir: Path | None
    ) -> None:
        self.config = config
        self._post = post
        self._dd = data_dictionary()
        us = config.comp_id
        self._secrets: dict[str, tuple[str | None, str | None]] = {
            c.comp_id: (c.username, c.password_env) for c in config.clients
        }
        self._secrets |= {d.comp_id: (d.username, d.password_env) for d in config.drop_copies}
        self._clients = {c.comp_id for c in config.clients}
        self._client_sid = {c: owned_session_id(us, c) for c in self._clients}
        self._copies = [
            (owned_session_id(us, d.comp_id), set(d.accounts or ()), set(d.venues or ()))
            for d in config.drop_copies
        ]
        default = common_defaults(store_dir, heartbeat_s=config.heartbeat_s)
        default |= {
            "ConnectionType": "acceptor",
            "SocketReuseAddress": True,
            "SocketAcceptHost": config.host,
            "PersistMessages": True,  # what a client or consumer missed is resent from here
        }
        copy_port = config.drop_copy_port or config.port
        sessions: list[dict[str, str | int | bool | Path]] = [
            {"SenderCompID": us, "TargetCompID": c, "SocketAcceptPort": port}
            for c, port in [(c.comp_id, config.port) for c in config.clients]
            + [(d.comp_id, copy_port) for d in config.drop_copies]
        ]
        self._engine = FixEngine(
            _Application(self),
            build_settings(default, sessions),
            acceptor=True,
            file_store=True,
            log_dir=log_dir,
        )

    def start(self) -> None:
        self._engine.start()

    def retire(self) -> None:
        """Log every client out and leave the acceptor to the end of the process (quickfix
        1.16 can crash stopping an acceptor: see ``FixEngine.retire``)."""
        self._engine.retire("gateway shutting down")

    def logged_on(self) -> list[str]:
        return self._engine.logged_on()

    # -- quickfix's threads ---------------------------------------------------------------

    def check_logon(self, session: str, tags: dict[int, str]) -> None:
        """Refuse a Logon whose credentials do not match the configured ones."""
        who = session.split("->", 1)[1]
        username, password_env = self._secrets.get(who, (None, None))
        if username is not None and tags.get(553) != username:
            log.warning("logon refused for %s: wrong or missing Username(553)", who)
            raise fix.RejectLogon("wrong or missing Username(553)")
        if password_env is not None:
            secret = os.environ.get(password_env)
            given = tags.get(554, "")
            if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
                log.warning("logon refused for %s: wrong or missing Password(554)", who)
                raise fix.RejectLogon("wrong or missing Password(554)")

    def received(self, text: str, session: str) -> None:
        who = session.split("->", 1)[1]
        if who not in self._clients:
            # A drop-copy consumer receives; it does not trade.
            raise fix.UnsupportedMessageType()
        try:
            request = decode_request(text, who, now_ns())
        except MissingTag as exc:
            log.warning("client %s: %s", who, exc)
            raise fix.FieldNotFound(exc.tag) from None
        except NotUtf8 as exc:
            log.warning("client %s: %s", who, exc)
            raise fix.IncorrectDataFormat(exc.tag) from None
        except BadRequest as exc:
            log.warning("client %s: %s", who, exc)
            raise fix.IncorrectTagValue(exc.tag) from None
        if request is None:
            raise fix.UnsupportedMessageType()
        self._post(request)

    # -- the OMS thread --------------------------------------------------------------------

    def send(self, message: ClientMessage) -> None:
        if isinstance(message, DropCopy):
            report = message.report
            for sid, accounts, venues in self._copies:
                if accounts and (report.account or "") not in accounts:
                    continue
                if venues and report.venue not in venues:
                    continue
                send_text(encode_report(report, copy=True), sid, self._dd)
            return
        sid = self._client_sid.get(message.client)
        if sid is None:
            return
        text = (
            encode_report(message)
            if isinstance(message, ClientReport)
            else encode_cancel_reject(message)
        )
        send_text(text, sid, self._dd)


# -- decoding ------------------------------------------------------------------------------


def _qty(text: str, tag: int) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadRequest(f"tag {tag} {text!r} is not a number", tag) from None
    if value != value.to_integral_value() or value < 1:
        raise BadRequest(f"tag {tag} {text} is not a whole number of contracts (at least 1)", tag)
    return int(value)


def _price(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise BadRequest(f"Price(44) {text!r} is not a number", 44) from None


def decode_request(text: str, client: str, recv_ns: int) -> ClientRequest | None:
    """The request a client's message makes, or None for a type the gateway does not take."""
    fields = parse(text)
    bad = not_utf8(text, fields)
    if bad is not None:
        raise NotUtf8(f"tag {bad} is not UTF-8 text", bad)
    tags = Tags(flat(fields))
    msg_type = tags.get(35)
    side = _SIDES.get(tags.get(54, ""))
    if msg_type == "D":
        assert side is not None  # quickfix has checked the enumeration
        ord_type = _ORD_TYPES.get(tags[40])
        tif = _TIFS.get(tags.get(59, "0"))
        if ord_type is None or tif is None:
            raise BadRequest(f"OrdType(40)={tags[40]} or TimeInForce(59) is not supported", 40)
        return ClientNewOrder(
            client,
            tags[11],
            tags.get(100, ""),
            tags[55],
            side,
            _qty(tags[38], 38),
            ord_type,
            _price(tags.get(44)) if ord_type is OrderType.LIMIT else None,
            tif,
            tags.get(1),
            tags.get(97) == "Y",
            recv_ns,
        )
    if msg_type == "F":
        assert side is not None
        return ClientCancel(client, tags[11], tags[41], tags[55], side, recv_ns)
    if msg_type == "G":
        assert side is not None
        price = _price(tags.get(44))
        if price is None:
            raise MissingTag("a replace needs Price(44)", 44)
        return ClientReplace(
            client, tags[11], tags[41], tags[55], side, _qty(tags[38], 38), price, recv_ns
        )
    if msg_type == "H":
        assert side is not None
        return ClientStatus(client, tags[11], tags[55], side, tags.get(790), recv_ns)
    if msg_type == "AB":
        ord_type = _ORD_TYPES.get(tags[40])
        if ord_type is None:
            raise BadRequest(f"OrdType(40)={tags[40]} is not supported for a spread", 40)
        return ClientSpread(
            client,
            tags[11],
            _legs(fields),
            _qty(tags[38], 38),
            ord_type,
            _price(tags.get(44)),
            tags.get(1),
            tags.get(97) == "Y",
            recv_ns,
        )
    return None


def _legs(fields: list[tuple[int, str]]) -> tuple[SpreadLeg, ...]:
    """NoLegs(555): each leg opens with LegSymbol(600); its venue is LegSecurityExchange(616)
    and its side LegSide(624)."""
    legs: list[dict[int, str]] = []
    for tag, value in fields:
        if tag == 600:
            legs.append({600: value})
        elif legs and tag in (616, 624):
            legs[-1][tag] = value
    out = []
    for leg in legs:
        side = _SIDES.get(leg.get(624, ""))
        if side is None or 616 not in leg:
            raise MissingTag("each leg needs LegSecurityExchange(616) and LegSide(624)", 616)
        out.append(SpreadLeg(leg[616], leg[600], side))
    return tuple(out)


# -- encoding ------------------------------------------------------------------------------


def encode_report(report: ClientReport, *, copy: bool = False) -> str:
    fields: list[Field] = [
        (37, report.order_id),
        (11, report.clordid),
        (41, report.orig_clordid),
        (17, report.exec_id),
        (150, report.exec_type.value),
        (39, report.ord_status.value),
        (103, report.reject_reason.value if report.reject_reason else None),
        (1, report.account),
        (55, report.symbol or "[N/A]"),
        (54, report.side.value),
        (38, report.qty),
        (44, decimal_text(report.price) if report.price is not None else None),
        (32, report.last_qty if report.last_px is not None else None),
        (31, decimal_text(report.last_px) if report.last_px is not None else None),
        (151, report.leaves_qty),
        (14, report.cum_qty),
        (6, decimal_text(report.avg_px)),
        (60, utc_timestamp(report.transact_ns)),
        (58, report.text),
        (207, report.venue or None),  # SecurityExchange: the venue (ER has no ExDestination)
        (442, report.reporting.value if report.reporting else None),
        (790, report.status_req_id),
        (797, "Y" if copy else None),
    ]
    return encode("8", fields)


def encode_cancel_reject(reject: ClientCancelReject) -> str:
    return encode(
        "9",
        [
            (37, reject.order_id),
            (11, reject.clordid),
            (41, reject.orig_clordid),
            (39, reject.ord_status.value),
            (434, "2" if reject.replace else "1"),
            (102, "1" if reject.unknown else "0"),
            (58, reject.text),
            (60, utc_timestamp(reject.transact_ns)),
        ],
    )
