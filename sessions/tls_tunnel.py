"""TLS for FIX lines, in front of quickfix: a tunnel the gateway (or a venue) runs itself.

The quickfix build that pip installs has no SSL (its SSL classes raise ``HAVE_SSL not
enabled``), and building it against OpenSSL would need a compiler and headers set up by hand
on every machine. So TLS is done here, in Python, with ``asyncio`` and the standard ``ssl``
module, and quickfix keeps speaking plain FIX over loopback:

* **client mode** (the gateway): a route listens on 127.0.0.1 on a port of its own; quickfix's
  initiator connects there instead of to the venue, and for each connection the tunnel opens
  a TLS connection to the venue, verifying the venue's certificate against the line's CA file
  and server name (TLS 1.2 at least; a client certificate for mutual TLS where configured).
  If that fails, the local connection is closed, so quickfix sees a lost connection and
  reconnects as it always does; the reason is logged and counted.
* **server mode** (a venue, the simulator, tests): a route terminates TLS on a port and
  forwards the plain bytes to a local acceptor.

One thread runs one event loop for every route; the tunnel never calls quickfix and quickfix
never waits on it except through its socket. Bytes are relayed as they come, protocol to
protocol (no task switch per message), with flow control both ways. Listening sockets are
bound when a route is added, so its port is known before anything starts and connections
that arrive before the loop runs wait in the backlog.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oms.events import LineRole

if TYPE_CHECKING:
    from sessions.gateway_config import GatewayConfig

log = logging.getLogger("cmc.tls")

HANDSHAKE_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 5.0


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _existing(path: Path | None, what: str) -> Path | None:
    if path is not None and not path.is_file():
        raise ValueError(
            f"file not found: {path} (relative paths are from the directory the process "
            f"runs in); give the path of {what}"
        )
    return path


class _NoPassphrase(ValueError):
    """An encrypted key and no passphrase for it."""


def _key_password(key_file: Path, env: str | None) -> Callable[[], str]:
    """The key's passphrase, read from the environment when the key is loaded (never kept,
    never logged). Without one, an encrypted key fails to load instead of prompting."""

    def read() -> str:
        if env is None:
            raise _NoPassphrase(
                f"key_file {key_file} is encrypted: set key_password_env to the name of an "
                "environment variable that holds its passphrase"
            )
        value = os.environ.get(env)
        if value is None:
            raise _NoPassphrase(
                f"key_file {key_file} is encrypted and ${env} (key_password_env) is not set "
                "in this process's environment: set it to the key's passphrase"
            )
        return value

    return read


def _why(exc: ssl.SSLError) -> str:
    return str(getattr(exc, "reason", None) or exc)


class _Credentials(Strict):
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password_env: str | None = Field(
        default=None, description="environment variable that holds key_file's passphrase"
    )

    @field_validator("cert_file")
    @classmethod
    def _cert_exists(cls, path: Path | None) -> Path | None:
        return _existing(path, "a PEM certificate (chain) file")

    @field_validator("key_file")
    @classmethod
    def _key_exists(cls, path: Path | None) -> Path | None:
        return _existing(path, "the PEM private key of cert_file")

    def _load_identity(self, context: ssl.SSLContext) -> None:
        if self.cert_file is None or self.key_file is None:
            return
        try:
            context.load_cert_chain(
                self.cert_file,
                self.key_file,
                password=_key_password(self.key_file, self.key_password_env),
            )
        except _NoPassphrase as exc:
            raise ValueError(str(exc)) from None
        except ssl.SSLError as exc:
            raise ValueError(
                f"cannot use cert_file {self.cert_file} with key_file {self.key_file} "
                f"({_why(exc)}): both must be PEM and the key must belong to the certificate "
                "(an encrypted key: is the passphrase in key_password_env's variable right?)"
            ) from None


class TlsClientConfig(_Credentials):
    """The ``tls`` table of a gateway line: how to reach the venue over TLS."""

    ca_file: Path = Field(description="PEM file of the CA(s) that sign the venue's certificate")
    server_name: str | None = Field(
        default=None, description="the name the venue's certificate must carry; the line's host"
    )

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, path: Path) -> Path:
        _existing(path, "the PEM file of the CA that signs the venue's certificate")
        return path

    @model_validator(mode="after")
    def _loadable(self) -> TlsClientConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS): give both or none")
        self.context()  # a file that is not PEM, or a key that does not match, fails now
        return self

    def context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        except ssl.SSLError as exc:
            raise ValueError(
                f"cannot read ca_file {self.ca_file} ({_why(exc)}): it must hold PEM certificates"
            ) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load_identity(context)
        return context


class TlsServerConfig(_Credentials):
    """TLS terminated in front of a plain acceptor (a simulated venue's ``tls`` table)."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = Field(
        default=None,
        description="when set, clients must present a certificate signed by it (mutual TLS)",
    )

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, path: Path | None) -> Path | None:
        return _existing(path, "the PEM file of the CA that signs the clients' certificates")

    @model_validator(mode="after")
    def _loadable(self) -> TlsServerConfig:
        self.context()
        return self

    def context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.ca_file)
        except ssl.SSLError as exc:
            raise ValueError(
                f"cannot read ca_file {self.ca_file} ({_why(exc)}): it must hold PEM certificates"
            ) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED if self.ca_file else ssl.CERT_NONE
        self._load_identity(context)
        return context


