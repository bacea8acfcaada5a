"""The admin API: what ``cmc sessions``, ``cmc orders``, ``cmc kill``... ask a running gateway.

JSON over HTTP, served by uvicorn in one thread of the gateway process, on a loopback
address only (the configuration refuses any other), behind a bearer token that the gateway
reads from the environment variable its ``[admin]`` table names. A request without the right
token gets 401; the token is compared in constant time and never logged or echoed.

Why a thread and not a process: the operator's commands act on the live sessions and the
OMS. The server's event loop sleeps between requests (it ticks ten times a second to check
for shutdown), and each request's work (a quickfix call, an ``oms.call``) runs on a worker
thread, so the FIX callbacks and the OMS thread never wait for it.

Once listening, the gateway writes ``admin.json`` into its state directory (beside the
quickfix store) with the URL and the name of the token's variable, so that ``cmc`` finds it.

Every mutating request names who asks and why; session actions leave an
``operator.session`` receipt, a stage change an ``operator.stage`` one, and the kill switch
and resume leave the OMS's own. Every status answer names the gateway's stage (shadow,
canary, live), so that no operator reads paper positions for real ones.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oms.clock import now_ns
from oms.events import LineRole
from oms.receipts import Receipt
from sessions.dashboard import Dashboard
from sessions.gateway_config import AdminConfig, Stage
from sessions.stage import StageError
from sessions.venue_link import UnknownVenue

if TYPE_CHECKING:
    from oms.core import Oms
    from oms.orders import Order
    from sessions.gateway import Gateway

log = logging.getLogger("cmc.admin")

ADMIN_FILE = "admin.json"
"""Where, in the gateway's state directory, the running admin API says where it listens."""
MIN_TOKEN_CHARS = 16
SEND_BUFFER = 32 * 1024
API = "/v1"

Handler = Callable[[Request], Awaitable[Response]]


class AdminError(RuntimeError):
    """The admin API cannot start: no token in the environment, an address in use."""


