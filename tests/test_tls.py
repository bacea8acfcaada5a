"""TLS on the FIX lines: real certificates, real quickfix sessions through the tunnel.

Each test makes its own CA and certificates (``cryptography``), runs simulated venues
behind the server-mode tunnel and the gateway with TLS lines, and looks at what reaches the
wire, what is refused and why.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from oms.enums import Side
from sessions.config_loader import ConfigError
from sessions.demo import gateway_config
from sessions.gateway import Gateway
from sessions.gateway_config import GatewayConfig, load_gateway_config
from sessions.ports import free_port
from sessions.simulator.client import FixClient
from sessions.simulator.config import load_simulator_config
from sessions.simulator.venue import Venue
from sessions.tls_tunnel import TlsClientConfig, TlsServerConfig, TlsTunnel
from tests.conftest import wait_until

pytestmark = pytest.mark.fix

GOLD_OUTER: dict[str, Any] = {
    "symbol": "GC",
    "currency": "USD",
    "tick": "0.1",
    "contract_size": "100",
    "contract_unit": "troy_oz",
    "prev_close": "2402.5",
}
GATEWAY = ["GW-PRI", "GW-BAK"]


# -- certificates ---------------------------------------------------------------------------


class Ca:
    """A certificate authority of the test's own, writing PEM files under ``where``."""

    def __init__(self, name: str, where: Path) -> None:
        self.where = where
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        public = self.key.public_key()
        self.cert = (
            self._builder(subject, public)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self._write(f"{name}.pem", self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public: ec.EllipticCurvePublicKey) -> Any:
        now = dt.datetime.now(dt.UTC)
        issuer = subject if not hasattr(self, "cert") else self.cert.subject
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
        )

    def _write(self, name: str, data: bytes) -> Path:
        path = self.where / name
        path.write_bytes(data)
        return path

    def issue(self, name: str, *, client: bool = False) -> tuple[Path, Path]:
        """A certificate for ``name`` (a DNS name) signed by this CA: (cert file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            self._builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key()
            )
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return (
            self._write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            self._write(f"{name}.key", key_pem),
        )


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return Ca("venue-ca", tmp_path)


# -- helpers --------------------------------------------------------------------------------


def tls_venue(make_venue: Callable[..., Venue], ca: Ca, name: str, **overrides: Any) -> Venue:
    """A simulated venue serving TLS on its port, with a certificate for ``name``."""
    cert, key = ca.issue(name)
    tls = {"cert_file": str(cert), "key_file": str(key), **overrides.pop("tls", {})}
    return make_venue(tls=tls, **overrides)


def one_venue_gateway(
    venue: Venue, tmp_path: Path, lines: list[dict[str, Any]], *, port: int | None = None
) -> Gateway:
    """A gateway with one venue whose lines are GW-PRI and GW-BAK, with the TLS tables given."""
    config = GatewayConfig.model_validate(
        {
            "store_dir": str(tmp_path / "store"),
            "receipts_url": f"sqlite:///{tmp_path / 'receipts.sqlite'}",
            "reconnect_s": 1,
            "venues": [
                {
                    "id": venue.id,
                    "lines": [
                        {
                            "role": role,
                            "port": port or venue.config.port,
                            "sender_comp_id": sender,
                            "target_comp_id": venue.config.comp_id,
                            **line,
                        }
                        for role, sender, line in zip(
                            ("primary", "backup"), GATEWAY, lines, strict=False
                        )
                    ],
                    "instruments": [
                        i.model_dump(exclude={"venue"}) for i in venue.instruments.values()
                    ],
                }
            ],
        }
    )
    return Gateway(config)


@pytest.fixture
def gateways() -> Iterator[list[Gateway]]:
    made: list[Gateway] = []
    yield made
    for gateway in made:
        gateway.stop()


def plain_client(venue: Venue, sender: str = "T1") -> FixClient:
    """A client on the venue's plain acceptor, behind its TLS port."""
    return FixClient(port=venue.fix_port, sender=sender, target=venue.config.comp_id).start()


