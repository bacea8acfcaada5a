"""Delivery stages: shadow (paper orders against a mirror of the real books), canary (real
orders within hard caps) and live, in the running gateway.

The shadow tests trade on real simulated venues' market data over FIX and check the venues'
own records: no order of the gateway ever reached them. The mirror's matching is checked on
a real OMS thread; the canary caps through the real OMS and risk engine; the operator's
stage change through the real `cmc` against a `cmc gateway` subprocess.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oms.audit.acceptance import Measurer
from oms.core import Oms
from oms.enums import OrderType, Side, TimeInForce
from oms.events import (
    LineRole,
    LineState,
    LineStateChanged,
    MarketDataReceived,
    MdAction,
    MdEntry,
    MdEntryType,
    OrdStatus,
)
from oms.orders import Order
from oms.pairs import TradeOutcome
from oms.receipts import Receipt, ReceiptStore
from oms.recovery import canary_counted, recover
from oms.risk import Canary, CanaryCaps, RiskConfig, RiskEngine
from oms.risk.canary import DAY_NS
from sessions.codec import decode
from sessions.dashboard import Dashboard
from sessions.demo import gateway_config
from sessions.gateway import Gateway
from sessions.gateway_config import GatewayConfig, Stage, StageConfig
from sessions.shadow import ShadowVenues
from sessions.simulator.client import FixClient
from sessions.simulator.matching import Phase
from sessions.simulator.venue import Venue
from sessions.stage import StageError
from tests.conftest import launch_gateway, terminate, wait_until
from tests.oms_harness import INSTRUMENTS, Harness, gold, orders
from tests.test_ops_cli import TOKEN, cmc, gateway_toml, quiet_gold_venues, rest

GW = ("GW-PRI", "GW-BAK")


# -- the mirror, on a real OMS thread ------------------------------------------------------------


class PaperDesk:
    """A real OMS whose orders go to the shadow venues, fed market data as the sessions would."""

    def __init__(self) -> None:
        self.shadow = ShadowVenues(INSTRUMENTS)
        self.receipts: list[Receipt] = []
        self.oms = Oms(
            pairs=[gold(entry_spread="100000")],  # the strategy stays out of the way
            send=lambda command: self.shadow.send(command, LineRole.PRIMARY),
            record=self.receipts.append,
            risk=RiskEngine(RiskConfig(fx={"CNY": Decimal("0.1379")}), INSTRUMENTS),
        )
        self.shadow.bind(self.oms.post)
        self.oms.hooks.append(self.shadow.on_event)
        self.shadow.activate()
        self.oms.start()
        for venue in ("INNER", "OUTER"):
            self.oms.post(
                LineStateChanged(venue, LineRole.PRIMARY, LineState.LOGGED_ON, LineRole.PRIMARY, 1)
            )

    def levels(
        self,
        asks: list[tuple[str, int]],
        bids: list[tuple[str, int]] | None = None,
        *,
        snapshot: bool,
    ) -> None:
        """The INNER venue's AU book: a snapshot, or an update stating these levels anew."""
        entries = tuple(
            MdEntry(MdAction.NEW, kind, "AU", Decimal(px), qty)
            for kind, levels in ((MdEntryType.OFFER, asks), (MdEntryType.BID, bids or []))
            for px, qty in levels
        )
        self.oms.post(
            MarketDataReceived(
                "INNER",
                LineRole.PRIMARY,
                "md",
                snapshot,
                entries,
                None,
                self.oms.now(),
                snapshot_symbol="AU" if snapshot else None,
            )
        )

    def buy(self, qty: int, price: str, tif: TimeInForce = TimeInForce.IOC) -> str:
        def send(oms: Oms) -> str:
            order, why = oms.send_single(
                "INNER",
                "AU",
                Side.BUY,
                qty,
                OrderType.LIMIT,
                Decimal(price),
                tif,
                account=None,
                cause_ns=None,
            )
            assert order is not None and why is None, why
            return order.key

        key: str = self.oms.call(send)
        return key

    def order(self, key: str) -> Order:
        found = self.oms.call(lambda oms: oms.orders.by_key(key))
        assert found is not None
        return found

    def settled(self, key: str, status: OrdStatus) -> Order:
        assert wait_until(lambda: self.order(key).status is status, 5), self.order(key)
        return self.order(key)

    def fills(self, key: str) -> list[tuple[int, Decimal]]:
        return [(f.qty, f.price) for f in self.order(key).fills]


