"""``cmc acceptance``: the product guide's figures, measured from a run's receipts.

First the figures on hand-made receipts, where every value is known exactly; then a real
run: two venues with market makers, the demo's gateway trading the gold spread as the
outer market is pushed away and back, one leg rejected on purpose (a top-up), the inner
venue's primary line cut (a failover, and the automatic failback), the run reconciled
with the FIX log as the next start would; then ``cmc acceptance`` as a subprocess on its
SQLite store, as JSON and as HTML, checked against what the OMS itself reported.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from oms.audit.acceptance import MS, PROMISES, Figure, Measurer, measure, percentile
from oms.audit.reconcile import FixLogSpec
from oms.events import LineRole
from oms.receipt_writer import ReceiptWriter
from oms.receipts import Receipt, ReceiptStore
from sessions.demo import GW_PRIMARY, gateway_config
from sessions.gateway import Gateway, session_map
from sessions.gateway_config import FailoverConfig
from sessions.simulator.venue import Venue
from tests.conftest import GATEWAY_CLIENTS, GOLD_INNER, GOLD_OUTER, wait_until

CMC = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "cmc")
ENV = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
T0 = 1_750_000_000_000_000_000


def cmc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CMC, "acceptance", *args], capture_output=True, text=True, timeout=120, env=ENV
    )


def by_id(figures: list[Figure]) -> dict[str, Figure]:
    return {f.promise.id: f for f in figures}


def numbered(receipts: list[Receipt]) -> list[tuple[int, Receipt]]:
    return list(enumerate(receipts, 1))


# -- the figures, exactly -------------------------------------------------------------------


def test_percentile_is_the_nearest_rank() -> None:
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50,
        99,
        100,
    )
    assert percentile([7, 8, 9, 10, 11], 50) == 9
    assert percentile([5], 99) == 5


def test_nothing_measured_is_not_exercised_never_met() -> None:
    figures = measure([])
    assert [f.promise.id for f in figures] == [p.id for p in PROMISES]
    assert {f.verdict for f in figures} == {"not exercised"}
    assert all(f.count == 0 for f in figures)


def md(ts_ns: int, age_ns: int, venue: str = "INNER", cause_ns: int | None = None) -> Receipt:
    """Market data applied at ``ts_ns``, stamped by the venue ``age_ns`` earlier."""
    return Receipt.of(
        "event.market_data",
        ts_ns=ts_ns,
        cause_ns=ts_ns - 1_000 if cause_ns is None else cause_ns,
        venue=venue,
        line="primary",
        data={"entries": 2, "snapshot": 0, "sending_ns": ts_ns - age_ns},
    )


def test_market_data_latency_is_venue_stamp_to_book_judged_on_the_p99() -> None:
    receipts = [md(T0 + i * MS, i * MS) for i in range(1, 101)]
    f = by_id(measure(numbered(receipts)))["market_data_sync"]
    assert (f.count, f.p50_ns, f.p99_ns, f.max_ns) == (100, 50 * MS, 99 * MS, 100 * MS)
    assert f.verdict == "not met"  # 99 ms against 30

    fast = [
        md(T0 + i * MS, (i % 30 + 1) * MS, venue="OUTER" if i % 2 else "INNER") for i in range(100)
    ]
    f = by_id(measure(numbered(fast)))["market_data_sync"]
    assert f.p99_ns == 30 * MS and f.verdict == "met"  # at the bound is within it
    assert "INNER: 50 message(s)" in f.detail and "OUTER: 50 message(s)" in f.detail


def done(pair_id: str, outcome: str, ts_ns: int, *, imbalance: str = "0", **data: Any) -> Receipt:
    return Receipt.of(
        "decision.pair_done",
        ts_ns=ts_ns,
        pair_id=pair_id,
        verdict=outcome,
        data={"pair": "GOLD", "imbalance_inner_lots": imbalance, **data},
    )


def intent(pair_id: str, ts_ns: int, cause_ns: int | None = None, inner_qty: int = 28) -> Receipt:
    return Receipt.of(
        "decision.spread_intent",
        ts_ns=ts_ns,
        cause_ns=cause_ns,
        pair_id=pair_id,
        verdict="entry",
        data={"pair": "GOLD", "inner_qty": inner_qty, "outer_qty": 9},
    )


def trades(outcomes: list[str]) -> list[Receipt]:
    out = []
    for i, outcome in enumerate(outcomes):
        out += [
            intent(f"GOLD-{i}", T0 + i * 10 * MS),
            done(f"GOLD-{i}", outcome, T0 + i * 10 * MS + 1),
        ]
    return out


def test_execution_success_counts_filled_and_topped_up_of_the_trades_that_ended() -> None:
    outcomes = ["filled"] * 90 + ["topped_up"] * 7 + ["unwound", "missed", "partial"]
    f = by_id(measure(numbered(trades(outcomes))))["execution_success"]
    assert (f.numerator, f.denominator, f.verdict) == (97, 100, "met")  # exactly 97 %
    assert f.value == 97.0
    assert f.breakdown == {"filled": 90, "missed": 1, "partial": 1, "topped_up": 7, "unwound": 1}

    receipts = [*trades(["filled"] * 96 + ["unwound"] * 4), intent("GOLD-X", T0 + 10**10)]
    f = by_id(measure(numbered(receipts)))["execution_success"]
    assert (f.numerator, f.denominator, f.verdict) == (96, 100, "not met")
    assert "1 trade(s) had not ended" in f.detail  # the last one is left out


def test_top_up_time_is_report_to_repair_order_and_leaves_first_legs_out() -> None:
    def order(purpose: str, latency_ms: int, n: int) -> Receipt:
        ts = T0 + n * 100 * MS
        return Receipt.of(
            "command.send_order",
            ts_ns=ts,
            cause_ns=ts - latency_ms * MS,
            venue="OUTER",
            clordid=f"C{n}",
            pair_id="GOLD-1",
            verdict="sent",
            data={"purpose": purpose, "side": "SELL", "qty": 9},
        )

    cancel = Receipt.of(
        "command.cancel_order",
        ts_ns=T0 + 10**10,
        cause_ns=T0 + 10**10 - 3 * MS,
        clordid="C99",
        pair_id="GOLD-1",
        verdict="sent",
    )
    timer_cancel = Receipt.of(  # a leg time-out's cancel: no report caused it
        "command.cancel_order", ts_ns=T0 + 2 * 10**10, clordid="C98", pair_id="GOLD-1"
    )
    receipts = [
        order("leg", 900, 1),
        order("top_up", 12, 2),
        order("unwind", 60, 3),
        cancel,
        timer_cancel,
    ]
    f = by_id(measure(numbered(receipts)))["top_up_cancel"]
    assert list(f.samples) == [3 * MS, 12 * MS, 60 * MS]
    assert (f.p50_ns, f.p99_ns, f.verdict) == (12 * MS, 60 * MS, "not met")


def test_exposure_is_what_each_trade_left_unhedged_against_what_it_asked() -> None:
    top_up = Receipt.of(
        "decision.top_up",
        ts_ns=T0 + 5,
        pair_id="GOLD-1",
        verdict="top_up",
        data={"imbalance_inner_lots": "-28", "net_inner": 28, "net_outer": 0},
    )
    receipts = [
        intent("GOLD-1", T0),
        top_up,
        done("GOLD-1", "topped_up", T0 + 9, peak_imbalance_inner_lots="28"),
        intent("GOLD-2", T0 + 20, inner_qty=28),
        done("GOLD-2", "partial", T0 + 29, imbalance="1.4"),
    ]
    f = by_id(measure(numbered(receipts)))["risk_exposure"]
    assert f.worst == Fraction(5, 100) and f.verdict == "met"  # 1.4 of 28 lots is 5 %
    assert list(f.shares) == [Fraction(0), Fraction(5, 100)]
    assert list(f.held_shares) == [Fraction(1), Fraction(0)]  # the top-up held one whole leg
    assert "worst 100 %" in f.detail

    receipts[-1] = done("GOLD-2", "partial", T0 + 29, imbalance="1.42")
    f = by_id(measure(numbered(receipts)))["risk_exposure"]
    assert f.verdict == "not met" and f.worst == Fraction(Decimal("1.42")) / 28


def test_risk_response_is_event_to_verdict() -> None:
    def verdict(latency_ms: int | None, passed: bool, n: int) -> Receipt:
        ts = T0 + n * MS * 100
        return Receipt.of(
            "decision.risk",
            ts_ns=ts,
            cause_ns=None if latency_ms is None else ts - latency_ms * MS,
            verdict="passed" if passed else "refused",
            data={"check": "passed" if passed else "max_notional"},
        )

    receipts = [verdict(1, True, 1), verdict(2, False, 2), verdict(None, True, 3)]
    receipts.append(Receipt.of("risk.state", ts_ns=T0 + 10**10, verdict="halted"))
    f = by_id(measure(numbered(receipts)))["risk_response"]
    assert list(f.samples) == [1 * MS, 2 * MS] and f.verdict == "met"
    assert "3 verdict(s), 1 refused (max_notional 1); 1 trading-state change(s)" in f.detail


def line_state(
    ts_ns: int, venue: str, line: str, state: str, active: str | None, reason: str | None = None
) -> Receipt:
    return Receipt.of(
        "event.line_state",
        ts_ns=ts_ns,
        cause_ns=ts_ns - 100_000,
        venue=venue,
        line=line,
        verdict=state,
        reason=reason,
        data={"active": active},
    )


def reconcile(ts_ns: int, venue: str, verdict: str, cause_ns: int | None) -> Receipt:
    return Receipt.of(
        "decision.reconcile",
        ts_ns=ts_ns,
        cause_ns=cause_ns,
        venue=venue,
        line="backup",
        verdict=verdict,
        data={"reconciliation": 1},
    )


def test_failover_time_runs_from_the_fault_to_orders_flowing_and_switches_are_counted() -> None:
    lost_at = T0 + 10 * 10**9
    advice_cause = T0 + 20 * 10**9
    receipts = [
        # the gateway starts: the backup logs on first, then the primary (no switch)
        line_state(T0, "INNER", "backup", "logged_on", "backup"),
        line_state(T0 + MS, "INNER", "primary", "logged_on", "primary"),
        # the primary is lost with two orders working: 40 ms of reconciliation follow
        line_state(
            lost_at,
            "INNER",
            "primary",
            "logged_out",
            "backup",
            "primary line lost: failover to the backup line",
        ),
        reconcile(lost_at + MS, "INNER", "start", lost_at - 100_000),
        reconcile(lost_at + 40 * MS, "INNER", "done", None),
        # an operator's failback: a switch, not a fault; nothing to reconcile
        line_state(
            lost_at + 10**9, "INNER", "primary", "logged_on", "primary", "failback by an operator"
        ),
        # the OMS advises a switch (slow acks); the sessions make it 2 ms later; the
        # reconciliation times out
        Receipt.of(
            "decision.failover",
            ts_ns=advice_cause + 100,
            cause_ns=advice_cause,
            venue="INNER",
            line="primary",
            verdict="ack_latency",
        ),
        line_state(
            advice_cause + 2 * MS,
            "INNER",
            "primary",
            "logged_on",
            "backup",
            "failover: 3 acknowledgements slower than 200 ms",
        ),
        reconcile(advice_cause + 3 * MS, "INNER", "start", advice_cause + 2 * MS - 100_000),
        reconcile(advice_cause + 2_003 * MS, "INNER", "timed_out", None),
        # OUTER loses its primary with its backup down: no line to go to; it comes back
        line_state(T0 + 30 * 10**9, "OUTER", "backup", "logged_on", "backup"),
        line_state(T0 + 30 * 10**9 + 1, "OUTER", "primary", "logged_on", "primary"),
        line_state(T0 + 31 * 10**9, "OUTER", "backup", "logged_out", "primary"),
        line_state(T0 + 32 * 10**9, "OUTER", "primary", "logged_out", None),
        line_state(T0 + 33 * 10**9, "OUTER", "primary", "logged_on", "primary"),
        # the gateway stops: every line logs out, which is no loss
        line_state(T0 + 40 * 10**9, "INNER", "primary", "logged_out", None),
        line_state(T0 + 40 * 10**9 + 1, "INNER", "backup", "logged_out", None),
        line_state(T0 + 40 * 10**9 + 2, "OUTER", "primary", "logged_out", None),
    ]
    figures = by_id(measure(numbered(receipts)))
    f = figures["failover_time"]
    # the loss: from the OMS hearing of it (100 µs before its receipt) to the reconciliation's
    # end; the advised one: from the slow ack the advice came from to the time-out
    assert list(f.samples) == [40 * MS + 100_000, 2_003 * MS]
    assert f.verdict == "not met"
    s = figures["switch_success"]
    # three switches (fault, operator, advice) and one loss with nowhere to go; the advised
    # switch's reconciliation timed out
    assert (s.numerator, s.denominator, s.verdict) == (2, 4, "not met")
    assert "1 reconciliation(s) timed out" in s.detail


def test_receipt_coverage_comes_from_the_reconciliations_that_cover_the_range() -> None:
    receipts = numbered([md(T0 + i * MS, MS) for i in range(10)])  # seq 1..10
    assert by_id(measure(receipts))["receipt_coverage"].verdict == "not exercised"
    before = (0, {"after_seq": 0, "matched": 0, "unreceipted": 0, "unlogged": 0})
    assert (
        by_id(measure(receipts, reconciliations=[before]))["receipt_coverage"].verdict
        == "not exercised"
    )  # the one before the range (seq 0) covers nothing of it
    after = (11, {"after_seq": 0, "matched": 10, "unreceipted": 0, "unlogged": 0})
    f = by_id(measure(receipts, reconciliations=[before, after]))["receipt_coverage"]
    assert (f.numerator, f.denominator, f.verdict) == (10, 10, "met")
    assert "reconciled seq 1 to 10 (10 of the range's 10 receipts)" in f.detail
    gap = (11, {"after_seq": 0, "matched": 10, "unreceipted": 1, "unlogged": 0})
    f = by_id(measure(receipts, reconciliations=[gap]))["receipt_coverage"]
    assert (f.numerator, f.denominator, f.verdict) == (10, 11, "not met")


def test_traceability_follows_each_order_to_its_cause_and_its_answer() -> None:
    cause = T0 - 5 * MS

    def send(clordid: str, ts: int, pair_id: str | None, cause_ns: int | None) -> Receipt:
        return Receipt.of(
            "command.send_order",
            ts_ns=ts,
            cause_ns=cause_ns,
            clordid=clordid,
            pair_id=pair_id,
            verdict="sent",
            data={"purpose": "leg"},
        )

    def report(clordid: str, ts: int) -> Receipt:
        return Receipt.of(
            "event.execution",
            ts_ns=ts,
            cause_ns=ts - 1_000,
            clordid=clordid,
            data={"exec_type": "F"},
        )

    receipts = [
        md(T0 - MS, MS, cause_ns=cause),  # the market data that sets the trade off
        intent("GOLD-1", T0, cause_ns=cause),
        send("A", T0 + 1, "GOLD-1", cause),
        send("B", T0 + 2, "GOLD-1", cause),
        report("A", T0 + 5 * MS),
        report("B", T0 + 6 * MS),
        intent("GOLD-2", T0 + 10**9, cause_ns=T0 + 10**9 - 7),  # caused by no receipt
        send("C", T0 + 10**9 + 1, "GOLD-2", T0 + 10**9 - 7),
        report("C", T0 + 10**9 + MS),
        send("D", T0 + 2 * 10**9, None, None),  # nothing caused it, nobody answered
        report("Z", T0 + 3 * 10**9),  # an answer to no order of ours
    ]
    f = by_id(measure(numbered(receipts)))["traceability"]
    # orders A and B and reports A, B, C trace; C and D do not, nor does Z
    assert (f.numerator, f.denominator, f.verdict) == (5, 8, "not met")
    assert "2 order(s) without their cause, 1 without an answer, 1 report(s) for no order" in (
        f.detail
    )


def test_the_audit_time_is_the_callers_and_each_row_reads_as_json() -> None:
    m = Measurer()
    m.add(1, md(T0, 2 * MS))
    figures = by_id(m.figures(report_ns=121 * 10**9))
    assert figures["audit_report_time"].verdict == "not met"
    row = figures["market_data_sync"].as_json()
    assert row["unit"] == "ms" and row["bound"] == 30.0 and row["p99_ns"] == 2 * MS
    assert row["value"] == 2.0 and row["verdict"] == "met" and row["definition"]


# -- a real run ------------------------------------------------------------------------------


def market_maker(seed: int, size: int) -> dict[str, Any]:
    return {
        "enabled": True,
        "seed": seed,
        "interval_ms": 40,
        "levels": 5,
        "size": size,
        "step_ticks": 1,
        "reversion": 0.3,
    }


@pytest.fixture
def run(
    make_venue: Callable[..., Venue], gateways: list[Gateway], tmp_path: Path
) -> dict[str, Any]:
    """A short trading run into SQLite, reconciled with its FIX log; what the OMS said."""
    inner = make_venue(
        id="INNER",
        comp_id="ACC-IN",
        clients=GATEWAY_CLIENTS,
        instruments=[GOLD_INNER],
        liquidity=market_maker(11, 10),
    )
    outer = make_venue(
        id="OUTER",
        comp_id="ACC-OUT",
        clients=GATEWAY_CLIENTS,
        instruments=[GOLD_OUTER],
        liquidity=market_maker(12, 5),
    )
    config = gateway_config([inner, outer], tmp_path)
    config.venues[0].failover = FailoverConfig.model_validate(
        {"failback": "auto", "failback_after_s": 0.5}
    )
    gateway = Gateway(config)
    gateways.append(gateway)
    gateway.start()
    assert gateway.wait_ready(20), "the gateway did not log on to both venues"

    def ended(n: int) -> Callable[[], bool]:
        return lambda: gateway.oms.call(
            lambda o: len(o.pairs["GOLD"].done) >= n and o.pairs["GOLD"].working is None
        )

    prev_close = outer.instruments["GC"].prev_close
    assert prev_close is not None
    outer.script_faults(["reject"])  # the first outer leg: topped up
    for n, offset in enumerate(("5.0", "0", "-5.0", "0"), 1):
        outer.set_anchor("GC", prev_close + Decimal(offset))
        assert wait_until(ended(n), 15), f"spread trade {n} did not happen"
        if n == 2:  # flat: cut the inner primary; it fails over, comes back, fails back
            assert inner.drop_session(GW_PRIMARY) is not None
            assert wait_until(
                lambda: gateway.sessions.active_lines()["INNER"] is LineRole.BACKUP, 10
            )
            assert wait_until(
                lambda: gateway.sessions.active_lines()["INNER"] is LineRole.PRIMARY, 15
            ), "no automatic failback"
    for venue in (inner, outer):
        venue.set_quoting(False)
    outcomes = gateway.oms.call(
        lambda o: [str(t.outcome.value) for t in o.pairs["GOLD"].done if t.outcome]
    )
    gateway.stop()  # flushes the receipt writer
    # what the gateway's next start does first: the FIX log against the receipts
    spec = FixLogSpec(config.fix_log_path(), session_map(config))
    ReceiptWriter(config.receipts_url, spool_dir=tmp_path / "spool", fix_log=spec).start().close()
    return {"url": config.receipts_url, "outcomes": outcomes, "dir": tmp_path}


def consistent(row: dict[str, Any]) -> bool:
    """The row's verdict is what its own figures say."""
    if row["count"] == 0:
        return bool(row["verdict"] == "not exercised")
    if row["unit"] == "ms":
        met = row["p99_ns"] <= row["bound"] * MS
    elif row["id"] == "risk_exposure":
        met = row["value"] <= row["bound"]
    else:
        met = Fraction(row["numerator"], row["denominator"]) * 100 >= Fraction(str(row["bound"]))
    return bool(row["verdict"] == ("met" if met else "not met"))


