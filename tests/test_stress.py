"""``cmc stress``: client orders through a running gateway at rising rates.

The step's figures first, on made-up times; then the real thing: two simulated venues, the
gateway in this process with its admin API and a client acceptor whose risk lets 30 orders a
second through per venue session, and ``cmc stress`` as a subprocess stepping from 20 to 60
orders a second. The first step passes; the second breaks on rejects, and the venue's own
count of orders says how many got through.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from oms.enums import Side
from sessions.gateway import Gateway
from sessions.gateway_config import load_gateway_config
from sessions.ports import free_port
from sessions.simulator.client import FixClient
from sessions.simulator.venue import Venue
from sessions.stress import MS, StressPlan, StressResult, Tracker, judge
from tests.test_gateway import rest
from tests.test_ops_cli import CMC, TOKEN, gateway_toml

_numbers = itertools.count(1)
PLAN = StressPlan(
    rates=(50, 100),
    step_s=1.0,
    venue="INNER",
    symbol="AU",
    price=Decimal("560.00"),
    max_p99_ms=5.0,
    max_reject_pct=10.0,
)


def test_a_step_is_judged_on_its_p99_and_its_share_of_rejects() -> None:
    sent = {f"C{i}": 1_000 + i * MS for i in range(100)}
    # 90 answered in i ms (plus nothing), 8 rejected in 1 ms, 2 never answered
    answers: dict[str, tuple[int, bool, str | None]] = {
        f"C{i}": (sent[f"C{i}"] + (i + 1) * MS // 20, False, None) for i in range(90)
    }
    for i in range(90, 98):
        answers[f"C{i}"] = (sent[f"C{i}"] + MS, True, "refused by risk (orders_per_s): empty")
    step = judge(PLAN, 100, sent, answers, 1_000, sent["C99"])
    assert (step.sent, step.accepted, step.rejected, step.unanswered) == (100, 90, 8, 2)
    assert step.reject_share == 0.10 and step.broke == ()  # at the bound is within it
    assert step.p99_ns == 90 * MS // 20  # nearest rank: the 98th of 98 round trips, sorted
    assert step.reasons == (("refused by risk (orders_per_s)", 8),)
    assert step.send_s == pytest.approx(0.099)

    answers["C0"] = (sent["C0"] + 6 * MS, False, None)  # one slow answer: p99 is the 98th
    answers.pop("C50")  # and one more missing
    step = judge(PLAN, 100, sent, answers, 1_000, sent["C99"])
    assert step.p99_ns == 6 * MS
    assert step.broke == ("p99 round trip 6.0 ms > 5 ms", "rejected or unanswered 11.0 % > 10 %")

    ok = judge(PLAN, 50, {"A": 0}, {"A": (MS, False, None)}, 0, 0)
    result = StressResult(PLAN, (ok, step))
    assert result.saturation is step and result.sustained is ok
    data = result.as_json()
    assert data["saturation"] == {"offered_per_s": 100, "why": list(step.broke)}
    assert data["sustained_per_s"] == 50 and data["steps"][0]["p99_ms"] == 1.0


def test_the_tracker_takes_each_orders_first_answer_only() -> None:
    tracker = Tracker()
    tracker.sending("X1")
    tracker.sending("X2")
    soh = "\x01"
    tracker.answer(f"8=FIX.4.4{soh}35=8{soh}11=X1{soh}150=0{soh}")
    tracker.answer(f"8=FIX.4.4{soh}35=8{soh}11=X1{soh}150=4{soh}")  # its cancel: not counted
    tracker.answer(f"8=FIX.4.4{soh}35=8{soh}11=X2{soh}150=8{soh}58=refused{soh}")
    tracker.answer(f"8=FIX.4.4{soh}35=8{soh}11=OTHER{soh}150=0{soh}")  # not this step's
    _, answers = tracker.snapshot()
    assert {k: v[1:] for k, v in answers.items()} == {"X1": (False, None), "X2": (True, "refused")}


@pytest.mark.fix
def test_cmc_stress_steps_up_until_risk_refuses_and_says_where(
    venues: tuple[Venue, Venue],
    make_client: Callable[..., FixClient],
    gateways: list[Gateway],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inner, outer = venues
    maker_in, maker_out = make_client(inner, "T1"), make_client(outer, "T1")
    # a spread the pair does not trade; 560.00 is inside the inner one, so IOCs fill nothing
    rest(maker_in, "AU", Side.BUY, 5, "559.90")
    rest(maker_in, "AU", Side.SELL, 5, "560.10")
    rest(maker_out, "GC", Side.BUY, 5, "2390.0")
    rest(maker_out, "GC", Side.SELL, 5, "2415.0")
    n = next(_numbers)
    acceptor, client = f"CMC-ST{n}", f"LOAD-{n}"
    config = tmp_path / "gateway.toml"
    config.write_text(
        gateway_toml(tmp_path, list(venues))
        + f"""