@pytest.fixture
def desk() -> Iterator[PaperDesk]:
    made = PaperDesk()
    yield made
    made.oms.stop()


def test_two_orders_cannot_take_the_same_displayed_lots_until_the_venue_states_them_again(
    desk: PaperDesk,
) -> None:
    desk.levels([("560.00", 10)], [("559.80", 5)], snapshot=True)
    first = desk.settled(desk.buy(8, "560.00"), OrdStatus.FILLED)
    assert desk.fills(first.key) == [(8, Decimal("560.00"))]
    second = desk.settled(desk.buy(8, "560.00"), OrdStatus.CANCELED)  # 2 left of the 10
    assert desk.fills(second.key) == [(2, Decimal("560.00"))]
    assert (second.cum_qty, second.leaves_qty) == (2, 0)
    desk.levels([("560.00", 10)], snapshot=False)  # the venue states the level afresh
    third = desk.settled(desk.buy(8, "560.00"), OrdStatus.FILLED)
    assert desk.fills(third.key) == [(8, Decimal("560.00"))]
    # Every report came as a venue's would, under a paper OrderID, and none twice.
    reports = [r for r in desk.receipts if r.kind == "event.execution"]
    assert all(r.venue_order_id and r.venue_order_id.startswith("SHADOW-") for r in reports)
    assert len({r.exec_id for r in reports}) == len(reports)


def test_an_order_walks_the_levels_to_its_limit_and_an_ioc_remainder_is_cancelled(
    desk: PaperDesk,
) -> None:
    desk.levels([("560.00", 10), ("560.02", 3), ("560.06", 5)], [("559.80", 5)], snapshot=True)
    order = desk.settled(desk.buy(15, "560.04"), OrdStatus.CANCELED)
    assert desk.fills(order.key) == [(10, Decimal("560.00")), (3, Decimal("560.02"))]
    assert order.cum_qty == 13
    vwap = (Decimal("560.00") * 10 + Decimal("560.02") * 3) / 13
    assert order.avg_px == vwap.quantize(Decimal("0.00000001"))


def test_a_day_order_rests_and_fills_at_its_price_when_the_real_book_reaches_it(
    desk: PaperDesk,
) -> None:
    desk.levels([("560.00", 10)], [("559.80", 5)], snapshot=True)
    key = desk.buy(5, "559.90", TimeInForce.DAY)
    resting = desk.settled(key, OrdStatus.NEW)
    assert resting.leaves_qty == 5 and not resting.fills
    desk.levels([("559.90", 3)], snapshot=False)  # a seller comes down to our bid: 3 of 5
    part = desk.settled(key, OrdStatus.PARTIALLY_FILLED)
    assert desk.fills(key) == [(3, Decimal("559.90"))]
    assert part.leaves_qty == 2
    desk.levels([("559.88", 10)], snapshot=False)  # through our price: we fill at ours
    desk.settled(key, OrdStatus.FILLED)
    assert desk.fills(key) == [(3, Decimal("559.90")), (2, Decimal("559.90"))]


def test_a_resting_paper_order_is_cancelled_on_request(
    desk: PaperDesk,
) -> None:
    desk.levels([("560.00", 10)], [("559.80", 5)], snapshot=True)
    key = desk.buy(4, "559.50", TimeInForce.DAY)
    order = desk.settled(key, OrdStatus.NEW)
    assert desk.oms.call(lambda oms: oms.cancel(order, cause_ns=None, why="test"))
    cancelled = desk.settled(key, OrdStatus.CANCELED)
    assert cancelled.leaves_qty == 0
    assert desk.shadow.working() == 0


# -- the shadow stage in the gateway, against real venues -----------------------------------------


def makers(venues: tuple[Venue, Venue], make_client: Callable[..., FixClient]) -> None:
    """Each venue's other side (T1): buying AU at 560.00 (2402.475 USD/oz at 7.25) and
    selling GC at 2406.0 is 3.5 USD/oz past the 2.0 entry."""
    inner, outer = venues
    maker_in, maker_out = make_client(inner, "T1"), make_client(outer, "T1")
    rest(maker_in, "AU", Side.SELL, 50, "560.00")
    rest(maker_in, "AU", Side.BUY, 30, "559.80")
    rest(maker_out, "GC", Side.BUY, 20, "2406.0")
    rest(maker_out, "GC", Side.SELL, 20, "2410.0")


