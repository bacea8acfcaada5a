"""The gateway's configuration: venues and their lines, instruments, pairs.

Read like a FIX counterparty sheet: each venue lists its lines (a primary and, usually, a
backup with CompIDs of its own), and for each line where to connect and as whom.
"""

from __future__ import annotations

import ipaddress
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oms.events import LineRole
from oms.instruments import Instrument, InstrumentSpec
from oms.pairs import PairConfig, PairSpec
from oms.receipt_spool import DEFAULT_MAX_BYTES as SPOOL_MAX_BYTES
from oms.risk import CanaryCaps, RiskConfig
from sessions.client_config import ClientAcceptorConfig
from sessions.config_loader import load_toml
from sessions.schedule import ScheduleConfig
from sessions.tls_tunnel import TlsClientConfig

CompId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,32}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineConfig(Strict):
    role: LineRole
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    sender_comp_id: CompId
    target_comp_id: CompId
    tls: TlsClientConfig | None = Field(
        default=None, description="reach the venue over TLS (README: TLS on the FIX lines)"
    )


class RejectRate(Strict):
    count: int = Field(ge=1, description="this many rejects ...")
    window_s: float = Field(gt=0, description="... within this many seconds")


class FailoverConfig(Strict):
    """When a venue's orders leave its primary line for the backup, and when they come back
    (README: Failover). A lost connection, a refused logon and a heartbeat found missing by
    quickfix's TestRequest always switch; the thresholds here are off unless set."""

    heartbeat_s: int | None = Field(
        default=None,
        ge=1,
        description="HeartBtInt(108) on this venue's lines (the gateway's heartbeat_s when left "
        "out): a line that says nothing for about 2.4 of these is ended, and the venue fails over",
    )
    ack_latency_ms: int | None = Field(
        default=None, ge=1, description="acknowledgements slower than this on the primary ..."
    )
    slow_acks: int = Field(default=3, ge=1, description="... this many in a row: fail over")
    reject_rate: RejectRate | None = Field(
        default=None, description="{count, window_s}: that many rejects on the primary: fail over"
    )
    failback: Literal["manual", "auto"] = Field(
        default="auto",
        description='back to the primary by an operator only ("manual"), or once it has been '
        'logged on and quiet for failback_after_s ("auto")',
    )
    failback_after_s: float = Field(default=30.0, ge=0)
    reconcile_timeout_ms: int = Field(
        default=2000,
        ge=1,
        description="how long the venue's pairs wait for the answers to the status requests "
        "sent after a switch",
    )
    ack_timeout_ms: int = Field(
        default=3000,
        ge=1,
        description="an order the venue has not answered this long after it went out is asked "
        "after on its line (OrderStatusRequest)",
    )
    reconcile_retries: int = Field(
        default=3,
        ge=0,
        description="status requests unanswered at the time-out are sent again, this many "
        "rounds (a request sent just after a logon can be lost in the venue's resend)",
    )
    orders_across_lines: bool = Field(
        default=False,
        description="the venue knows an order sent on one line when asked on the other (the "
        "lines are one member's): an order it does not know after a switch never arrived",
    )


class GatewayVenue(Strict):
    id: str = Field(min_length=1, max_length=16)
    lines: list[LineConfig] = Field(min_length=1, max_length=2)
    instruments: list[InstrumentSpec] = Field(min_length=1)
    market_data_depth: int = Field(default=5, ge=1, le=50)
    schedule: ScheduleConfig | None = Field(
        default=None,
        description="when the lines are logged on; always, when left out (README: Session "
        "schedules)",
    )
    failover: FailoverConfig = Field(
        default_factory=FailoverConfig,
        description="switching lines and coming back (README: Failover)",
    )

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