class Tap:
    """A TCP relay that keeps a copy of every byte it passes, both ways: what a sniffer on
    that stretch of the wire would see."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.seen = bytearray()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    with self._lock:
                        self.seen += data
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def bytes(self) -> bytes:
        with self._lock:
            return bytes(self.seen)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


def rest(client: FixClient, symbol: str, side: Side, qty: int, price: str) -> str:
    clordid = client.new_order(symbol, side, qty, Decimal(price))
    client.wait_report(clordid, "0")
    return clordid


# -- logon and an order round trip ----------------------------------------------------------


def test_a_spread_trade_over_tls_lines(
    make_venue: Callable[..., Venue], ca: Ca, tmp_path: Path, gateways: list[Gateway]
) -> None:
    clients = ["T1", *GATEWAY]
    inner = tls_venue(make_venue, ca, "inner.venue.test", id="INNER", clients=clients)
    outer = tls_venue(
        make_venue, ca, "outer.venue.test", id="OUTER", clients=clients, instruments=[GOLD_OUTER]
    )
    config = gateway_config([inner, outer], tmp_path)
    for venue, name in zip(config.venues, ("inner.venue.test", "outer.venue.test"), strict=True):
        tls = TlsClientConfig(ca_file=ca.pem, server_name=name)
        venue.lines = [line.model_copy(update={"tls": tls}) for line in venue.lines]
    gateway = Gateway(config)
    gateways.append(gateway)
    makers = [plain_client(inner), plain_client(outer)]
    try:
        # The liquidity the trade takes (see tests/test_gateway.py): one spread trade only.
        ask_in = rest(makers[0], "AU", Side.SELL, 30, "560.00")
        rest(makers[0], "AU", Side.BUY, 30, "559.90")
        bid_out = rest(makers[1], "GC", Side.BUY, 10, "2406.0")
        rest(makers[1], "GC", Side.SELL, 10, "2406.5")

        gateway.start()
        assert gateway.wait_ready(20), "the gateway did not log on over TLS"
        assert set(GATEWAY) <= {k.split("->")[1] for k in inner.logged_on}
        fills_in = makers[0].wait_for(
            lambda m: m.get(11) == ask_in and m.get(150) == "F" and m.get(151) == "2", 10
        )
        fills_out = makers[1].wait_for(
            lambda m: m.get(11) == bid_out and m.get(150) == "F" and m.get(151) == "1", 10
        )
        assert fills_in is not None and fills_out is not None

        def settled(oms: Any) -> bool:
            pair = oms.pairs["GOLD"]
            return pair.working is None and len(pair.done) == 1

        assert wait_until(lambda: gateway.oms.call(settled), 5), "the trade did not complete"
        trade = gateway.oms.call(lambda oms: oms.pairs["GOLD"].done[0])
        assert (trade.inner_filled, trade.outer_filled) == (28, 9)
    finally:
        for maker in makers:
            maker.stop()
    assert gateway.tunnel is not None
    stats = gateway.tunnel.stats()
    assert set(stats) == {"INNER primary", "INNER backup", "OUTER primary", "OUTER backup"}
    assert all(s.established >= 1 and not s.failures for s in stats.values())


def test_the_wire_carries_tls_and_the_acceptor_gets_plain_fix(
    make_venue: Callable[..., Venue],
    ca: Ca,
    tmp_path: Path,
    gateways: list[Gateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    venue = make_venue(
        clients=GATEWAY, instruments=[GOLD_OUTER]
    )  # a plain acceptor; TLS terminated in front of it
    behind = Tap(venue.config.port)  # between the server tunnel and the acceptor
    cert, key = ca.issue("venue.test")
    server = TlsTunnel("test-venue-tls")
    tls_port = server.server_route(
        "venue TLS",
        ("127.0.0.1", 0),
        TlsServerConfig(cert_file=cert, key_file=key).context(),
        ("127.0.0.1", behind.port),
    )
    server.start()
    wire = Tap(tls_port)  # between the gateway's tunnel and the venue's TLS port
    try:
        tls = {"tls": {"ca_file": str(ca.pem), "server_name": "venue.test"}}
        gateway = one_venue_gateway(venue, tmp_path, [tls], port=wire.port)
        gateways.append(gateway)
        gateway.start()
        assert wait_until(lambda: gateway.sessions.active_lines()[venue.id] is not None, 15)
        assert wait_until(lambda: b"35=W" in behind.bytes(), 10)  # a snapshot went back

        on_the_wire = wire.bytes()
        assert on_the_wire[:3] == b"\x16\x03\x01"  # a TLS handshake record (ClientHello)
        assert b"8=FIX" not in on_the_wire and b"35=A" not in on_the_wire
        plain = behind.bytes()
        assert plain.startswith(b"8=FIX.4.4\x01") and b"\x0135=A\x01" in plain

        # A raw socket that speaks plain FIX to the TLS port gets no FIX back, and the
        # venue's side says why.
        with caplog.at_level(logging.ERROR, logger="cmc.tls"):
            with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw:
                raw.sendall(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01")
                answer = b""
                while chunk := raw.recv(4096):
                    answer += chunk
            assert b"8=FIX" not in answer
            assert wait_until(lambda: server.stats()["venue TLS"].failures["tls_error"] == 1, 5)
        assert any(
            "venue TLS: a client's TLS handshake failed: TLS error" in r.getMessage()
            for r in caplog.records
        )
    finally:
        for gw in gateways:
            gw.stop()  # before the tunnel and taps it goes through
        server.stop()
        wire.close()
        behind.close()


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "kind", "reason"),
    [
        ("another CA", "certificate_verify_failed", "certificate verify failed: "),
        ("wrong name", "name_mismatch", "Hostname mismatch"),
    ],
)
def test_a_venue_that_cannot_be_verified_is_refused(
    case: str,
    kind: str,
    reason: str,
    make_venue: Callable[..., Venue],
    ca: Ca,
    tmp_path: Path,
    gateways: list[Gateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    venue = tls_venue(make_venue, ca, "venue.test", clients=GATEWAY, instruments=[GOLD_OUTER])
    if case == "another CA":
        other = tmp_path / "other"
        other.mkdir()
        tls = {"ca_file": str(Ca("other-ca", other).pem), "server_name": "venue.test"}
    else:
        tls = {"ca_file": str(ca.pem), "server_name": "somewhere.else.test"}
    caplog.set_level(logging.ERROR, logger="cmc.tls")
    gateway = one_venue_gateway(venue, tmp_path, [{"tls": tls}])
    gateways.append(gateway)
    gateway.start()
    tunnel = gateway.tunnel
    assert tunnel is not None
    route = f"{venue.id} primary"
    # quickfix reconnects every second; each attempt is refused and counted.
    assert wait_until(lambda: tunnel.stats()[route].failures[kind] >= 2, 15)
    assert gateway.sessions.active_lines()[venue.id] is None
    assert venue.logged_on == set()
    stats = tunnel.stats()[route]
    assert stats.established == 0 and reason in (stats.last_failure or "")
    messages = [r.getMessage() for r in caplog.records if r.name == "cmc.tls"]
    assert any(m.startswith(f"{route}: TLS to ") and reason in m for m in messages), messages


def test_mutual_tls_logs_on_with_a_client_certificate_and_refuses_one_without(
    make_venue: Callable[..., Venue], ca: Ca, tmp_path: Path, gateways: list[Gateway]
) -> None:
    clients_ca = Ca("clients-ca", tmp_path)
    venue = tls_venue(
        make_venue,
        ca,
        "venue.test",
        clients=GATEWAY,
        instruments=[GOLD_OUTER],
        tls={"ca_file": str(clients_ca.pem)},
    )
    cert, key = clients_ca.issue("gw-pri.example.test", client=True)
    with_cert = {
        "ca_file": str(ca.pem),
        "server_name": "venue.test",
        "cert_file": str(cert),
        "key_file": str(key),
    }
    without = {"ca_file": str(ca.pem), "server_name": "venue.test"}
    gateway = one_venue_gateway(venue, tmp_path, [{"tls": with_cert}, {"tls": without}])
    gateways.append(gateway)
    gateway.start()
    tunnel = gateway.tunnel
    assert tunnel is not None
    backup = f"{venue.id} backup"
    assert wait_until(lambda: sum(tunnel.stats()[backup].failures.values()) >= 2, 15)
    assert wait_until(lambda: len(venue.logged_on) == 1, 5)
    assert {k.split("->")[1] for k in venue.logged_on} == {"GW-PRI"}
    assert gateway.sessions.active_lines()[venue.id] is not None
    # Under TLS 1.3 the venue refuses the certificate after our side of the handshake is
    # done: the tunnel sees the connection end before the venue said anything.
    refused = tunnel.stats()[backup]
    assert refused.established >= 2 and refused.open == 0
    assert set(refused.failures) <= {"closed_before_answer", "tls_error"}
    assert "before answering" in (refused.last_failure or "") or "CERTIFICATE" in (
        refused.last_failure or ""
    )
    primary = tunnel.stats()[f"{venue.id} primary"]
    assert primary.open == 1 and not primary.failures


# -- configuration --------------------------------------------------------------------------


def _gateway_toml(tmp_path: Path, tls: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[[venues]]
id = "V"
[[venues.lines]]
role = "primary"
port = 9101
sender_comp_id = "GW"
target_comp_id = "V"
tls = {tls}
[[venues.instruments]]
symbol = "GC"
currency = "USD"
tick = "0.1"
contract_size = "100"
contract_unit = "troy_oz"
"""
    )
    return path