def staged(config: GatewayConfig, **stage: Any) -> GatewayConfig:
    data = config.model_dump(mode="json")
    data["stage"] = stage
    return GatewayConfig.model_validate(data)


@pytest.mark.fix
def test_in_shadow_the_strategy_trades_on_real_data_and_no_venue_receives_an_order(
    venues: tuple[Venue, Venue],
    make_client: Callable[..., FixClient],
    tmp_path: Path,
    gateways: list[Gateway],
) -> None:
    inner, outer = venues
    makers(venues, make_client)
    gateway = Gateway(staged(gateway_config(list(venues), tmp_path), current="shadow"))
    gateways.append(gateway)
    gateway.start()
    assert gateway.wait_ready(20), "the gateway did not log on to both venues"

    def done() -> bool:
        return gateway.oms.call(lambda oms: bool(oms.pairs["GOLD"].done))

    assert wait_until(done, 15), "no spread trade on paper"
    trade, pair, legs = gateway.oms.call(
        lambda oms: (
            oms.pairs["GOLD"].done[0],
            oms.pairs["GOLD"],
            [oms.orders.by_key(k) for k in oms.pairs["GOLD"].done[0].orders],
        )
    )
    assert trade.outcome is TradeOutcome.FILLED
    # The pair's position moved: 28 AU bought, 9 GC sold, one unit long the inner leg.
    assert (pair.net_inner, pair.net_outer, pair.units) == (28, -9, 1)
    fills = {o.venue: {(f.qty, f.price) for f in o.fills} for o in legs if o is not None}
    # At the prices the real books showed: the makers' resting orders.
    assert fills == {"INNER": {(28, Decimal("560.00"))}, "OUTER": {(9, Decimal("2406.0"))}}
    positions = gateway.oms.call(
        lambda oms: [oms.risk.exposure("INNER", "AU"), oms.risk.exposure("OUTER", "GC")]
    )
    assert positions == [(28, 0, 0), (-9, 0, 0)]  # (position, working buys, working sells)

    # The venues' own records: no order of either gateway line, and the makers' untouched.
    for venue in (inner, outer):
        for client in GW:
            assert venue.filled_by_clordid(client) == {}
        assert venue.call(lambda v: v.stats["orders"]) == 2  # the maker's two
        assert venue.call(lambda v: [k for k in v._by_clordid if not k[0].endswith("->T1")]) == []
    assert inner.book("AU")["asks"][0][:2] == (Decimal("560.00"), 50)
    assert outer.book("GC")["bids"][0][:2] == (Decimal("2406.0"), 20)

    # The operator's page says so in its header's badge.
    assert Dashboard(gateway, lambda handler: handler).take(1)["stage"] == "shadow"

    # Shadow ends flat: a paper position never becomes a real one.
    def leave(oms: Oms) -> object:
        try:
            return gateway.stage.change(oms, Stage.LIVE, "test", "end of the trial")
        except StageError as exc:
            return exc

    refused = gateway.oms.call(leave)
    assert isinstance(refused, StageError), refused
    assert "pair GOLD holds +28 INNER AU / -9 OUTER GC lots" in str(refused)
    assert gateway.stage.current is Stage.SHADOW

    gateway.stop()  # flushes the receipt writer
    with ReceiptStore(gateway.config.receipts_url) as store:
        kinds = [r.kind for r in store.all()]
    assert "stage.start" in kinds
    assert kinds.count("shadow.command.send_order") == 2
    assert "shadow.event.execution" in kinds and "shadow.decision.pair_done" in kinds
    assert not any(k in kinds for k in ("command.send_order", "event.execution"))
    # What a restart would recover from this store: no paper order, no paper position.
    restored = recover(gateway.config.receipts_url, gateway.config.pair_specs(), decode)
    assert restored.empty and not list(restored.orders.all())
    assert all((p.net_inner, p.net_outer) == (0, 0) for p in restored.pairs.values())


# -- canary caps, through the real OMS ------------------------------------------------------------