class AdminConfig(Strict):
    """The admin API: operators' commands to a running gateway (``cmc sessions``, ``cmc
    kill``...), over HTTP on this machine only, with a bearer token from the environment."""

    host: str = Field(default="127.0.0.1", description="a loopback address only")
    port: int = Field(default=0, ge=0, le=65535, description="0: any free port")
    token_env: str = Field(
        default="CMC_ADMIN_TOKEN",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="the environment variable that holds the token (never the token)",
    )

    @field_validator("host")
    @classmethod
    def _loopback(cls, host: str) -> str:
        if host == "localhost":
            return "127.0.0.1"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"{host!r} is not an IP address; use a loopback address such as 127.0.0.1 or ::1"
            ) from None
        if not address.is_loopback:
            raise ValueError(
                f"{host} is not a loopback address: the admin API is served to this machine "
                "only; use 127.0.0.1 or ::1"
            )
        return host


class Stage(str, Enum):
    """Where a gateway is on its way to trading for real (README: Delivery stages)."""

    SHADOW = "shadow"  # real market data, orders filled on paper against a mirror of it
    CANARY = "canary"  # real orders, held to the canary caps
    LIVE = "live"


class StageConfig(Strict):
    """The ``[stage]`` table: the stage a gateway starts in, and the canary's caps. An
    operator changes the stage of a running gateway with ``cmc stage set``."""

    current: Stage = Field(default=Stage.LIVE, description="shadow, canary or live")
    canary: CanaryCaps | None = Field(
        default=None,
        description="the canary stage's caps (lots and notional per order, spread trades and "
        "notional per day); the canary stage needs at least one",
    )

    @model_validator(mode="after")
    def _canary_has_caps(self) -> StageConfig:
        if self.current is Stage.CANARY and (self.canary is None or not self.canary.any):
            raise ValueError(
                'current = "canary" needs its caps: set at least one of max_lots_per_order, '
                "max_pairs_per_day, max_order_notional, max_day_notional under [stage.canary]"
            )
        return self


class GatewayConfig(Strict):
    store_dir: Path = Field(
        default=Path("var/gateway/store"), description="quickfix FileStore: sequence numbers"
    )
    receipts_url: str = "sqlite:///var/gateway/receipts.sqlite"
    receipt_spool_dir: Path | None = Field(
        default=None,
        description="where receipts wait while their database is unreachable; "
        "receipt-spool/ beside store_dir when left out",
    )
    receipt_spool_max_bytes: int = Field(
        default=SPOOL_MAX_BYTES,
        ge=1,
        description="the spool's limit: past it the gateway sends no order until receipts "
        "can be kept again",
    )
    fix_log_dir: Path | None = Field(
        default=None,
        description="where quickfix logs every FIX message sent and received, reconciled "
        "with the receipts; fixlog/ beside store_dir when left out",
    )
    heartbeat_s: int = Field(default=30, ge=1)
    reconnect_s: int = Field(default=5, ge=1)
    venues: list[GatewayVenue] = Field(min_length=1)
    pairs: list[PairConfig] = Field(default_factory=list)
    admin: AdminConfig | None = Field(
        default=None, description="the admin API; off unless the [admin] table is present"
    )
    risk: RiskConfig = Field(
        default_factory=RiskConfig,
        description="pre-trade limits, trading states and the kill switch (README: Risk limits)",
    )
    client_acceptor: ClientAcceptorConfig | None = Field(
        default=None,
        description="institutional clients and drop-copy consumers (README: Clients and drop "
        "copies); none when left out",
    )
    stage: StageConfig = Field(
        default_factory=StageConfig,
        description="shadow, canary or live, and the canary's caps (README: Delivery stages)",
    )

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
        for currency in sorted({i.currency for v in self.venues for i in v.instruments}):
            self.risk.fx_rate(currency)  # risk values every contract in its base currency
        return self

    def receipt_spool_path(self) -> Path:
        return self.receipt_spool_dir or self.store_dir.parent / "receipt-spool"

    def fix_log_path(self) -> Path:
        return self.fix_log_dir or self.store_dir.parent / "fixlog"

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