class Refused(Exception):
    """A request the API answers with an error status and a message saying what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def admin_token(config: AdminConfig) -> str:
    """The bearer token, from the environment variable the configuration names."""
    name = config.token_env
    token = os.environ.get(name, "")
    if not token:
        raise AdminError(
            f"the admin API needs a bearer token and {name} is not set: export {name} with "
            f"a secret of {MIN_TOKEN_CHARS} characters or more (for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) in the gateway's "
            "environment and in the operators' (for `cmc`), or remove the [admin] table to "
            "run without the admin API"
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise AdminError(
            f"{name} is too short to be a safe token ({len(token)} characters); use "
            f"{MIN_TOKEN_CHARS} or more, e.g. from "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return token


# -- what the API answers with ------------------------------------------------------------


def order_json(order: Order) -> dict[str, Any]:
    return {
        "clordid": order.clordid,
        "first_clordid": order.key,
        "venue": order.venue,
        "symbol": order.symbol,
        "side": order.side.name,
        "qty": order.qty,
        "price": None if order.price is None else str(order.price),
        "tif": order.tif.name,
        "status": order.status.name,
        "filled": order.cum_qty,
        "leaves": order.leaves_qty,
        "working": order.working,
        "pair_id": order.pair_id,
        "leg": order.leg,
        "venue_order_id": order.venue_order_id,
        "created_ns": order.created_ns,
    }


def _orders(oms: Oms, working_only: bool) -> list[dict[str, Any]]:
    chosen = oms.orders.working() if working_only else oms.orders.all()
    return [order_json(o) for o in sorted(chosen, key=lambda o: o.created_ns)]


def _positions(oms: Oms, contracts: list[tuple[str, str]], currency: str) -> dict[str, Any]:
    pairs = [
        {
            "pair": pair_id,
            "units": book.units,
            "position": book.position,
            "imbalance": str(book.imbalance),
            "inner": {
                "venue": book.spec.inner.venue,
                "symbol": book.spec.inner.symbol,
                "lots": book.net_inner,
            },
            "outer": {
                "venue": book.spec.outer.venue,
                "symbol": book.spec.outer.symbol,
                "lots": book.net_outer,
            },
            "trade_working": book.working is not None,
        }
        for pair_id, book in oms.pairs.items()
    ]
    rows = []
    for venue, symbol in contracts:
        position, buys, sells = oms.risk.exposure(venue, symbol)
        rows.append(
            {
                "venue": venue,
                "symbol": symbol,
                "position": position,
                "working_buys": buys,
                "working_sells": sells,
            }
        )
    pnl: Decimal = oms.risk.pnl()
    return {"pairs": pairs, "contracts": rows, "pnl": str(pnl), "currency": currency}


# -- requests -------------------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the request body is not JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "the request body must be a JSON object")
    return data


def _text(body: dict[str, Any], key: str, *, required: bool, limit: int = 500) -> str:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise Refused(400, f"{key!r} is required: say {_WHAT[key]}")
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise Refused(400, f"{key!r} must be a string of at most {limit} characters")
    return value


_WHAT = {"who": "who asks (cmc sends the OS user name)", "why": "why (cmc's --reason)"}


def _role(body: dict[str, Any], *, required: bool = False) -> LineRole | None:
    value = body.get("role")
    if value is None:
        if required:
            raise Refused(400, "'role' is required: primary or backup")
        return None
    try:
        return LineRole(value)
    except ValueError:
        raise Refused(400, f"'role' must be primary or backup (got {value!r})") from None


def _seq(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise Refused(400, f"{key!r} must be a whole number of 1 or more (got {value!r})")
    return value


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class AdminApp:
    """The routes, bound to one gateway; ``app`` is what uvicorn serves."""

    def __init__(self, gateway: Gateway, token: str, token_env: str) -> None:
        self.gateway = gateway
        self._token = token.encode()
        self._token_env = token_env
        self._contracts = [(v.id, i.symbol) for v in gateway.config.venues for i in v.instruments]
        guarded = self._guarded
        routes = [
            Route(f"{API}/sessions", guarded(self.sessions), methods=["GET"]),
            Route(f"{API}/sessions/{{venue}}", guarded(self.sessions), methods=["GET"]),
            Route(f"{API}/sessions/{{venue}}/{{action}}", guarded(self.act), methods=["POST"]),
            Route(f"{API}/orders", guarded(self.orders), methods=["GET"]),
            Route(f"{API}/positions", guarded(self.positions), methods=["GET"]),
            Route(f"{API}/risk", guarded(self.risk), methods=["GET"]),
            Route(f"{API}/kill", guarded(self.kill), methods=["POST"]),
            Route(f"{API}/resume", guarded(self.resume), methods=["POST"]),
            Route(f"{API}/stage", guarded(self.stage), methods=["GET"]),
            Route(f"{API}/stage", guarded(self.set_stage), methods=["POST"]),
        ]
        # The operator's live page: its files open, its data behind the same token.
        self.dashboard = Dashboard(gateway, guarded)
        routes += self.dashboard.routes()
        self.app = Starlette(
            routes=routes,
            exception_handlers={HTTPException: self._http_error},  # type: ignore[dict-item]
        )

    # -- plumbing --------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._token)

    def _guarded(self, handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            if not self._authorised(request):
                return JSONResponse(
                    {
                        "error": "missing or wrong bearer token: set "
                        f"{self._token_env} to the token the gateway was started with",
                        "token_env": self._token_env,
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            try:
                return await handler(request)
            except Refused as exc:
                return _error(exc.status, exc.message)
            except UnknownVenue as exc:
                return _error(404, str(exc))
            except ValueError as exc:
                return _error(409, str(exc))
            except TimeoutError as exc:
                return _error(503, f"{exc}; the gateway may be overloaded, see its log")
            except Exception as exc:
                log.exception("admin API: %s %s failed", request.method, request.url.path)
                return _error(500, f"the gateway failed to do it ({exc}); see its log")

        return run

    @staticmethod
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return _error(404, f"no such admin endpoint: {request.url.path}")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    def _oms(self, fn: Callable[[Oms], Any]) -> Any:
        return self.gateway.oms.call(fn)

    @property
    def _stage(self) -> str:
        """The stage, for every status answer (read without the OMS thread)."""
        return self.gateway.stage.current.value

    def _lines(self, venue: str | None = None) -> list[dict[str, Any]]:
        lines = self.gateway.sessions.status()
        if venue is not None:
            lines = [s for s in lines if s.venue == venue]
            if not lines:
                raise UnknownVenue(
                    f"no venue {venue!r} in this gateway; its venues are "
                    f"{', '.join(self.gateway.sessions.links)}"
                )
        return [s.as_json() for s in lines]

    def _venue(self, venue: str | None) -> str | None:
        if venue is not None and venue not in self.gateway.sessions.links:
            raise UnknownVenue(
                f"no venue {venue!r} in this gateway; its venues are "
                f"{', '.join(self.gateway.sessions.links)}"
            )
        return venue

    def _receipt(
        self,
        action: str,
        venue: str,
        role: LineRole | None,
        who: str,
        why: str,
        **data: str | int | None,
    ) -> None:
        receipt = Receipt.of(
            "operator.session",
            ts_ns=now_ns(),
            venue=venue,
            line=None if role is None else role.value,
            verdict=action,
            reason=why or None,
            data={"who": who, **data},
        )
        try:
            self._oms(lambda oms: oms.record(receipt))
        except TimeoutError:  # done all the same: say so where an operator will look
            log.error(
                "operator %s: %s %s done, but its receipt could not be handed over",
                who,
                action,
                venue,
            )

    # -- endpoints -------------------------------------------------------------------------

    async def sessions(self, request: Request) -> Response:
        venue = request.path_params.get("venue")
        lines = await run_in_threadpool(self._lines, venue)
        return JSONResponse({"stage": self._stage, "lines": lines})

    async def act(self, request: Request) -> Response:
        venue: str = request.path_params["venue"]
        action: str = request.path_params["action"]
        body = await _body(request)
        who = _text(body, "who", required=True, limit=64)
        why = _text(body, "why", required=False)
        sessions = self.gateway.sessions
        result: dict[str, Any] = {}
        if action == "logon":
            role = _role(body)
            await run_in_threadpool(sessions.logon, venue, role)
        elif action == "logout":
            role = _role(body)
            reason = f"logged out by {who}" + (f": {why}" if why else "")
            await run_in_threadpool(sessions.logout, venue, role, reason)
        elif action == "reset-seq":
            role = _role(body)
            await run_in_threadpool(sessions.reset_seq, venue, role)
        elif action == "set-seq":
            role = seq_role = _role(body, required=True) or LineRole.PRIMARY
            sender, target = _seq(body, "next_sender"), _seq(body, "next_target")
            if sender is None and target is None:
                raise Refused(400, "give next_sender, next_target or both")

            def set_seq() -> None:
                sessions.set_seq(venue, seq_role, next_sender=sender, next_target=target)

            await run_in_threadpool(set_seq)
            result = {"next_sender": sender, "next_target": target}
        elif action == "snapshot":
            role = None
            symbol = _text(body, "symbol", required=False)
            reason = f"snapshot asked by {who}" + (f": {why}" if why else "")

            def ask() -> LineRole:
                return sessions.snapshot(venue, [symbol] if symbol else None, reason)

            asked = await run_in_threadpool(ask)
            result = {"line": asked.value, "symbol": symbol or "all"}
        elif action in ("failover", "failback"):
            role = None
            switch = sessions.failover if action == "failover" else sessions.failback
            active = await run_in_threadpool(switch, venue)
            result = {"active": active.value}
        else:
            raise Refused(
                404,
                f"no session action {action!r}; use logon, logout, failover, failback, "
                "snapshot, reset-seq or set-seq",
            )
        log.warning(
            "operator %s: %s %s%s%s",
            who,
            action,
            venue,
            f" {role.value}" if role is not None else "",
            f" ({why})" if why else "",
        )
        await run_in_threadpool(self._receipt, action, venue, role, who, why, **result)
        lines = await run_in_threadpool(self._lines, venue)
        return JSONResponse({"done": action, "venue": venue, **result, "lines": lines})

    async def orders(self, request: Request) -> Response:
        working = request.query_params.get("working", "").lower() in ("1", "true", "yes")
        rows = await run_in_threadpool(self._oms, lambda oms: _orders(oms, working))
        return JSONResponse({"stage": self._stage, "working_only": working, "orders": rows})

    async def positions(self, request: Request) -> Response:
        currency = self.gateway.config.risk.base_currency
        contracts = self._contracts
        data = await run_in_threadpool(self._oms, lambda oms: _positions(oms, contracts, currency))
        return JSONResponse({"stage": self._stage, **data})

    async def risk(self, request: Request) -> Response:
        states = await run_in_threadpool(self._oms, lambda oms: oms.risk.states())
        return JSONResponse({"stage": self._stage, "states": states})

    async def kill(self, request: Request) -> Response:
        body = await _body(request)
        who = _text(body, "who", required=True, limit=64)
        why = _text(body, "why", required=True)
        venue = self._venue(body.get("venue"))
        report = await run_in_threadpool(self._oms, lambda oms: oms.kill(venue, who=who, why=why))
        log.warning("operator %s: kill %s (%s)", who, venue or "everything", why)
        return JSONResponse(
            {
                "scope": report.scope,
                "cancels": list(report.cancels),
                "not_cancelled": [{"clordid": c, "why": w} for c, w in report.not_cancelled],
                "state_change": report.state_change,
            }
        )

    async def resume(self, request: Request) -> Response:
        body = await _body(request)
        who = _text(body, "who", required=True, limit=64)
        why = _text(body, "why", required=False) or "resumed by an operator"
        venue = self._venue(body.get("venue"))
        changed = await run_in_threadpool(
            self._oms, lambda oms: oms.resume(venue, who=who, why=why)
        )
        log.warning("operator %s: resume %s (%s)", who, venue or "everything", why)
        states = await run_in_threadpool(self._oms, lambda oms: oms.risk.states())
        return JSONResponse({"scope": venue or "global", "changed": changed, "states": states})

    async def stage(self, request: Request) -> Response:
        control = self.gateway.stage
        return JSONResponse(await run_in_threadpool(self._oms, control.status))

    async def set_stage(self, request: Request) -> Response:
        body = await _body(request)
        who = _text(body, "who", required=True, limit=64)
        why = _text(body, "why", required=True)
        wanted = body.get("stage")
        try:
            to = Stage(wanted)
        except ValueError:
            choices = ", ".join(s.value for s in Stage)
            raise Refused(400, f"'stage' must be one of {choices} (got {wanted!r})") from None
        control = self.gateway.stage

        def change(oms: Oms) -> dict[str, Any] | StageError:
            try:  # raised on the OMS thread, it would never reach this request
                return control.change(oms, to, who, why)
            except StageError as exc:
                return exc

        answer = await run_in_threadpool(self._oms, change)
        if isinstance(answer, StageError):
            raise Refused(409, str(answer))
        return JSONResponse(answer)


class AdminServer:
    """The admin API's listening socket, its uvicorn thread and its ``admin.json``."""

    def __init__(self, gateway: Gateway, config: AdminConfig, state_dir: Path) -> None:
        self.config = config
        self.state_file = state_dir / ADMIN_FILE
        token = admin_token(config)  # before anything starts: no token, no gateway
        self._app = AdminApp(gateway, token, config.token_env)
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    def bind(self) -> None:
        """Take the address now, so that a port in use stops the gateway before it starts."""
        host, port = self.config.host, self.config.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this: a small send buffer, so that a dashboard reader
        # that stops reading stalls the stream's writer (which then skips to the newest
        # snapshot) instead of the kernel queueing seconds of snapshots for it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise AdminError(
                f"the admin API cannot listen on {host}:{port} ({exc.strerror}); stop what "
                "holds that port, or set [admin] port = 0 to take any free one"
            ) from None
        sock.listen(16)
        self._socket = sock
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{bound}"

    def start(self) -> str:
        """Serve on the bound socket (binding it first if need be); returns the URL."""
        if self._socket is None:
            self.bind()
        assert self._socket is not None and self.url is not None
        config = uvicorn.Config(
            self._app.app,
            log_config=None,  # the gateway's logging stays as the gateway set it
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        sockets = [self._socket]
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": sockets}, name="admin-api", daemon=True
        )
        self._server = server
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            self.stop()
            raise AdminError("the admin API did not start; see the log above")
        self._write_state()
        log.info("admin API at %s (token from %s)", self.url, self.config.token_env)
        return self.url

    def stop(self) -> None:
        self._app.dashboard.close()  # open streams end now, not at the shutdown's time-out
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._server = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._remove_state()

    def _write_state(self) -> None:
        """``admin.json``, replaced whole (never half written). It holds no secret: only
        where to connect and which variable holds the token."""
        state = {
            "url": self.url,
            "pid": os.getpid(),
            "token_env": self.config.token_env,
            "started_ns": now_ns(),
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.state_file.with_name(f".{ADMIN_FILE}.{os.getpid()}")
        partial.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(partial, self.state_file)

    def _remove_state(self) -> None:
        """Remove ``admin.json`` if it is still this process's (another gateway may have
        taken the state directory since)."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        if isinstance(state, dict) and state.get("pid") == os.getpid():
            self.state_file.unlink(missing_ok=True)