def canary_harness(**caps: Any) -> Harness:
    h = Harness()
    h.oms.risk.canary = Canary(CanaryCaps(**caps), "USD")
    return h


def refusals(h: Harness, check: str) -> list[Receipt]:
    return [r for r in h.receipts if r.kind == "decision.risk" and r.data.get("check") == check]


def test_canary_refuses_an_order_over_its_lot_cap_and_says_so_with_the_figures() -> None:
    h = canary_harness(max_lots_per_order=10)

    def send(qty: int) -> tuple[Order | None, str | None]:
        return h.oms.send_single(
            "INNER",
            "AU",
            Side.BUY,
            qty,
            OrderType.LIMIT,
            Decimal("560.00"),
            TimeInForce.DAY,
            account=None,
            cause_ns=None,
        )

    order, why = send(11)
    assert order is not None and order.status is OrdStatus.REJECTED
    assert why is not None and "canary_max_lots_per_order" in why
    [refused] = refusals(h, "canary_max_lots_per_order")
    assert refused.verdict == "refused"
    assert (refused.data["qty"], refused.data["limit"]) == (11, 10)
    assert refused.data["cap"] == "max_lots_per_order"
    assert not orders(h)  # nothing went out
    order, why = send(10)
    assert why is None and [o.qty for o in orders(h)] == [10]


def test_canary_refuses_a_spread_trade_past_its_count_for_the_day() -> None:
    h = canary_harness(max_pairs_per_day=1, max_lots_per_order=28)

    def books() -> None:  # 3.5 USD/oz past the 2.0 entry, as stated by fresh snapshots
        h.book("INNER", "AU", [("559.80", 30)], [("560.00", 50)])
        h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])

    books()
    legs = orders(h)
    assert sorted((o.venue, o.qty) for o in legs) == [("INNER", 28), ("OUTER", 9)]
    for leg in legs:
        h.fill_in_full(leg, "560.00" if leg.venue == "INNER" else "2406.0")
    assert h.oms.pairs["GOLD"].units == 1 and h.oms.pairs["GOLD"].working is None

    h.oms.pairs["GOLD"].held_until_ns = 0
    books()
    assert len(orders(h)) == 2  # no second trade
    [refused] = refusals(h, "canary_max_pairs_per_day")[:1]
    assert (refused.data["pairs_today"], refused.data["limit"]) == (1, 1)
    assert refused.pair_id is not None and "canary" in (refused.reason or "")

    h.oms.risk.canary = None  # live: the same books trade again
    h.oms.pairs["GOLD"].held_until_ns = 0
    books()
    assert len(orders(h)) == 4


def test_a_restarted_canary_takes_up_its_day_from_the_receipt_store(tmp_path: Path) -> None:
    caps = {"max_pairs_per_day": 1, "max_lots_per_order": 28, "max_day_notional": "10000000"}
    h = canary_harness(**caps)

    def books(h: Harness) -> None:  # 3.5 USD/oz past the 2.0 entry
        h.book("INNER", "AU", [("559.80", 30)], [("560.00", 50)])
        h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])

    books(h)
    legs = orders(h)
    for leg in legs:
        h.fill_in_full(leg, "560.00" if leg.venue == "INNER" else "2406.0")
    live = h.oms.risk.canary
    assert live is not None and live.pairs == 1 and live.notional > 0

    url = f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    with ReceiptStore(url) as store:
        store.append_batch(h.receipts)
    now = next(h.clock)
    resumed = Canary(CanaryCaps(**caps), "USD")
    resumed.resume(canary_counted(url, resumed.day_start_ns(now)), now)
    assert (resumed.pairs, resumed.notional) == (1, live.notional)

    # The restarted OMS, with the canary it took up, opens no second pair today.
    again = Harness()
    again.oms.risk.canary = resumed
    books(again)
    assert orders(again) == []
    [refused] = refusals(again, "canary_max_pairs_per_day")[:1]
    assert (refused.data["pairs_today"], refused.data["limit"]) == (1, 1)

    # Yesterday's figures are not today's.
    tomorrow = now + DAY_NS
    fresh = Canary(CanaryCaps(**caps), "USD")
    fresh.resume(canary_counted(url, fresh.day_start_ns(tomorrow)), tomorrow)
    assert (fresh.pairs, fresh.notional) == (0, 0)


