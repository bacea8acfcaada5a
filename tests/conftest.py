"""Shared fixtures: simulated venues and FIX clients on loopback ports picked at run time."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessions.gateway import Gateway
from sessions.ports import free_port
from sessions.simulator.client import FixClient
from sessions.simulator.config import VenueConfig
from sessions.simulator.venue import Venue

GOLD_INNER: dict[str, Any] = {
    "symbol": "AU",
    "currency": "CNY",
    "tick": "0.02",
    "lot": 1,
    "contract_size": "1000",
    "contract_unit": "g",
    "prev_close": "560.00",
    "price_band_pct": "6",
    "max_order_qty": 500,
}


GOLD_OUTER: dict[str, Any] = {
    "symbol": "GC",
    "currency": "USD",
    "tick": "0.1",
    "contract_size": "100",
    "contract_unit": "troy_oz",
    "prev_close": "2402.5",
}
GATEWAY_CLIENTS = ["T1", "GW-PRI", "GW-BAK"]
"""A gold venue's clients: a trader (T1) and the gateway's primary and backup lines."""


def launch_gateway(config: Path, log: Path, token: str) -> subprocess.Popen[Any]:
    """`cmc gateway --config CONFIG` as an operator starts it, its admin token from the
    environment and its output appended to ``log``; the caller waits for what it needs."""
    env = {**os.environ, "CMC_ADMIN_TOKEN": token, "COLUMNS": "200"}
    with log.open("a") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "cmc"), "gateway", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )


def terminate(proc: subprocess.Popen[Any] | None, timeout_s: float = 30) -> None:
    """Stop a `cmc` process the way an operator would (SIGTERM: a clean logout and the
    receipts flushed), and kill it only if it does not go in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_until(condition: Callable[[], object], timeout_s: float, poll_s: float = 0.02) -> bool:
    """Whether ``condition()`` became true within ``timeout_s`` (polled, never slept blind)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


_venue_numbers = itertools.count(1)


def venue_config(**overrides: Any) -> VenueConfig:
    """A one-instrument venue on a fresh port, client CompIDs T1 and T2, no liquidity provider.

    Its CompID is made unique in the process (``SIM-7``): retired venues keep their sessions
    registered until the test process ends (see ``FixEngine.retire``).
    """
    data: dict[str, Any] = {
        "id": "SIM",
        "comp_id": "SIM",
        "port": free_port(),
        "clients": ["T1", "T2"],
        "instruments": [GOLD_INNER],
    }
    data.update(overrides)
    data["comp_id"] = f"{data['comp_id']}-{next(_venue_numbers)}"
    return VenueConfig.model_validate(data)


@pytest.fixture
def make_venue() -> Iterator[Callable[..., Venue]]:
    started: list[Venue] = []

    def make(**overrides: Any) -> Venue:
        venue = Venue(venue_config(**overrides))
        venue.start()
        started.append(venue)
        return venue

    yield make
    for venue in started:  # after the clients (make_client is torn down first)
        venue.retire()


@pytest.fixture
def make_client(make_venue: Callable[..., Venue]) -> Iterator[Callable[..., FixClient]]:
    started: list[FixClient] = []

    def make(
        venue: Venue, sender: str = "T1", *, wait_logon_s: float | None = 10.0, **kw: Any
    ) -> FixClient:
        client = FixClient(port=venue.config.port, sender=sender, target=venue.config.comp_id, **kw)
        started.append(client)
        client.start(wait_logon_s=wait_logon_s)
        return client

    yield make
    for client in started:
        client.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process without the interpreter's teardown, which would stop the
    retired venues' acceptors: the quickfix crash ``FixEngine.retire`` exists to avoid.
    pytest has printed its summary by now; its exit status is kept."""
    if _EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])


_EXIT_STATUS = pytest.StashKey[int]()


@pytest.fixture
def venues(make_venue: Callable[..., Venue]) -> tuple[Venue, Venue]:
    """The gold pair's venues, empty: INNER lists AU (CNY per gram), OUTER lists GC (USD per
    troy ounce), each with the gateway's two lines and T1 as clients."""
    inner = make_venue(
        id="INNER", comp_id="INNER", clients=GATEWAY_CLIENTS, instruments=[GOLD_INNER]
    )
    outer = make_venue(
        id="OUTER", comp_id="OUTER", clients=GATEWAY_CLIENTS, instruments=[GOLD_OUTER]
    )
    return inner, outer


@pytest.fixture
def gateways() -> Iterator[list[Gateway]]:
    """Gateways a test starts, stopped at its end (after its clients, before its venues)."""
    started: list[Gateway] = []
    yield started
    for gateway in started:
        gateway.stop()