def test_tls_files_are_checked_when_the_configuration_loads(ca: Ca, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_gateway_config(_gateway_toml(tmp_path, '{ ca_file = "nowhere/ca.pem" }'))
    text = str(missing.value)
    assert "gateway.toml: invalid configuration" in text
    assert "venues[0].lines[0].tls.ca_file: file not found: nowhere/ca.pem" in text
    assert "give the path of the PEM file of the CA" in text

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as unreadable:
        load_gateway_config(_gateway_toml(tmp_path, f'{{ ca_file = "{garbage}" }}'))
    assert f"cannot read ca_file {garbage}" in str(unreadable.value)

    cert, _ = ca.issue("gw.test", client=True)
    with pytest.raises(ConfigError) as alone:
        load_gateway_config(
            _gateway_toml(tmp_path, f'{{ ca_file = "{ca.pem}", cert_file = "{cert}" }}')
        )
    assert "cert_file and key_file go together" in str(alone.value)

    other_cert, _ = ca.issue("other.test", client=True)
    _, key = ca.issue("gw2.test", client=True)
    with pytest.raises(ConfigError) as mismatch:
        load_gateway_config(
            _gateway_toml(
                tmp_path,
                f'{{ ca_file = "{ca.pem}", cert_file = "{other_cert}", key_file = "{key}" }}',
            )
        )
    assert "the key must belong to the certificate" in str(mismatch.value)

    loaded = load_gateway_config(_gateway_toml(tmp_path, f'{{ ca_file = "{ca.pem}" }}'))
    assert loaded.venues[0].lines[0].tls is not None


def _sim_toml(tmp_path: Path, port: int, tls: str) -> Path:
    path = tmp_path / "sim.toml"
    path.write_text(
        f"""
[[venues]]
id = "TLSV"
comp_id = "TLSV"
port = {port}
clients = ["GW-PRI"]
tls = {tls}
[[venues.instruments]]
symbol = "GC"
currency = "USD"
tick = "0.1"
contract_size = "100"
contract_unit = "troy_oz"
prev_close = "2402.5"
"""
    )
    return path


def test_the_simulators_tls_files_are_checked_too(tmp_path: Path) -> None:
    path = _sim_toml(tmp_path, 9999, '{ cert_file = "no.crt", key_file = "no.key" }')
    with pytest.raises(ConfigError) as missing:
        load_simulator_config(path)
    text = str(missing.value)
    assert "venues[0].tls.cert_file: file not found: no.crt" in text
    assert "venues[0].tls.key_file: file not found: no.key" in text


def test_cmc_sim_serves_tls_to_the_gateway(ca: Ca, tmp_path: Path, gateways: list[Gateway]) -> None:
    """The real ``cmc sim``, configured from TOML to serve TLS, and the gateway logging on."""
    cert, key = ca.issue("sim.venue.test")
    port = free_port()
    config = _sim_toml(tmp_path, port, f'{{ cert_file = "{cert}", key_file = "{key}" }}')
    sim = subprocess.Popen(
        [sys.executable, "-m", "sessions.cli", "sim", "--config", str(config), "--seconds", "20"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "300"},  # one log record a line
    )
    try:
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(sim.stdout or ()), daemon=True).start()
        assert wait_until(lambda: any("type `help`" in x for x in lines), 15), lines
        assert any("(TLS; its plain acceptor is on port" in x for x in lines), lines
        # A TLS client that trusts the CA sees the venue's certificate for its name.
        context = ssl.create_default_context(cafile=ca.pem)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="sim.venue.test") as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        venue_config = load_simulator_config(config).venues[0]
        config_gw = GatewayConfig.model_validate(
            {
                "store_dir": str(tmp_path / "store"),
                "receipts_url": f"sqlite:///{tmp_path / 'receipts.sqlite'}",
                "reconnect_s": 1,
                "venues": [
                    {
                        "id": "TLSV",
                        "lines": [
                            {
                                "role": "primary",
                                "port": port,
                                "sender_comp_id": "GW-PRI",
                                "target_comp_id": "TLSV",
                                "tls": {"ca_file": str(ca.pem), "server_name": "sim.venue.test"},
                            }
                        ],
                        "instruments": [i.model_dump() for i in venue_config.instruments],
                    }
                ],
            }
        )
        gateway = Gateway(config_gw)
        gateways.append(gateway)
        gateway.start()
        assert wait_until(lambda: gateway.sessions.active_lines()["TLSV"] is not None, 15), (
            "the gateway did not log on to cmc sim over TLS"
        )
        gateway.stop()
    finally:
        if sim.poll() is None:
            assert sim.stdin is not None
            sim.stdin.write("quit\n")
            sim.stdin.flush()
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait(5)
    assert sim.returncode == 0