def test_canary_in_the_configuration_needs_a_cap() -> None:
    with pytest.raises(ValueError, match=r"\[stage.canary\]"):
        StageConfig.model_validate({"current": "canary"})
    assert StageConfig.model_validate(
        {"current": "canary", "canary": {"max_pairs_per_day": 2}}
    ).canary == CanaryCaps(max_pairs_per_day=2)


# -- the acceptance report's stage line ------------------------------------------------------------


def test_the_acceptance_report_states_the_stages_and_leaves_paper_out() -> None:
    m = Measurer()
    trail = [
        Receipt.of("stage.start", ts_ns=1, verdict="live", data={"to": "live"}),
        Receipt.of("operator.stage", ts_ns=2, verdict="shadow", data={"to": "shadow"}),
        Receipt.of("shadow.decision.pair_done", ts_ns=3, pair_id="GOLD-1", verdict="filled"),
    ]
    for seq, receipt in enumerate(trail, 1):
        m.add(seq, receipt)
    assert m.stages == ["live", "shadow"]
    line = m.stage_line()
    assert line.startswith("stage: live -> shadow") and "1 paper spread trade(s)" in line
    execution = next(f for f in m.figures() if f.promise.id == "execution_success")
    assert execution.verdict == "not exercised"  # the paper trade is not measured


# -- the operator's stage change, through the real CLI ---------------------------------------------


