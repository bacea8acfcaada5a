"""Pre-trade risk: limits, trading states and the kill switch, checked on the OMS thread.

``RiskEngine`` is what the OMS calls; ``RiskConfig`` is the ``[risk]`` table of a gateway
file. See :mod:`oms.risk.engine` for which call goes where.
"""

from oms.risk.canary import Canary, CanaryCaps
from oms.risk.engine import RiskEngine
from oms.risk.limits import (
    AccountLimits,
    AckLatency,
    InstrumentLimits,
    RejectBreaker,
    RepeatedExecution,
    RiskConfig,
    StrategyLimits,
    VenueLimits,
)
from oms.risk.states import (
    GLOBAL,
    Alert,
    KillOrder,
    Notice,
    Scope,
    ScopeKind,
    StateChange,
    TradingState,
)
from oms.risk.verdicts import (
    IntentFacts,
    LegFacts,
    OrderContext,
    OrderLike,
    Origin,
    Verdict,
)

__all__ = [
    "GLOBAL",
    "AccountLimits",
    "AckLatency",
    "Alert",
    "Canary",
    "CanaryCaps",
    "InstrumentLimits",
    "IntentFacts",
    "KillOrder",
    "LegFacts",
    "Notice",
    "OrderContext",
    "OrderLike",
    "Origin",
    "RejectBreaker",
    "RepeatedExecution",
    "RiskConfig",
    "RiskEngine",
    "Scope",
    "ScopeKind",
    "StateChange",
    "StrategyLimits",
    "TradingState",
    "VenueLimits",
    "Verdict",
]