def test_an_encrypted_key_takes_its_passphrase_from_the_environment(
    ca: Ca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = ca.issue("gw.test", client=True)
    plain = serialization.load_pem_private_key(key.read_bytes(), None)
    encrypted = tmp_path / "gw-encrypted.key"
    encrypted.write_bytes(
        plain.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse"),
        )
    )
    files = f'ca_file = "{ca.pem}", cert_file = "{cert}", key_file = "{encrypted}"'
    monkeypatch.delenv("CMC_TEST_KEY_PASS", raising=False)
    with pytest.raises(ConfigError) as no_variable:
        load_gateway_config(_gateway_toml(tmp_path, f"{{ {files} }}"))
    assert "is encrypted: set key_password_env" in str(no_variable.value)
    with_env = f'{{ {files}, key_password_env = "CMC_TEST_KEY_PASS" }}'
    with pytest.raises(ConfigError) as unset:
        load_gateway_config(_gateway_toml(tmp_path, with_env))
    assert "$CMC_TEST_KEY_PASS (key_password_env) is not set" in str(unset.value)
    monkeypatch.setenv("CMC_TEST_KEY_PASS", "correct horse")
    loaded = load_gateway_config(_gateway_toml(tmp_path, with_env))
    line_tls = loaded.venues[0].lines[0].tls
    assert line_tls is not None
    assert "correct horse" not in repr(line_tls)  # the passphrase is read, never kept
