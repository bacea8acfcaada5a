"""Risk limits as configured: global, per venue, per instrument, per account, per strategy.

Why layers: a desk sets most limits once (the ``defaults``) and tightens or loosens a few
where a venue, a contract, a client or a strategy differs. A limit left out of a narrower
table is inherited from the wider one (instrument from its venue, venue from the defaults);
a limit set nowhere is off. TOML has no null, so a limit cannot be switched off below a
scope that sets it: set it where it applies instead.

Units: quantities are contracts (lots of the instrument); ``max_notional``,
``max_position_notional``, ``max_gross_notional`` and ``daily_loss_limit`` are in
``base_currency``, converted with ``fx``; ``margin_available`` is in each venue's own
currency (its instruments' currency), as the venue calls margin. Prices are the instrument's.

Validated once, at start (pydantic): an unknown key is refused with its name, a wrong value
with what would be valid. Nothing here runs on the hot path: the engine resolves the layers
into plain values when it is built.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Money = Annotated[Decimal, Field(gt=0)]
Positive = Annotated[Decimal, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]
Reference = Literal["mid", "last"]


class _Limits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


L = TypeVar("L", bound=_Limits)


class RejectBreaker(_Limits):
    """``count`` rejects within ``window_s`` seconds move the scope to ``action``."""

    count: Count
    window_s: Positive
    action: Literal["reducing", "halted"] = "halted"


class AckLatency(_Limits):
    """An order acknowledgement slower than ``alert_ms`` is an alert; ``halt_after`` slow
    ones in a row halt the venue (a venue that has become slow fills at stale prices)."""

    alert_ms: Positive
    halt_after: Count = 3


class RepeatedExecution(_Limits):
    """At most ``max`` spread trades a strategy may start within ``window_s`` seconds; one
    more halts the strategy until an operator looks (a strategy trading in a loop)."""

    max: Count
    window_s: Positive


class InstrumentLimits(_Limits):
    """Limits on orders for one contract and on the position in it. None: not set here."""

    enabled: bool | None = Field(default=None, description="false refuses every new order")
    min_qty: Count | None = None
    max_qty: Count | None = None
    max_notional: Money | None = Field(
        default=None, description="per order, base currency: qty x price x contract size x fx"
    )
    reference: Reference | None = Field(
        default=None,
        description="the reference price of the collar and of marks: mid (falls back to the "
        "last trade while a side is empty) or last",
    )
    collar_ticks: Count | None = Field(
        default=None, description="a limit price may sit this many ticks from the reference"
    )
    collar_pct: Annotated[Decimal, Field(gt=0, lt=100)] | None = Field(
        default=None, description="a limit price may sit this many percent from the reference"
    )
    max_net_position: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="contracts long or short if every working order on that side fills",
    )
    max_gross_position: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="worst long plus worst short, counting working orders"
    )
    max_position_notional: Money | None = Field(
        default=None, description="the worst net position at the mark, base currency"
    )
    margin_rate: Annotated[Decimal, Field(gt=0, le=1)] | None = Field(
        default=None, description="initial margin per unit of notional (0.08 = 8 %)"
    )
    stale_after_ms: Count | None = Field(
        default=None, description="market data older than this blocks entries"
    )

    @model_validator(mode="after")
    def _min_below_max(self) -> InstrumentLimits:
        if self.min_qty is not None and self.max_qty is not None and self.min_qty > self.max_qty:
            raise ValueError(
                f"min_qty {self.min_qty} is above max_qty {self.max_qty}; lower min_qty or "
                "raise max_qty"
            )
        return self


class VenueLimits(InstrumentLimits):
    """A venue's own limits, and defaults for its instruments (every instrument key)."""

    orders_per_s: Positive | None = Field(
        default=None, description="new orders per second on the venue's session"
    )
    cancels_per_s: Positive | None = None
    replaces_per_s: Positive | None = None
    burst: Count | None = Field(
        default=None, description="messages a throttle lets through at once (bucket size)"
    )
    max_open_orders: Count | None = None
    margin_available: Money | None = Field(
        default=None, description="initial margin the venue allows, in its currency"
    )
    reject_breaker: RejectBreaker | None = None
    ack_latency: AckLatency | None = None
    clock_offset_ms: Positive | None = Field(
        default=None, description="an alert when the venue's clock is further from ours"
    )


