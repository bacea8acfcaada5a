"""The gateway's configuration: venues and their lines, instruments, pairs.

Read like a FIX counterparty sheet: each venue lists its lines (a primary and, usually, a
backup with CompIDs of its own), and for each line where to connect and as whom.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oms.events import LineRole
from oms.instruments import Instrument, InstrumentSpec
from oms.pairs import PairConfig, PairSpec
from sessions.config_loader import load_toml

CompId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,32}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineConfig(Strict):
    role: LineRole
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    sender_comp_id: CompId
    target_comp_id: CompId


class GatewayVenue(Strict):
    id: str = Field(min_length=1, max_length=16)
    lines: list[LineConfig] = Field(min_length=1, max_length=2)
    instruments: list[InstrumentSpec] = Field(min_length=1)
    market_data_depth: int = Field(default=5, ge=1, le=50)

    @field_validator("lines")
    @classmethod
    def _one_primary(cls, lines: list[LineConfig]) -> list[LineConfig]:
        roles = [line.role for line in lines]
        if LineRole.PRIMARY not in roles or len(set(roles)) != len(roles):
            raise ValueError("a venue needs one primary line and at most one backup line")
        pairs = {(line.sender_comp_id, line.target_comp_id) for line in lines}
        if len(pairs) != len(lines):
            raise ValueError(
                "the backup line needs CompIDs of its own (quickfix runs one session per "
                "SenderCompID/TargetCompID pair)"
            )
        return lines

    def instrument_list(self) -> list[Instrument]:
        return [Instrument.listed(self.id, spec) for spec in self.instruments]


class GatewayConfig(Strict):
    store_dir: Path = Field(
        default=Path("var/gateway/store"), description="quickfix FileStore: sequence numbers"
    )
    receipts_url: str = "sqlite:///var/gateway/receipts.sqlite"
    heartbeat_s: int = Field(default=30, ge=1)
    reconnect_s: int = Field(default=5, ge=1)
    venues: list[GatewayVenue] = Field(min_length=1)
    pairs: list[PairConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        ids = [v.id for v in self.venues]
        if len(set(ids)) != len(ids):
            raise ValueError(f"venue ids must be distinct: {ids}")
        listed = {(v.id, i.symbol) for v in self.venues for i in v.instruments}
        for pair in self.pairs:
            for leg in (pair.inner, pair.outer):
                if (leg.venue, leg.symbol) not in listed:
                    raise ValueError(
                        f"pair {pair.id}: {leg.venue} {leg.symbol} is not an instrument of a "
                        f"configured venue; listed: {sorted(listed)}"
                    )
        self.pair_specs()  # each pair's lot ratio must exist within its tolerance
        return self

    def instruments(self) -> dict[tuple[str, str], Instrument]:
        return {(i.venue, i.symbol): i for v in self.venues for i in v.instrument_list()}

    def pair_specs(self) -> list[PairSpec]:
        instruments = self.instruments()
        return [
            PairSpec.build(
                p,
                instruments[(p.inner.venue, p.inner.symbol)],
                instruments[(p.outer.venue, p.outer.symbol)],
            )
            for p in self.pairs
        ]


def load_gateway_config(path: Path | str) -> GatewayConfig:
    return load_toml(path, GatewayConfig)
