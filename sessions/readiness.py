"""The readiness check: is this gateway file ready to trade, line by line, before it does?

What an operator wants to know before the first order, each as one verdict with the reason:
the file itself; every venue line (primary and backup) logging on as the gateway would, with
the gateway's own sequence-number store, through its TLS tunnel where it has one; for each
line that logged on, the round trip of a TestRequest and the venue's clock against ours
(from its Heartbeat's SendingTime, halfway through the round trip); the receipt store; and
what can be checked of the client side without a client: that the acceptor's ports can be
bound and that every password and token the file names is set in the environment.

The check logs on with the gateway's CompIDs, so it must not run beside a gateway that is
running with the same file: the venue would see the same session twice.
"""

from __future__ import annotations

import itertools
import os
import socket
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from oms.clock import now_ns
from oms.receipts import ReceiptStore
from sessions.fixengine import (
    FixEngine,
    GuardedApplication,
    build_settings,
    common_defaults,
    data_dictionary,
    owned_session_id,
    send_text,
)
from sessions.fixwire import encode, flat, parse, parse_utc_timestamp
from sessions.gateway_config import GatewayConfig
from sessions.tls_tunnel import gateway_tunnel

Verdict = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Item:
    """One line of the readiness table."""

    area: str  # config, line, clock, receipts, clients, admin
    name: str  # what was checked: "SHFE-SIM primary (GW-PRI -> SHFE-SIM)"
    verdict: Verdict
    detail: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


class _Probe(GuardedApplication):
    """Records logons, logouts (with their Text) and Heartbeats answering our TestRequests."""

    def __init__(self) -> None:
        super().__init__()
        self.cond = threading.Condition()
        self.logged_on: set[str] = set()
        self.logout_text: dict[str, str] = {}
        self.heartbeats: dict[str, tuple[int, int]] = {}  # TestReqID -> (SendingTime, recv)

    def on_logon(self, session: str) -> None:
        with self.cond:
            self.logged_on.add(session)
            self.cond.notify_all()

    def on_logout(self, session: str) -> None:
        with self.cond:
            self.logged_on.discard(session)
            self.cond.notify_all()

    def heartbeat(self, req_id: str, timeout_s: float) -> tuple[int, int] | None:
        """The (SendingTime, our receive time) of the Heartbeat answering ``req_id``."""
        with self.cond:
            self.cond.wait_for(lambda: req_id in self.heartbeats, timeout_s)
            return self.heartbeats.get(req_id)

    def on_from_admin(self, message: Any, session: str) -> None:
        recv = now_ns()
        tags = flat(parse(message.toString()))
        with self.cond:
            if tags.get(35) == "5" and 58 in tags:
                self.logout_text[session] = tags[58]
            if tags.get(35) == "0" and 112 in tags:
                self.heartbeats[tags[112]] = (parse_utc_timestamp(tags[52]), recv)
            self.cond.notify_all()


def check(
    config: GatewayConfig, *, logon_timeout_s: float = 8.0, round_trips: int = 5
) -> list[Item]:
    """Every verdict, in the order of the table."""
    items: list[Item] = [Item("config", "the file", "ok", "valid")]
    items += _lines(config, logon_timeout_s, round_trips)
    items.append(_receipts(config))
    items += _clients(config)
    if config.admin is not None:
        name = config.admin.token_env
        token = os.environ.get(name)
        items.append(
            Item(
                "admin",
                f"token in ${name}",
                "ok" if token and len(token) >= 16 else "fail",
                "set" if token and len(token) >= 16 else f"set {name} (16 characters or more)",
            )
        )
    return items