class StrategyLimits(_Limits):
    """Limits on one strategy's spread trades."""

    enabled: bool | None = None
    max_pay_up_ticks: Annotated[int, Field(ge=0)] | None = None
    max_slippage_ticks: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="how far past the touch (best ask for a buy, best bid for a sell) a leg's "
        "worst price, pay-up included, may go",
    )
    max_top_up_retries: Annotated[int, Field(ge=0)] | None = None
    repeated_execution: RepeatedExecution | None = None
    reject_breaker: RejectBreaker | None = None


class AccountLimits(_Limits):
    """Limits on one client's or account's orders and positions (per contract)."""

    enabled: bool | None = None
    max_qty: Count | None = None
    max_notional: Money | None = None
    max_net_position: Annotated[int, Field(ge=0)] | None = None
    max_gross_position: Annotated[int, Field(ge=0)] | None = None
    max_open_orders: Count | None = None


class RiskConfig(_Limits):
    """The whole risk configuration: the ``[risk]`` table of a gateway file."""

    base_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    fx: dict[str, Positive] = Field(
        default_factory=dict,
        description="what one unit of each currency is worth in base_currency",
    )
    daily_loss_limit: Money | None = Field(
        default=None,
        description="realised plus marked-to-market loss, base currency, that moves all "
        "trading to REDUCING",
    )
    max_gross_notional: Money | None = Field(
        default=None, description="every contract's worst exposure at its mark, base currency"
    )
    max_open_orders: Count | None = None
    defaults: VenueLimits = Field(default_factory=VenueLimits)
    venues: dict[str, VenueLimits] = Field(default_factory=dict)
    instruments: dict[str, dict[str, InstrumentLimits]] = Field(
        default_factory=dict, description="by venue, then symbol"
    )
    strategy_defaults: StrategyLimits = Field(default_factory=StrategyLimits)
    strategies: dict[str, StrategyLimits] = Field(default_factory=dict)
    account_defaults: AccountLimits = Field(default_factory=AccountLimits)
    accounts: dict[str, AccountLimits] = Field(default_factory=dict)

    @field_validator("fx")
    @classmethod
    def _currency_codes(cls, fx: dict[str, Decimal]) -> dict[str, Decimal]:
        for code in fx:
            if len(code) != 3 or not code.isalpha() or not code.isupper():
                raise ValueError(f"{code!r} is not a currency code; use three capitals: CNY")
        return fx

    @model_validator(mode="after")
    def _base_is_one(self) -> RiskConfig:
        rate = self.fx.get(self.base_currency)
        if rate is not None and rate != 1:
            raise ValueError(
                f"fx.{self.base_currency} is {rate}, but {self.base_currency} is the base "
                "currency: its rate is 1; remove it or change base_currency"
            )
        return self

    def fx_rate(self, currency: str) -> Decimal:
        """Base-currency units one unit of ``currency`` is worth."""
        if currency == self.base_currency:
            return Decimal(1)
        try:
            return self.fx[currency]
        except KeyError:
            raise ValueError(
                f'risk.fx has no rate for {currency}; add {currency} = "..." (what one '
                f"{currency} is worth in {self.base_currency})"
            ) from None


def merged(model: type[L], *layers: _Limits | None) -> L:
    """The narrowest layer's value of each of ``model``'s fields, wider layers filling in."""
    values: dict[str, object] = {}
    for layer in layers:
        if layer is None:
            continue
        for name in model.model_fields:
            value = getattr(layer, name, None)
            if value is not None:
                values[name] = value
    return model.model_validate(values)