@pytest.mark.fix
def test_the_report_of_a_real_run(run: dict[str, Any]) -> None:
    out = run["dir"] / "acceptance.json"
    done = cmc("--receipts", run["url"], "--format", "json", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    rows = {r["id"]: r for r in report["rows"]}
    assert list(rows) == [p.id for p in PROMISES]
    assert all(consistent(r) for r in rows.values()), [
        r for r in rows.values() if not consistent(r)
    ]
    assert report["summary"]["met"] + report["summary"]["not_met"] + report["summary"][
        "not_exercised"
    ] == len(PROMISES)

    with ReceiptStore(run["url"]) as store:
        receipts = store.all()
    kinds = [r.kind for r in receipts]

    # the success rate is the OMS's own: its trades' outcomes
    outcomes = run["outcomes"]
    success = rows["execution_success"]
    assert success["denominator"] == len(outcomes) == 4
    assert success["numerator"] == sum(o in ("filled", "topped_up") for o in outcomes)
    assert "topped_up" in outcomes  # the rejected leg
    assert success["value"] == pytest.approx(100 * success["numerator"] / len(outcomes))

    top_ups = [
        r
        for r in receipts
        if r.kind == "command.send_order" and r.data.get("purpose") in ("top_up", "unwind")
    ]
    assert rows["top_up_cancel"]["count"] == len(top_ups) >= 1
    assert rows["top_up_cancel"]["max_ns"] == max(r.latency_ns or 0 for r in top_ups)

    applied = [r for r in receipts if r.kind == "event.market_data"]
    assert rows["market_data_sync"]["count"] == len(applied) > 0
    risk = [r for r in receipts if r.kind == "decision.risk" and r.latency_ns is not None]
    assert rows["risk_response"]["count"] == len(risk) > 0

    assert rows["failover_time"]["count"] == 1  # the primary cut
    switch = rows["switch_success"]  # the failover and the failback
    assert (switch["numerator"], switch["denominator"], switch["verdict"]) == (2, 2, "met")

    coverage = rows["receipt_coverage"]  # the reconciliation after the run
    assert "fix.unrecorded" not in kinds
    assert coverage["verdict"] == "met" and coverage["numerator"] == coverage["denominator"] > 0
    trace = rows["traceability"]
    sent = sum(1 for r in receipts if r.kind == "command.send_order" and r.verdict == "sent")
    reports = kinds.count("event.execution")
    assert trace["denominator"] == sent + reports
    assert trace["verdict"] == "met", trace["detail"]
    assert rows["audit_report_time"]["verdict"] == "met"
    assert rows["risk_exposure"]["count"] == 4

    page = run["dir"] / "acceptance.html"
    done = cmc("--receipts", run["url"], "--format", "html", "--out", str(page))
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    for p in PROMISES:
        assert f'<tr id="{p.id}">' in text and p.title in text
    drawn = (
        sum(
            1
            for r in rows.values()
            if r["unit"] == "ms" and r["count"] and r["id"] != "audit_report_time"
        )
        + 2
    )  # the outcomes and the exposure
    assert text.count('src="data:image/svg+xml;base64,') == drawn
    # The stage the run was in, so that paper is never read as real: the demo runs live.
    assert report["stage"]["line"].startswith("stage: ") and report["stage"]["paper_receipts"] == 0
    assert f"<p>{report['stage']['line']}</p>" in text
    assert report["stage"]["line"] in done.stdout


def test_an_empty_range_and_a_bad_store_are_clear_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    with ReceiptStore(url) as store:
        store.append_batch([md(T0, MS)])
    empty = cmc("--receipts", url, "--from", "2020-01-01", "--to", "2020-01-02")
    assert empty.returncode == 1
    assert "no receipt from 2020-01-01T00:00:00" in empty.stderr
    assert "it holds receipts from 2025-06-15T15:06:40" in empty.stderr

    bad = cmc("--receipts", "not a url")
    assert bad.returncode == 2 and "is not a database URL" in bad.stderr
    missing = cmc("--receipts", f"sqlite:///{tmp_path / 'none' / 'x.sqlite'}")
    assert missing.returncode == 2, missing.stderr

    backwards = cmc("--receipts", url, "--from", "2025-06-16", "--to", "2025-06-15")
    assert backwards.returncode == 2 and "--from must be before --to" in backwards.stderr

    # a report of a range with no trading is still a report: exit 0, verdicts inside
    ok = cmc("--receipts", url, "--format", "json")
    assert ok.returncode == 0, ok.stderr
    rows = {r["id"]: r for r in json.loads(ok.stdout)["rows"]}
    assert rows["market_data_sync"]["verdict"] == "met"
    assert rows["execution_success"]["verdict"] == "not exercised"