[risk.defaults]
orders_per_s = 30
burst = 5

[client_acceptor]
comp_id = "{acceptor}"
port = {free_port()}
clients = [{{ comp_id = "{client}" }}]
"""
    )
    monkeypatch.setenv("CMC_ADMIN_TOKEN", TOKEN)
    gateway = Gateway(load_gateway_config(config))
    gateways.append(gateway)
    gateway.start()
    assert gateway.wait_ready(20), "the gateway did not log on to both venues"
    at_venue = inner.call(lambda v: v.stats["orders"])

    plot = tmp_path / "stress.png"
    env = {**os.environ, "CMC_ADMIN_TOKEN": TOKEN, "COLUMNS": "200"}
    env.pop("CMC_ADMIN_URL", None)
    done = subprocess.run(
        [
            CMC, "stress", "--config", str(config), "--rates", "20,60", "--step-s", "1",
            "--max-p99-ms", "500", "--max-reject-pct", "10", "--json", "--plot", str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    first, second = result["steps"]
    assert (first["offered_per_s"], first["sent"]) == (20, 20)
    assert (first["rejected"], first["unanswered"], first["broke"]) == (0, 0, [])
    assert first["p50_ms"] > 0 and first["p99_ms"] >= first["p50_ms"]
    assert (second["offered_per_s"], second["sent"]) == (60, 60)
    # 30 a second and a burst of 5 get through; the rest is refused by the throttle
    assert 15 <= second["rejected"] <= 35, second
    assert second["unanswered"] == 0
    assert list(second["reject_reasons"]) == ["refused by risk (orders_per_s)"]
    assert second["broke"] and second["broke"][0].startswith("rejected or unanswered")
    assert result["saturation"]["offered_per_s"] == 60 and result["sustained_per_s"] == 20
    assert result["client_acceptor"].endswith(f":{gateway.config.client_acceptor.port}")  # type: ignore[union-attr]

    # every order risk let through reached the venue, and no other
    through = first["sent"] - first["rejected"] + second["sent"] - second["rejected"]
    assert inner.call(lambda v: v.stats["orders"]) - at_venue == through

    table = done.stderr  # with --json, the table goes to stderr
    for column in ("offered/s", "achieved/s", "p50 ms", "p99 ms", "rejected", "bound broken"):
        assert column in table
    assert "saturates at 60 orders/s" in table and "sustains 20 orders/s" in table
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_client_acceptor_or_a_gateway_it_says_so(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""\
store_dir = "{tmp_path / "store"}"
receipts_url = "sqlite:///{tmp_path / "receipts.sqlite"}"

[[venues]]
id = "INNER"
[[venues.lines]]
role = "primary"
port = {free_port()}
sender_comp_id = "GW-PRI"
target_comp_id = "INNER"
[[venues.instruments]]
symbol = "AU"
currency = "USD"
tick = "0.02"
contract_size = "1000"
contract_unit = "g"
prev_close = "560.00"
"""
    )
    env = {**os.environ, "CMC_ADMIN_TOKEN": TOKEN}
    env.pop("CMC_ADMIN_URL", None)

    def stress(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CMC, "stress", "--config", str(config), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    done = stress()
    assert done.returncode == 2 and "has no [client_acceptor]" in done.stderr
    config.write_text(
        config.read_text() + '\n[client_acceptor]\nport = 1\nclients = [{ comp_id = "L" }]\n'
    )
    assert stress("--client", "M").returncode == 2
    assert "--rates" in stress("--rates", "100,50").stderr
    done = stress()
    assert done.returncode == 3 and "no running gateway found" in done.stderr
