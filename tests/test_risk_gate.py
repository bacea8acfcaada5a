"""Risk inside the OMS: every order the pair engine sends is checked first, and what comes
back from the venues moves risk's exposure. The OMS is driven with typed events (no FIX), so
each step's receipts can be read in the order they were made."""

from __future__ import annotations

from decimal import Decimal

from oms.events import OrdStatus
from oms.pairs import TradeOutcome
from oms.risk import RiskConfig
from tests.oms_harness import Harness, orders

FX = {"CNY": Decimal("0.1379")}


def books(h: Harness) -> None:
    """Books that put the converted spread 3.5 USD/oz past the 2.0 entry: buy AU, sell GC."""
    h.book("INNER", "AU", [("559.90", 50)], [("560.00", 50)])
    h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])


def test_an_intent_over_a_limit_is_refused_whole_with_the_figures_and_the_pair_waits() -> None:
    risk = RiskConfig.model_validate({"fx": FX, "instruments": {"INNER": {"AU": {"max_qty": 20}}}})
    h = Harness(risk=risk)
    books(h)
    assert orders(h) == []  # neither leg went out
    kinds = [r.kind for r in h.receipts]
    at = kinds.index("decision.spread_intent")
    verdict = h.receipts[at + 1]
    assert verdict.kind == "decision.risk" and verdict.verdict == "refused"
    assert verdict.pair_id == h.receipts[at].pair_id
    assert verdict.data == {
        "check": "max_qty",
        "leg": "inner",
        "qty": 28,
        "limit": 20,
        "scope": "instrument",
    }
    assert verdict.reason == (
        "max_qty: inner leg (INNER:AU): quantity 28 is above the maximum of 20 per order"
    )
    # The trigger is still past its threshold, but the pair does not ask again at once.
    h.book("INNER", "AU", [("559.90", 50)], [("560.00", 49)], full=False)
    assert [r.kind for r in h.receipts].count("decision.risk") == 1
    assert h.oms.pairs["GOLD"].working is None


def test_what_is_sent_and_what_fills_is_what_risk_counts() -> None:
    h = Harness()
    books(h)
    inner, outer = orders(h)
    risk = h.oms.risk
    # sent, not yet answered: both legs count as working
    assert risk.exposure("INNER", "AU") == (0, 28, 0)
    assert risk.exposure("OUTER", "GC") == (0, 0, 9)
    verdicts = [r for r in h.receipts if r.kind == "decision.risk"]
    assert [v.verdict for v in verdicts] == ["passed"] * 3
    assert [v.clordid for v in verdicts[1:]] == [inner.clordid, outer.clordid]
    assert verdicts[1].data["net_after"] == 28  # the figures the pass left
    h.fill_in_full(inner, "560.00")
    h.fill_in_full(outer, "2406.0")
    assert risk.exposure("INNER", "AU") == (28, 0, 0)
    assert risk.exposure("OUTER", "GC") == (-9, 0, 0)
    assert risk.ledger.open_orders == 0


def test_a_venue_halted_by_its_reject_breaker_stops_the_top_ups_and_the_pair_unwinds() -> None:
    risk = RiskConfig.model_validate(
        {
            "fx": FX,
            "venues": {
                "INNER": {"reject_breaker": {"count": 1, "window_s": 10, "action": "halted"}}
            },
        }
    )
    h = Harness(risk=risk)
    books(h)
    inner, outer = orders(h)
    h.fill_in_full(outer, "2406.0")
    h.reject(inner)  # one reject trips the breaker: INNER is halted

    changes = [r for r in h.receipts if r.kind == "risk.state"]
    assert [
        (c.data["scope"], c.data["previous"], c.data["state"], c.data["rule"]) for c in changes
    ] == [("venue:INNER", "active", "halted", "reject_rate")]
    # Every top-up round of the inner leg was refused before reaching the venue ...
    refused = [r for r in h.receipts if r.kind == "decision.risk" and r.verdict == "refused"]
    policy = h.oms.pairs["GOLD"].spec.config.execution
    assert len(refused) == policy.max_top_ups
    assert {r.data["check"] for r in refused} == {"halted"}
    for receipt in refused:
        order = h.oms.orders.by_clordid(receipt.clordid or "")
        assert order is not None and order.status is OrdStatus.REJECTED
    # ... so the outer leg was unwound: the only other order the venues saw.
    sent = orders(h)
    assert [(o.venue, o.side.name, o.qty) for o in sent] == [
        ("INNER", "BUY", 28),
        ("OUTER", "SELL", 9),
        ("OUTER", "BUY", 9),
    ]
    h.fill_in_full(sent[2], "2410.0")
    pair = h.oms.pairs["GOLD"]
    assert pair.working is None and pair.done[-1].outcome is TradeOutcome.UNWOUND
    assert pair.imbalance == 0
    assert h.oms.risk.exposure("OUTER", "GC") == (0, 0, 0)