def _lines(config: GatewayConfig, timeout_s: float, round_trips: int) -> list[Item]:
    probe = _Probe()
    tunnel, endpoints = gateway_tunnel(config)
    lines = [(v, line) for v in config.venues for line in v.lines]
    default = common_defaults(config.store_dir, heartbeat_s=config.heartbeat_s)
    default |= {"ConnectionType": "initiator", "ReconnectInterval": 2, "PersistMessages": False}
    sessions: list[dict[str, Any]] = []
    for venue, line in lines:
        host, port = endpoints.get((venue.id, line.role), (line.host, line.port))
        sessions.append(
            {
                "SenderCompID": line.sender_comp_id,
                "TargetCompID": line.target_comp_id,
                "SocketConnectHost": host,
                "SocketConnectPort": port,
            }
        )
    engine = FixEngine(probe, build_settings(default, sessions), acceptor=False, file_store=True)
    if tunnel is not None:
        tunnel.start()
    engine.start()
    keys = {f"{line.sender_comp_id}->{line.target_comp_id}" for _, line in lines}
    deadline = time.monotonic() + timeout_s
    with probe.cond:
        while not keys <= probe.logged_on and time.monotonic() < deadline:
            probe.cond.wait(max(0.0, deadline - time.monotonic()))
    items: list[Item] = []
    clocks: list[Item] = []
    ids = itertools.count(1)
    dd = data_dictionary()
    for venue, line in lines:
        key = f"{line.sender_comp_id}->{line.target_comp_id}"
        host, port = line.host, line.port
        name = f"{venue.id} {line.role.value} ({key}, {host}:{port}{' TLS' if line.tls else ''})"
        if key not in probe.logged_on:
            items.append(Item("line", name, "fail", _why_not(probe, key, host, port)))
            continue
        items.append(Item("line", name, "ok", "logged on; FIX 4.4 messages parsed"))
        rtts, offsets = [], []
        for _ in range(round_trips):
            req = f"CHECK-{next(ids)}"
            sent = now_ns()
            send_text(
                encode("1", [(112, req)]),
                owned_session_id(line.sender_comp_id, line.target_comp_id),
                dd,
            )
            answer = probe.heartbeat(req, 3.0)
            if answer is None:
                continue
            stamp, recv = answer
            rtts.append(recv - sent)
            offsets.append(stamp - (sent + recv) // 2)
        if not rtts:
            clocks.append(Item("clock", name, "fail", "no Heartbeat answered a TestRequest"))
            continue
        rtt = statistics.median(rtts) / 1e3
        offset = statistics.median(offsets) / 1e6
        tolerance = config.risk.defaults.clock_offset_ms
        limit_ms = float(tolerance) if tolerance is not None else 500.0
        verdict: Verdict = "ok" if abs(offset) <= limit_ms else "warn"
        clocks.append(
            Item(
                "clock",
                name,
                verdict,
                f"round trip {rtt:,.0f} µs; venue clock {offset:+.3f} ms from ours "
                f"(tolerance {limit_ms:g} ms); SendingTime has the venue's precision",
            )
        )
    engine.log_out_all("readiness check done", 3.0)
    engine.stop(reason="readiness check done")
    if tunnel is not None:
        tunnel.stop()
    return items + clocks


def _why_not(probe: _Probe, key: str, host: str, port: int) -> str:
    text = probe.logout_text.get(key)
    if text:
        return f"logon refused: {text}"
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc.strerror or exc}); check host and port"
    return (
        "connected, but no Logon came back: check sender_comp_id and target_comp_id against "
        "the venue's sheet"
    )


def _receipts(config: GatewayConfig) -> Item:
    url = config.receipts_url
    shown = url.split("@")[-1] if "@" in url else url
    try:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        with ReceiptStore(url) as store:
            count = store.count()
    except Exception as exc:  # any failure to reach the store is the verdict
        return Item("receipts", shown, "fail", f"cannot open the receipt store: {exc}")
    return Item("receipts", shown, "ok", f"reachable; {count:,} receipts")


def _clients(config: GatewayConfig) -> list[Item]:
    acceptor = config.client_acceptor
    if acceptor is None:
        return []
    items: list[Item] = []
    ports = {acceptor.port, acceptor.drop_copy_port or acceptor.port}
    for port in sorted(ports):
        try:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((acceptor.host, port))
            items.append(Item("clients", f"port {acceptor.host}:{port}", "ok", "free to listen on"))
        except OSError as exc:
            items.append(
                Item("clients", f"port {acceptor.host}:{port}", "fail", f"cannot listen: {exc}")
            )
    secrets = [(c.comp_id, c.password_env) for c in acceptor.clients]
    secrets += [(d.comp_id, d.password_env) for d in acceptor.drop_copies]
    for comp_id, env in secrets:
        if env is None:
            items.append(Item("clients", comp_id, "ok", "no password configured"))
        elif os.environ.get(env):
            items.append(Item("clients", comp_id, "ok", f"password in ${env}"))
        else:
            items.append(Item("clients", comp_id, "fail", f"set {env}: its password"))
    return items
