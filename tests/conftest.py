"""Shared fixtures: simulated venues and FIX clients on loopback ports picked at run time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

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


def wait_until(condition: Callable[[], object], timeout_s: float, poll_s: float = 0.02) -> bool:
    """Whether ``condition()`` became true within ``timeout_s`` (polled, never slept blind)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def venue_config(**overrides: Any) -> VenueConfig:
    """A one-instrument venue on a fresh port, client CompIDs T1 and T2, no liquidity provider."""
    data: dict[str, Any] = {
        "id": "SIM",
        "comp_id": "SIM",
        "port": free_port(),
        "clients": ["T1", "T2"],
        "instruments": [GOLD_INNER],
    }
    data.update(overrides)
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
    for venue in started:
        venue.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., FixClient]]:
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