# -- failures ------------------------------------------------------------------------------


class ClosedBeforeAnswer(ConnectionError):
    """The far side ended a relayed connection before sending a single byte."""

    def __init__(self, cause: Exception | None) -> None:
        super().__init__(cause)
        self.cause = cause


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """(kind, reason) of a failed connection or handshake: the kind is what is counted."""
    if isinstance(exc, ClosedBeforeAnswer):
        why = f" ({describe_failure(exc.cause)[1]})" if exc.cause is not None else ""
        return "closed_before_answer", f"the peer ended the connection before answering{why}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or str(exc)
        # X509_V_ERR_HOSTNAME_MISMATCH (62), X509_V_ERR_IP_ADDRESS_MISMATCH (64)
        kind = "name_mismatch" if exc.verify_code in (62, 64) else "certificate_verify_failed"
        return kind, f"certificate verify failed: {message}"
    if isinstance(exc, ssl.SSLError):
        return "tls_error", f"TLS error: {_why(exc)}"
    if isinstance(exc, TimeoutError):
        return "timeout", "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(exc, OSError):
        return "network", exc.strerror or str(exc)
    return "error", repr(exc)


_HINTS = {
    "name_mismatch": "the certificate does not name {name}: check the line's tls.server_name",
    "certificate_verify_failed": "check that tls.ca_file is the CA that signed the "
    "peer's certificate",
    "tls_error": "the peer refused the handshake: check the TLS version, and for mutual TLS "
    "the client certificate (tls.cert_file, tls.key_file)",
    "refused": "is anything listening on {upstream}?",
    "closed_before_answer": "it refused us after the TLS handshake: for mutual TLS, check the "
    "line's tls.cert_file and tls.key_file; else see the peer's log",
    "timeout": "is {upstream} reachable, and does it speak TLS?",
}


@dataclass
class RouteStats:
    """Counts for one route, for an operator: how many connections, how many failed and why."""

    accepted: int = 0
    established: int = 0
    open: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    last_failure: str | None = None

    def copy(self) -> RouteStats:
        return RouteStats(
            self.accepted, self.established, self.open, Counter(self.failures), self.last_failure
        )


@dataclass(frozen=True)
class Route:
    name: str
    listen: socket.socket
    upstream: tuple[str, int]
    accept_tls: ssl.SSLContext | None = None  # server mode: TLS in
    connect_tls: ssl.SSLContext | None = None  # client mode: TLS out
    server_name: str | None = None

    @property
    def port(self) -> int:
        return int(self.listen.getsockname()[1])


# -- relaying ------------------------------------------------------------------------------