def wait_for_gateway(proc: subprocess.Popen[str], state: list[str], log: Path) -> None:
    """Until every line of the gateway is logged on (its admin API answering)."""

    def up() -> bool:
        answer = cmc("sessions", "list", "--json", *state)
        if answer.returncode:
            return False
        return all(line["logged_on"] for line in json.loads(answer.stdout)["lines"])

    assert wait_until(lambda: proc.poll() is not None or up(), 40, 0.3), log.read_text()
    assert proc.poll() is None, log.read_text()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`cmc gateway` as a subprocess (canary caps configured, day-limit legs) against two
    venues in this process, with far-apart books from their makers."""
    proc: subprocess.Popen[str] | None = None
    log_file = tmp_path / "gateway.log"
    with quiet_gold_venues(["T1", *GW], ("STG-IN", "STG-OUT")) as (inner, outer, makers):
        try:
            config = tmp_path / "gateway.toml"
            config.write_text(
                gateway_toml(tmp_path, [inner, outer])
                + '\n[stage]\ncurrent = "live"\n[stage.canary]\nmax_lots_per_order = 28\n'
            )
            proc = launch_gateway(config, log_file, TOKEN)
            state = ["--state-dir", str(tmp_path)]
            wait_for_gateway(proc, state, log_file)
            yield {
                "inner": inner,
                "outer": outer,
                "makers": makers,
                "state": state,
                "proc": proc,
                "log": log_file,
                "work": tmp_path,
            }
        finally:
            terminate(proc)


@pytest.mark.fix
def test_cmc_stage_set_is_refused_while_orders_work_and_leaves_a_receipt(
    running: dict[str, Any],
) -> None:
    state = running["state"]
    log: Path = running["log"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cmc(*args, *state)

    def ok(*args: str) -> subprocess.CompletedProcess[str]:
        done = run(*args)
        assert done.returncode == 0, (done.stdout, done.stderr, log.read_text()[-3000:])
        return done

    def as_json(*args: str) -> Any:
        return json.loads(ok(*args, "--json").stdout)

    assert as_json("stage")["stage"] == "live"
    assert as_json("sessions", "list")["stage"] == "live"

    # In a call auction the legs of a spread trade rest: two orders work.
    inner, outer, makers = running["inner"], running["outer"], running["makers"]
    for venue in (inner, outer):
        venue.set_phase(Phase.OPENING_AUCTION)
    ask = rest(makers["INNER"], "AU", Side.SELL, 30, "560.00")
    bid = rest(makers["OUTER"], "GC", Side.BUY, 10, "2406.0")
    assert wait_until(lambda: len(as_json("orders", "--working")["orders"]) == 2, 15, 0.3)

    refused = run("stage", "set", "shadow", "--why", "paper trial", "--who", "ops", "--yes")
    assert refused.returncode == 1, refused.stdout
    assert "2 order(s) working" in refused.stderr
    assert "cmc orders --working" in refused.stderr and "cmc kill" in refused.stderr
    assert as_json("stage")["stage"] == "live"

    ok("kill", "--reason", "clear the way for shadow", "--yes")
    assert wait_until(lambda: as_json("orders", "--working")["orders"] == [], 10, 0.3)
    for venue, clordid, symbol, side in (
        ("INNER", ask, "AU", Side.SELL),
        ("OUTER", bid, "GC", Side.BUY),
    ):
        makers[venue].wait_report(makers[venue].cancel(clordid, symbol, side), "4")
    for venue in (inner, outer):
        venue.set_phase(Phase.CONTINUOUS)
    ok("resume", "--reason", "stage change done")

    changed = ok("stage", "set", "shadow", "--why", "paper trial", "--who", "ops", "--yes")
    assert "live -> shadow" in changed.stdout
    assert as_json("sessions", "list")["stage"] == "shadow"
    assert as_json("risk", "status")["stage"] == "shadow"
    assert as_json("orders")["stage"] == "shadow"
    assert "stage: SHADOW" in ok("risk", "status").stdout
    assert "stage: SHADOW" in ok("positions").stdout
    shown = ok("stage").stdout
    assert "SHADOW" in shown and "ops" in shown and "paper trial" in shown

    ok("stage", "set", "canary", "--why", "first real orders", "--yes")
    canary = as_json("stage")
    assert canary["stage"] == "canary" and canary["canary"]["max_lots_per_order"] == 28
    assert "stage: CANARY" in ok("sessions", "list").stdout
    ok("stage", "set", "live", "--why", "accepted", "--yes")
    unchanged = ok("stage", "set", "live", "--why", "again", "--yes")
    assert "nothing changed" in unchanged.stdout

    proc: subprocess.Popen[str] = running["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    work: Path = running["work"]
    with ReceiptStore(f"sqlite:///{work / 'receipts.sqlite'}") as store:
        changes = [r for r in store.all() if r.kind == "operator.stage"]
    assert [(r.data["from"], r.data["to"]) for r in changes] == [
        ("live", "shadow"),
        ("shadow", "canary"),
        ("canary", "live"),
    ]
    first = changes[0]
    assert (first.data["who"], first.reason, first.verdict) == ("ops", "paper trial", "shadow")


@pytest.mark.fix
def test_an_operators_pull_back_outlives_a_restart_until_an_operator_moves_on(
    running: dict[str, Any],
) -> None:
    state, log, work = running["state"], running["log"], running["work"]

    def ok(*args: str) -> subprocess.CompletedProcess[str]:
        done = cmc(*args, *state)
        assert done.returncode == 0, (done.stdout, done.stderr, log.read_text()[-3000:])
        return done

    def stage() -> dict[str, Any]:
        return dict(json.loads(ok("stage", "--json").stdout))

    def restart(proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
        again = launch_gateway(work / "gateway.toml", log, TOKEN)
        wait_for_gateway(again, state, log)
        return again

    assert stage()["stage"] == "live"  # as configured
    ok("stage", "set", "shadow", "--why", "venue incident", "--who", "ops", "--yes")
    proc = restart(running["proc"])
    try:
        kept = stage()
        assert (kept["stage"], kept["who"]) == ("shadow", "ops")
        assert "kept from before the restart (venue incident)" in kept["why"]
        assert "cmc stage set live" in kept["why"]
        assert "starting in shadow, not the configured live" in log.read_text()

        ok("stage", "set", "canary", "--why", "incident over", "--who", "ops", "--yes")
        proc = restart(proc)
        assert stage()["stage"] == "canary"  # still more cautious than the configured live
        ok("stage", "set", "live", "--why", "accepted", "--who", "ops", "--yes")
        proc = restart(proc)
        again = stage()
        assert (again["stage"], again["who"]) == ("live", "configuration")
    finally:
        terminate(proc)
    with ReceiptStore(f"sqlite:///{work / 'receipts.sqlite'}") as store:
        starts = [r for r in store.all() if r.kind == "stage.start"]
    assert [(r.verdict, r.data["who"]) for r in starts] == [
        ("live", "configuration"),
        ("shadow", "ops"),
        ("canary", "ops"),
        ("live", "configuration"),
    ]
