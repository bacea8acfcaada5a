"""The venue simulator's configuration, validated once at start.

A file holds one or more ``[[venues]]``; ``cmc sim`` runs them all in one process. See
``conf/sim.toml`` for a documented example.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oms.instruments import Instrument, InstrumentSpec
from sessions.config_loader import load_toml
from sessions.simulator.matching import Phase
from sessions.tls_tunnel import TlsServerConfig

CompId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,32}$")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InstrumentConfig(InstrumentSpec):
    """An instrument as the venue lists it. A venue needs a previous close: the band, the
    auction's tie-break and the liquidity provider's starting fair value all use it."""

    prev_close: Annotated[Decimal, Field(gt=0)]


class LiquidityConfig(Strict):
    """A market maker quoting both sides around a seeded random-walk fair value."""

    enabled: bool = True
    seed: int = 1
    interval_ms: int = Field(default=200, ge=1, description="how often quotes are refreshed")
    levels: int = Field(default=5, ge=1, le=20)
    half_spread_ticks: int = Field(default=1, ge=1)
    level_step_ticks: int = Field(default=1, ge=1)
    size: int = Field(default=10, ge=1, description="lots quoted at each level")
    step_ticks: int = Field(
        default=2, ge=0, description="largest move of the fair value per refresh"
    )
    reversion: float = Field(
        default=0.05, ge=0.0, le=1.0, description="pull back toward prev_close per refresh"
    )


class FaultConfig(Strict):
    """Misbehaviour on purpose, so that the gateway's handling of it can be tested."""

    seed: int = 7
    reject_rate: Probability = 0.0
    partial_fill_rate: Probability = 0.0
    ack_delay_ms: int = Field(default=0, ge=0)
    fill_delay_ms: int = Field(default=0, ge=0)
    cancel_delay_ms: int = Field(
        default=0, ge=0, description="how long cancel and replace requests wait before matching"
    )
    refuse_logons: list[str] = Field(
        default_factory=list, description='client CompIDs whose logon is refused, or ["*"]'
    )
    pending_reports: bool = Field(
        default=False, description="send PendingCancel / PendingReplace before the outcome"
    )


class VenueTlsConfig(TlsServerConfig):
    """TLS on the venue's port: a tunnel terminates it and forwards to the venue's plain
    acceptor, which then listens on a free port of its own (shown at start)."""

    host: str = Field(default="127.0.0.1", description="the address TLS is served on")


class PhaseChange(Strict):
    after_s: float = Field(ge=0)
    phase: Phase
    symbols: list[str] | None = None


class VenueConfig(Strict):
    id: str = Field(min_length=1, max_length=16, description="LastMkt(30) and the prefix of ids")
    comp_id: CompId
    port: int = Field(
        ge=1, le=65535, description="quickfix 1.16 acceptors listen on every interface"
    )
    clients: list[CompId] = Field(min_length=1, description="CompIDs allowed to log on")
    store_dir: Path | None = Field(
        default=None, description="quickfix FileStore directory; in memory when left out"
    )
    log_dir: Path | None = None
    heartbeat_s: int = Field(default=30, ge=1)
    market_data_max_depth: int = Field(default=10, ge=1, le=50)
    initial_phase: Phase = Phase.CONTINUOUS
    schedule: list[PhaseChange] = Field(default_factory=list)
    instruments: list[InstrumentConfig] = Field(min_length=1)
    liquidity: LiquidityConfig = LiquidityConfig(enabled=False)
    faults: FaultConfig = FaultConfig()
    tls: VenueTlsConfig | None = Field(
        default=None, description="serve FIX over TLS on `port` (README: TLS on the FIX lines)"
    )

    @field_validator("clients")
    @classmethod
    def _unique_clients(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each client CompID may be listed once")
        return value

    @model_validator(mode="after")
    def _known_symbols(self) -> VenueConfig:
        symbols = [i.symbol for i in self.instruments]
        if len(set(symbols)) != len(symbols):
            raise ValueError("each instrument symbol may be listed once per venue")
        for change in self.schedule:
            unknown = set(change.symbols or ()) - set(symbols)
            if unknown:
                raise ValueError(
                    f"schedule names unknown symbols {sorted(unknown)}; known: {symbols}"
                )
        return self

    def instrument_list(self) -> list[Instrument]:
        return [Instrument.listed(self.id, i) for i in self.instruments]


class SimulatorConfig(Strict):
    venues: list[VenueConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> SimulatorConfig:
        ids = [v.id for v in self.venues]
        if len(set(ids)) != len(ids):
            raise ValueError(f"venue ids must be distinct: {ids}")
        ports = [v.port for v in self.venues]
        if len(set(ports)) != len(ports):
            raise ValueError(f"venue ports must be distinct: {ports}")
        return self


def load_simulator_config(path: Path | str) -> SimulatorConfig:
    return load_toml(path, SimulatorConfig)