class _Half(asyncio.Protocol):
    """One side of a relayed connection: what it receives goes out on the other side.

    Data that arrives before the other side is connected waits here. When the other side
    cannot keep up (its transport's buffer is over the high-water mark) this side stops
    reading until it has drained. Either side ending ends both.
    """

    def __init__(self, on_lost: Callable[[_Half, Exception | None], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.lost = False
        self.received = 0
        self._pending: list[bytes] = []
        self._on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def link(self, peer: _Half) -> None:
        self.peer = peer
        if peer.transport is not None and self._pending:
            peer.transport.write(b"".join(self._pending))
        self._pending.clear()
        if peer.lost:
            self.close()

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        peer = self.peer
        if peer is None or peer.transport is None:
            self._pending.append(data)
        elif not peer.transport.is_closing():
            peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None:
            self.peer.close()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.peer is not None:
            self.peer.close()
        self._on_lost(self, exc)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def close(self) -> None:
        """Close after what is already buffered has gone out."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _Pair:
    """The two halves of one relayed connection, and what ending it does."""

    def __init__(self, tunnel: TlsTunnel, route: Route) -> None:
        self.tunnel = tunnel
        self.route = route
        self.established = False
        self.inbound = _Half(self._lost)
        self.outbound = _Half(self._lost)
        tunnel._halves |= {self.inbound, self.outbound}
        self._error: Exception | None = None
        self._first_lost: _Half | None = None

    def _lost(self, half: _Half, exc: Exception | None) -> None:
        self.tunnel._halves.discard(half)
        if self._first_lost is None:
            self._first_lost = half
        if exc is not None and self._error is None:
            self._error = exc
        if self.established and self.inbound.lost and self.outbound.lost:
            self.established = False
            # The far side ending a connection before it said anything refused it: a venue
            # that does not accept our client certificate does so after the handshake
            # under TLS 1.3, so the handshake alone cannot tell.
            refused = self._first_lost is self.outbound and self.outbound.received == 0
            self.tunnel._ended(self.route, self._error, refused)

    def abort(self, conn: socket.socket) -> None:
        """Give up before relaying: close whatever was opened (the peer sees it end)."""
        for half in (self.inbound, self.outbound):
            half.close()
            self.tunnel._halves.discard(half)
        if self.inbound.transport is None:
            conn.close()  # never wrapped in a transport: close the socket itself


class TlsTunnel:
    """Routes between plain loopback sockets and TLS, on one thread with its own loop.

    Add routes, ``start()``, ``stop()``; ``stats()`` from any thread.
    """

    def __init__(
        self, name: str = "tls-tunnel", *, handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    ):
        self.name = name
        self.handshake_timeout_s = handshake_timeout_s
        self.routes: list[Route] = []
        self._stats: dict[str, RouteStats] = {}
        self._stats_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._halves: set[_Half] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    # -- routes (before start) ------------------------------------------------------------

    def client_route(
        self,
        name: str,
        remote: tuple[str, int],
        context: ssl.SSLContext,
        server_name: str,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
    ) -> int:
        """Plain on ``listen`` (127.0.0.1, a port the OS picks), TLS to ``remote``, the peer
        verified as ``server_name``. Returns the local port to connect to."""
        return self._add(Route(name, _listen(listen), remote, None, context, server_name))

    def server_route(
        self,
        name: str,
        listen: tuple[str, int],
        context: ssl.SSLContext,
        upstream: tuple[str, int],
    ) -> int:
        """TLS on ``listen``, plain to ``upstream`` (a local acceptor). Returns the port."""
        return self._add(Route(name, _listen(listen), upstream, context, None, None))

    def _add(self, route: Route) -> int:
        if self._thread is not None or self._stopped:
            route.listen.close()
            raise RuntimeError("routes are added before the tunnel starts")
        if any(r.name == route.name for r in self.routes):
            route.listen.close()
            raise ValueError(f"a route named {route.name!r} exists already")
        self.routes.append(route)
        self._stats[route.name] = RouteStats()
        return route.port

    # -- life cycle -----------------------------------------------------------------------

    def start(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:
            return
        if self._stopped:
            raise RuntimeError("this tunnel was stopped; make a new one")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"{self.name}: the event loop did not start in {timeout_s} s")

    def stop(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Close every route and connection (each connection's peer sees it end)."""
        if self._stopped:
            return
        self._stopped = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("%s: did not stop within %.1f s", self.name, timeout_s)
        for route in self.routes:
            route.listen.close()

    def stats(self) -> dict[str, RouteStats]:
        with self._stats_lock:
            return {name: s.copy() for name, s in self._stats.items()}

    # -- the tunnel's thread --------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            for route in self.routes:
                self._spawn(self._serve(route))
            loop.call_soon(self._ready.set)
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        for half in list(self._halves):
            half.close()
        for _ in range(50):  # let the closes go out: at most half a second
            if not self._halves:
                break
            await asyncio.sleep(0.01)
        for half in list(self._halves):
            half.abort()
        await asyncio.sleep(0)
        asyncio.get_running_loop().stop()

    async def _serve(self, route: Route) -> None:
        loop = asyncio.get_running_loop()
        route.listen.setblocking(False)
        while True:
            try:
                conn, _ = await loop.sock_accept(route.listen)
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                log.error("%s: cannot accept connections: %s", route.name, exc)
                await asyncio.sleep(1.0)
                continue
            self._count(route, accepted=1)
            self._spawn(self._relay(route, conn))

    async def _relay(self, route: Route, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        pair = _Pair(self, route)
        inbound, outbound = pair.inbound, pair.outbound
        try:
            if route.accept_tls is not None:  # server mode: TLS from the client, plain on
                await loop.connect_accepted_socket(
                    lambda: inbound,
                    conn,
                    ssl=route.accept_tls,
                    ssl_handshake_timeout=self.handshake_timeout_s,
                    ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                )
                async with asyncio.timeout(self.handshake_timeout_s):
                    await loop.create_connection(lambda: outbound, *route.upstream)
            else:  # client mode: plain from quickfix, TLS to the venue
                async with asyncio.timeout(self.handshake_timeout_s * 2):
                    await loop.create_connection(
                        lambda: outbound,
                        *route.upstream,
                        ssl=route.connect_tls,
                        server_hostname=route.server_name,
                        ssl_handshake_timeout=self.handshake_timeout_s,
                        ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                    )
                await loop.connect_accepted_socket(lambda: inbound, conn)
        except asyncio.CancelledError:
            pair.abort(conn)
            raise
        except Exception as exc:
            self._failed(route, exc)
            pair.abort(conn)
            return
        pair.established = True
        self._count(route, established=1)
        inbound.link(outbound)
        outbound.link(inbound)

    def _ended(self, route: Route, exc: Exception | None, refused: bool) -> None:
        """A relayed connection ended: a TLS error, or the far side ending it before it
        sent a byte, is a failure too."""
        self._count(route, closed=1)
        if refused:
            self._failed(route, ClosedBeforeAnswer(exc))
        elif isinstance(exc, ssl.SSLError):
            self._failed(route, exc)

    def _count(
        self, route: Route, *, accepted: int = 0, established: int = 0, closed: int = 0
    ) -> None:
        with self._stats_lock:
            stats = self._stats[route.name]
            stats.accepted += accepted
            stats.established += established
            stats.open += established - closed

    def _failed(self, route: Route, exc: BaseException) -> None:
        kind, reason = describe_failure(exc)
        upstream = f"{route.upstream[0]}:{route.upstream[1]}"
        hint = _HINTS.get(kind, "").format(name=route.server_name, upstream=upstream)
        if route.accept_tls is not None and kind in ("tls_error", "certificate_verify_failed"):
            where = "a client's TLS handshake"
        elif route.accept_tls is not None:
            where = f"the plain connection to {upstream}"
        else:
            where = f"TLS to {upstream}" + (
                f" as {route.server_name}" if route.server_name != route.upstream[0] else ""
            )
        log.error(
            "%s: %s failed: %s%s; connection closed",
            route.name,
            where,
            reason,
            f" ({hint})" if hint else "",
        )
        with self._stats_lock:  # counted once logged: a reader of the count finds the log
            stats = self._stats[route.name]
            stats.failures[kind] += 1
            stats.last_failure = reason


def _listen(address: tuple[str, int]) -> socket.socket:
    return socket.create_server(address, backlog=16)


# -- the gateway's side ----------------------------------------------------------------------


def gateway_tunnel(
    config: GatewayConfig,
) -> tuple[TlsTunnel | None, dict[tuple[str, LineRole], tuple[str, int]]]:
    """A client-mode route for every gateway line with a ``tls`` table, and where quickfix
    must connect for each of them instead of the venue: (venue id, line role) -> (host,
    port). No tunnel when no line uses TLS."""
    tunnel = TlsTunnel("gateway-tls")
    endpoints: dict[tuple[str, LineRole], tuple[str, int]] = {}
    for venue in config.venues:
        for line in venue.lines:
            if line.tls is None:
                continue
            port = tunnel.client_route(
                f"{venue.id} {line.role.value}",
                (line.host, line.port),
                line.tls.context(),
                line.tls.server_name or line.host,
            )
            endpoints[(venue.id, line.role)] = ("127.0.0.1", port)
    if not endpoints:
        tunnel.stop()
        return None, {}
    return tunnel, endpoints
