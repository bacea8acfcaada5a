"""The wording of refusals that more than one check shares.

Why here: a refusal is read by an operator in a receipt, often under pressure, so the same
control must say the same thing whichever path refused; these builders run only when an
order is refused, never on the passing path.
"""

from __future__ import annotations

from typing import Final

from oms.risk import verdicts as v
from oms.risk.books import ContractBook
from oms.risk.states import NO_NOTICES, Figures, Notice, Scope, TradingState
from oms.risk.verdicts import Verdict

_NO_FIGURES: Final[Figures] = {}


def no(
    check: str,
    reason: str,
    figures: Figures = _NO_FIGURES,
    notices: tuple[Notice, ...] = NO_NOTICES,
    reducing: bool = False,
) -> Verdict:
    """A refusal by ``check``."""
    return Verdict(False, check, reason, figures, notices, reducing)


def state_refusal(
    state: TradingState, scopes: list[tuple[Scope, TradingState]], what: str
) -> Verdict:
    """Refused by a trading state: names every scope that is in it."""
    where = ", ".join(str(scope) for scope, s in scopes if s is state)
    if state is TradingState.HALTED:
        return no(
            v.HALTED,
            f"trading is HALTED ({where}): only cancels pass",
            {"scope": where, "state": state.label},
        )
    return no(
        v.REDUCING_ONLY,
        f"trading is REDUCING ({where}): only orders that bring a position toward zero "
        f"pass, and {what} does not",
        {"scope": where, "state": state.label},
    )


def too_many(scope: str, open_now: int, more: int, cap: int) -> Verdict:
    return no(
        v.MAX_OPEN_ORDERS,
        f"{scope} has {open_now} orders working; {more} more would pass the limit of {cap}",
        {"scope": scope, "open": open_now, "adding": more, "limit": cap},
    )


def position_refusal(
    check: str,
    scope: str,
    c: ContractBook,
    buy: bool,
    add: int,
    after: int,
    limit: int,
    position: int,
    working_buy: int,
    working_sell: int,
) -> Verdict:
    """A net or gross position limit, with the position and working orders it counted."""
    what = "net" if check == v.MAX_NET_POSITION else "gross"
    side = "buying" if buy else "selling"
    return no(
        check,
        f"{side} {add} would take the worst {what} position in "
        f"{c.venue.name}:{c.instrument.symbol} ({scope}) to {after} contracts (position "
        f"{position}, working buys {working_buy}, sells {working_sell}), above the limit "
        f"of {limit}",
        {
            "scope": scope,
            "position": position,
            "working_buy": working_buy,
            "working_sell": working_sell,
            "qty": add,
            f"{what}_after": after,
            "limit": limit,
        },
    )
