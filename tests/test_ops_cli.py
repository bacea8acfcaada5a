"""Operating a running gateway: the real `cmc gateway` as a subprocess, driven by the real
`cmc sessions / orders / positions / risk / kill / resume` commands through its admin API,
against two simulated venues in this process, whose own records say what happened.

One gateway serves the whole module (a module-scoped fixture); the tests run in file order
and each leaves both venues with both lines logged on and the primary active. The last one
stops the gateway with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import quickfix as fix

from oms.enums import Side
from oms.receipts import ReceiptStore
from sessions.fixengine import owned_session_id
from sessions.gateway_config import AdminConfig
from sessions.simulator.client import FixClient
from sessions.simulator.matching import Phase
from sessions.simulator.venue import Venue
from tests.conftest import GOLD_INNER, launch_gateway, terminate, venue_config, wait_until

pytestmark = pytest.mark.fix

CMC = str(Path(sys.executable).parent / "cmc")
TOKEN = "test-token-" + os.urandom(12).hex()
GOLD_OUTER: dict[str, Any] = {
    "symbol": "GC",
    "currency": "USD",
    "tick": "0.1",
    "contract_size": "100",
    "contract_unit": "troy_oz",
    "prev_close": "2402.5",
}
PRI, BAK = "GW-PRI", "GW-BAK"


def _value(value: Any) -> str:
    return str(value) if isinstance(value, int) else json.dumps(str(value))


def _table(values: dict[str, Any]) -> str:
    return "".join(f"{k} = {_value(v)}\n" for k, v in values.items())


def gateway_toml(work: Path, venues: list[Venue]) -> str:
    """The gateway's file as an operator would write it: both venues with a primary and a
    backup line, the gold pair with day-limit legs (so that they can rest), the admin API."""
    text = f"""\
store_dir = "{work / "store"}"
receipts_url = "sqlite:///{work / "receipts.sqlite"}"
heartbeat_s = 1
reconnect_s = 1

[admin]
host = "127.0.0.1"
port = 0
token_env = "CMC_ADMIN_TOKEN"

[risk]
base_currency = "USD"
fx = {{ CNY = "0.1379" }}
"""
    for venue in venues:
        text += f'\n[[venues]]\nid = "{venue.id}"\n'
        for role, sender in (("primary", PRI), ("backup", BAK)):
            text += (
                f'[[venues.lines]]\nrole = "{role}"\nport = {venue.config.port}\n'
                f'sender_comp_id = "{sender}"\ntarget_comp_id = "{venue.config.comp_id}"\n'
            )
        spec = GOLD_INNER if venue.id == "INNER" else GOLD_OUTER
        text += "[[venues.instruments]]\n" + _table(spec)
    text += """
[[pairs]]
id = "GOLD"
inner = { venue = "INNER", symbol = "AU" }
outer = { venue = "OUTER", symbol = "GC" }
fx_rate = "7.25"
entry_spread = "2.0"
exit_spread = "0.8"
max_position = 1
pay_up_ticks = 3
execution = { leg_order = "limit", leg_timeout_ms = 600000 }
"""
    return text


def cmc(
    *args: str, token: str | None = TOKEN, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("CMC_ADMIN_TOKEN", None)
    env.pop("CMC_ADMIN_URL", None)
    if token is not None:
        env["CMC_ADMIN_TOKEN"] = token
    return subprocess.run(
        [CMC, *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=env
    )


@dataclass
class Ops:
    inner: Venue
    outer: Venue
    makers: dict[str, FixClient]
    work: Path
    proc: subprocess.Popen[str]
    log: Path

    @property
    def state(self) -> list[str]:
        return ["--state-dir", str(self.work)]

    def run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return cmc(*args, *self.state, **kw)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.run(*args)
        assert result.returncode == 0, self.explain(result)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def lines(self, venue: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        args = ("sessions", "status") + ((venue,) if venue else ())
        return {(x["venue"], x["role"]): x for x in self.json(*args)["lines"]}

    def explain(self, result: subprocess.CompletedProcess[str]) -> str:
        return (
            f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
            f"gateway log (tail):\n{self.log.read_text()[-3000:]}"
        )

    def venue(self, name: str) -> Venue:
        return self.inner if name == "INNER" else self.outer


def logged_on_at_venue(venue: Venue, client: str) -> bool:
    key = f"{venue.config.comp_id}->{client}"
    return venue.call(lambda v: key in v.logged_on)


def venue_expects(venue: Venue, client: str) -> int:
    """The next MsgSeqNum the venue expects from ``client``: its own FileStore's word."""
    session = fix.Session.lookupSession(owned_session_id(venue.config.comp_id, client))
    return int(session.getExpectedTargetNum())


def all_up(ops: Ops) -> bool:
    lines = ops.lines()
    return all(x["logged_on"] for x in lines.values()) and all(
        lines[(v, "primary")]["active"] for v in ("INNER", "OUTER")
    )


@contextmanager
def quiet_gold_venues(
    clients: list[str], comp_ids: tuple[str, str] = ("INNER", "OUTER")
) -> Iterator[tuple[Venue, Venue, dict[str, FixClient]]]:
    """The two gold venues, each with a maker (CompID T1) resting books far apart (no spread
    to trade, so a gateway is ready at once); stopped and retired on the way out."""
    inner = Venue(
        venue_config(id="INNER", comp_id=comp_ids[0], clients=clients, instruments=[GOLD_INNER])
    )
    outer = Venue(
        venue_config(id="OUTER", comp_id=comp_ids[1], clients=clients, instruments=[GOLD_OUTER])
    )
    makers: dict[str, FixClient] = {}
    try:
        for venue in (inner, outer):
            venue.start()
            makers[venue.id] = FixClient(
                port=venue.config.port, sender="T1", target=venue.config.comp_id
            ).start()
        rest(makers["INNER"], "AU", Side.BUY, 5, "550.00")
        rest(makers["INNER"], "AU", Side.SELL, 5, "570.00")
        rest(makers["OUTER"], "GC", Side.BUY, 5, "2390.0")
        rest(makers["OUTER"], "GC", Side.SELL, 5, "2415.0")
        yield inner, outer, makers
    finally:
        for client in makers.values():
            client.stop()
        for venue in (inner, outer):
            venue.retire()


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    work = tmp_path_factory.mktemp("ops")
    proc: subprocess.Popen[str] | None = None
    log_file = work / "gateway.log"
    with quiet_gold_venues(["T1", PRI, BAK]) as (inner, outer, makers):
        try:
            config = work / "gateway.toml"
            config.write_text(gateway_toml(work, [inner, outer]))
            proc = launch_gateway(config, log_file, TOKEN)
            admin = work / "admin.json"
            assert wait_until(lambda: admin.exists() or proc.poll() is not None, 30), (
                f"no admin.json; gateway log:\n{log_file.read_text()}"
            )
            assert proc.poll() is None, f"the gateway exited:\n{log_file.read_text()}"
            state = Ops(inner, outer, makers, work, proc, log_file)
            assert wait_until(lambda: all_up(state), 30, poll_s=0.3), (
                f"the gateway's lines did not all log on:\n{log_file.read_text()}"
            )
            yield state
        finally:
            terminate(proc)


def rest(client: FixClient, symbol: str, side: Side, qty: int, price: str) -> str:
    clordid = client.new_order(symbol, side, qty, Decimal(price))
    client.wait_report(clordid, "0")
    return clordid


# -- reading the gateway ------------------------------------------------------------------


def test_sessions_list_and_status_show_every_line(ops: Ops) -> None:
    table = ops.ok("sessions", "list").stdout
    for venue in ("INNER", "OUTER"):
        assert venue in table
    assert f"{PRI} -> {ops.inner.config.comp_id}" in table

    lines = ops.lines()
    assert set(lines) == {(v, r) for v in ("INNER", "OUTER") for r in ("primary", "backup")}
    for (venue, role), line in lines.items():
        assert line["logged_on"] and line["enabled"]
        assert line["active"] is (role == "primary")
        assert line["sender_comp_id"] == (PRI if role == "primary" else BAK)
        assert line["target_comp_id"] == ops.venue(venue).config.comp_id
        assert line["address"] == f"127.0.0.1:{ops.venue(venue).config.port}"
        assert line["next_sender_seq"] > 1 and line["next_target_seq"] > 1
        assert line["heartbeat_s"] == 1
    only_inner = ops.lines("INNER")
    assert {v for v, _ in only_inner} == {"INNER"}
    status = ops.ok("sessions", "status", "OUTER").stdout
    assert "next out" in status and "OUTER" in status and "INNER" not in status


def test_orders_positions_and_risk_status_read_the_oms(ops: Ops) -> None:
    assert ops.json("orders")["orders"] == []  # nothing traded: the books are far apart
    assert "no orders today" in ops.ok("orders").stdout
    positions = ops.json("positions")
    assert positions["pairs"] == [
        {
            "pair": "GOLD",
            "units": 0,
            "position": 0,
            "imbalance": "0",
            "inner": {"venue": "INNER", "symbol": "AU", "lots": 0},
            "outer": {"venue": "OUTER", "symbol": "GC", "lots": 0},
            "trade_working": False,
        }
    ]
    assert {(c["venue"], c["symbol"]) for c in positions["contracts"]} == {
        ("INNER", "AU"),
        ("OUTER", "GC"),
    }
    assert all(
        (c["position"], c["working_buys"], c["working_sells"]) == (0, 0, 0)
        for c in positions["contracts"]
    )
    assert Decimal(positions["pnl"]) == 0 and positions["currency"] == "USD"
    text = ops.ok("positions").stdout
    assert "GOLD" in text and "today's P&L: 0 USD" in text
    states = ops.json("risk", "status")["states"]
    assert states["global"] == "active"
    assert "global" in ops.ok("risk", "status").stdout


# -- refusals ---------------------------------------------------------------------------------


def test_a_wrong_or_missing_token_is_refused_and_the_variable_named(ops: Ops) -> None:
    wrong = ops.run("sessions", "list", token="not-the-token-at-all")
    assert wrong.returncode == 4, ops.explain(wrong)
    assert "refused the token in CMC_ADMIN_TOKEN: set CMC_ADMIN_TOKEN" in wrong.stderr
    missing = ops.run("orders", token=None)
    assert missing.returncode == 4, ops.explain(missing)
    assert "CMC_ADMIN_TOKEN is not set" in missing.stderr
    # Nothing was done for either: the lines are as they were.
    assert all_up(ops)


def test_the_api_answers_401_in_json_without_a_token(ops: Ops) -> None:
    import urllib.error
    import urllib.request

    url = json.loads((ops.work / "admin.json").read_text())["url"]
    assert url.startswith("http://127.0.0.1:")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{url}/v1/kill", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(request, timeout=10)
    assert caught.value.code == 401
    body = json.loads(caught.value.read())
    assert "CMC_ADMIN_TOKEN" in body["error"] and body["token_env"] == "CMC_ADMIN_TOKEN"
    assert ops.json("risk", "status")["states"]["global"] == "active"


def test_no_gateway_running_says_how_to_start_one(tmp_path: Path) -> None:
    result = cmc("sessions", "list", "--state-dir", str(tmp_path))
    assert result.returncode == 3
    assert "no running gateway found" in result.stderr
    assert "cmc gateway --config" in result.stderr
    # An admin.json left behind by a gateway that is gone: nothing listens there.
    (tmp_path / "admin.json").write_text(json.dumps({"url": "http://127.0.0.1:9"}))
    gone = cmc("orders", "--state-dir", str(tmp_path))
    assert gone.returncode == 3 and "no gateway answers at http://127.0.0.1:9" in gone.stderr


def test_refused_actions_say_what_to_do(ops: Ops) -> None:
    unknown = ops.run("sessions", "failover", "NOPE", "--yes")
    assert unknown.returncode == 1
    assert "no venue 'NOPE'" in unknown.stderr and "INNER, OUTER" in unknown.stderr
    no_numbers = ops.run("sessions", "set-seq", "INNER", "--role", "primary", "--yes")
    assert no_numbers.returncode == 2 and "--next-sender" in no_numbers.stderr
    kill_without_reason = ops.run("kill", "--yes")
    assert kill_without_reason.returncode == 2 and "--reason" in kill_without_reason.stderr
    declined = ops.run("sessions", "logout", "INNER", "--role", "primary", stdin="n\n")
    assert declined.returncode == 5, ops.explain(declined)
    assert "not confirmed" in declined.stderr
    unasked = ops.run("kill", "--reason", "no terminal to ask at")  # stdin is empty
    assert unasked.returncode == 5, ops.explain(unasked)
    time.sleep(1.5)  # a logout would have gone out on the engine's next tick
    assert logged_on_at_venue(ops.inner, PRI)
    assert ops.json("risk", "status")["states"]["global"] == "active"
    help_text = cmc("sessions", "logout", "--help").stdout
    assert "Exit codes:" in help_text and "not authorised" in help_text


# -- changing the lines ---------------------------------------------------------------------


def md_requests(venue: Venue) -> set[str]:
    """The MDReqIDs the venue has subscriptions under: its own record."""
    return venue.call(lambda v: {md_req_id for _, md_req_id in v.md._subs})


def test_a_snapshot_asked_by_an_operator_resubscribes_and_the_book_comes_back(ops: Ops) -> None:
    before = md_requests(ops.inner)
    out = ops.run("sessions", "snapshot", "INNER", "--symbol", "AU", "--reason", "test")
    assert out.returncode == 0, ops.explain(out)
    assert "INNER: snapshot of AU asked on the primary line" in out.stdout
    # The venue holds a new subscription (answered with a snapshot), the old one cancelled.
    assert wait_until(lambda: md_requests(ops.inner) - before != set(), 10)
    assert wait_until(lambda: not (md_requests(ops.inner) & before), 10)
    unknown = ops.run("sessions", "snapshot", "INNER", "--symbol", "CU", "--reason", "test")
    assert unknown.returncode != 0 and "its instruments are AU" in unknown.stderr


def test_a_logged_out_line_stays_out_until_logon(ops: Ops) -> None:
    out = ops.run("sessions", "logout", "INNER", "--role", "primary", "--reason", "test", "--yes")
    assert out.returncode == 0, ops.explain(out)
    assert wait_until(lambda: not logged_on_at_venue(ops.inner, PRI), 10), (
        "the venue still sees the primary line"
    )
    assert wait_until(lambda: ops.lines("INNER")[("INNER", "backup")]["active"], 10, 0.3)
    # reconnect_s is 1: two seconds out is two connection attempts the initiator skipped.
    time.sleep(2.5)
    assert not logged_on_at_venue(ops.inner, PRI)
    lines = ops.lines("INNER")
    assert not lines[("INNER", "primary")]["logged_on"]
    assert not lines[("INNER", "primary")]["enabled"]
    assert lines[("INNER", "backup")]["logged_on"]
    assert logged_on_at_venue(ops.inner, BAK) and logged_on_at_venue(ops.outer, PRI)

    back = ops.run("sessions", "logon", "INNER", "--role", "primary")
    assert back.returncode == 0, ops.explain(back)
    assert wait_until(lambda: logged_on_at_venue(ops.inner, PRI), 10)
    assert wait_until(lambda: all_up(ops), 10, 0.3)  # and the primary is active again


def test_failover_sends_orders_on_the_backup_and_kill_cancels_them(ops: Ops) -> None:
    refused = ops.run("sessions", "failback", "INNER", "--yes")  # already on the primary
    assert refused.returncode == 0, ops.explain(refused)
    for venue in ("INNER", "OUTER"):
        answer = ops.json("sessions", "failover", venue, "--reason", "test", "--yes")
        assert answer["active"] == "backup"
    lines = ops.lines()
    assert all(lines[(v, "backup")]["active"] for v in ("INNER", "OUTER"))
    assert all(lines[(v, "primary")]["logged_on"] for v in ("INNER", "OUTER"))

    # In a call auction nothing trades, so the legs of a spread trade rest as working
    # orders. The inner ask 560.00 (2402.475 USD/oz at 7.25) is 3.525 below the outer bid.
    for venue in (ops.inner, ops.outer):
        venue.set_phase(Phase.OPENING_AUCTION)
    ask = rest(ops.makers["INNER"], "AU", Side.SELL, 30, "560.00")
    bid = rest(ops.makers["OUTER"], "GC", Side.BUY, 10, "2406.0")
    assert wait_until(lambda: len(ops.json("orders", "--working")["orders"]) == 2, 15, 0.3), (
        ops.log.read_text()[-3000:]
    )
    working = ops.json("orders", "--working")["orders"]
    assert {(o["venue"], o["side"], o["qty"]) for o in working} == {
        ("INNER", "BUY", 28),
        ("OUTER", "SELL", 9),
    }
    assert all(o["status"] == "NEW" and o["filled"] == 0 for o in working)
    assert all(o["pair_id"] and isinstance(o["price"], str) for o in working)
    clordids = {o["venue"]: o["clordid"] for o in working}
    # The venues' own books: the orders came in on the backup lines' CompID.
    for venue in (ops.inner, ops.outer):
        on_backup = venue.filled_by_clordid(BAK)
        assert clordids[venue.id] in on_backup
        assert on_backup[clordids[venue.id]][1] > 0  # resting
        assert clordids[venue.id] not in venue.filled_by_clordid(PRI)
    contracts = {c["venue"]: c for c in ops.json("positions")["contracts"]}
    assert contracts["INNER"]["working_buys"] == 28
    assert contracts["OUTER"]["working_sells"] == 9
    assert "CMC" in ops.ok("orders", "--working").stdout

    killed = ops.run("kill", "--reason", "test: pull the switch", "--yes", "--json")
    assert killed.returncode == 0, ops.explain(killed)
    report = json.loads(killed.stdout)
    assert report["scope"] == "global"
    assert report["state_change"] == "active -> halted"
    assert sorted(report["cancels"]) == sorted(o["first_clordid"] for o in working)

    def cancelled_at_venues() -> bool:
        return all(v.filled_by_clordid(BAK)[clordids[v.id]][1] == 0 for v in (ops.inner, ops.outer))

    assert wait_until(cancelled_at_venues, 10), "the venues still hold the gateway's orders"
    assert wait_until(lambda: ops.json("orders", "--working")["orders"] == [], 10, 0.3)
    statuses = {o["status"] for o in ops.json("orders")["orders"]}
    assert statuses == {"CANCELED"}
    assert ops.json("risk", "status")["states"]["global"] == "halted"

    # Take the makers' crossing orders away before trading reopens.
    for venue, clordid, symbol, side in (
        ("INNER", ask, "AU", Side.SELL),
        ("OUTER", bid, "GC", Side.BUY),
    ):
        maker = ops.makers[venue]
        maker.wait_report(maker.cancel(clordid, symbol, side), "4")
    for venue in (ops.inner, ops.outer):
        venue.set_phase(Phase.CONTINUOUS)
    resumed = ops.json("resume", "--reason", "test over")
    assert resumed["changed"] is True and resumed["states"]["global"] == "active"
    again = ops.ok("resume")
    assert "nothing changed" in again.stdout

    for venue in ("INNER", "OUTER"):
        back = ops.ok("sessions", "failback", venue, "--yes")
        assert "active line now primary" in back.stdout
    assert all_up(ops)


def test_failover_is_refused_while_the_backup_is_out(ops: Ops) -> None:
    ops.ok("sessions", "logout", "OUTER", "--role", "backup", "--yes")
    assert wait_until(lambda: not logged_on_at_venue(ops.outer, BAK), 10)
    assert wait_until(lambda: not ops.lines("OUTER")[("OUTER", "backup")]["logged_on"], 10, 0.3)
    refused = ops.run("sessions", "failover", "OUTER", "--yes")
    assert refused.returncode == 1, ops.explain(refused)
    assert "backup line is not logged on" in refused.stderr
    assert "cmc sessions logon OUTER --role backup" in refused.stderr
    ops.ok("sessions", "logon", "OUTER", "--role", "backup")
    assert wait_until(lambda: all_up(ops), 15, 0.3)


def test_a_venue_kill_halts_that_venue_alone_until_it_is_resumed(ops: Ops) -> None:
    unknown = ops.run("kill", "--venue", "NOPE", "--reason", "test", "--yes")
    assert unknown.returncode != 0, ops.explain(unknown)
    assert "NOPE" in unknown.stderr
    assert ops.json("risk", "status")["states"]["global"] == "active"

    killed = ops.json("kill", "--venue", "OUTER", "--reason", "test: one venue", "--yes")
    assert killed["state_change"] == "active -> halted"
    assert killed["cancels"] == []  # nothing was working
    states = ops.json("risk", "status")["states"]
    halted = {scope for scope, state in states.items() if state == "halted"}
    assert len(halted) == 1 and "OUTER" in halted.pop(), states
    assert states["global"] == "active"
    shown = ops.ok("risk", "status").stdout
    assert "OUTER" in shown and "halted" in shown

    resumed = ops.json("resume", "--venue", "OUTER", "--reason", "test over")
    assert resumed["scope"] == "OUTER" and resumed["changed"] is True
    assert set(resumed["states"].values()) == {"active"}


def test_set_seq_then_reset_seq_both_sides(ops: Ops) -> None:
    before = venue_expects(ops.inner, BAK)
    assert before < 400
    answer = ops.json(
        "sessions", "set-seq", "INNER", "--role", "backup", "--next-sender", "500", "--yes"
    )
    assert answer["next_sender"] == 500
    # The next heartbeat leaves as 500: the venue asks for 'the missing', gets a gap fill,
    # and expects 501 on.
    assert wait_until(lambda: venue_expects(ops.inner, BAK) > 500, 10), venue_expects(
        ops.inner, BAK
    )
    assert ops.lines("INNER")[("INNER", "backup")]["next_sender_seq"] > 500
    assert logged_on_at_venue(ops.inner, BAK)

    reset = ops.run("sessions", "reset-seq", "INNER", "--role", "backup", "--yes")
    assert reset.returncode == 0, ops.explain(reset)
    assert wait_until(lambda: venue_expects(ops.inner, BAK) < 20, 15), venue_expects(ops.inner, BAK)
    assert wait_until(lambda: logged_on_at_venue(ops.inner, BAK), 10)
    assert wait_until(lambda: ops.lines("INNER")[("INNER", "backup")]["logged_on"], 10, 0.3)
    line = ops.lines("INNER")[("INNER", "backup")]
    assert line["next_sender_seq"] < 20 and line["next_target_seq"] < 20
    assert all_up(ops)


def test_sigterm_stops_the_gateway_cleanly(ops: Ops) -> None:
    """Last: the module's gateway goes. Its receipts keep who did what and why; the token
    is nowhere in what it wrote."""
    ops.proc.send_signal(signal.SIGTERM)
    assert ops.proc.wait(timeout=30) == 0, ops.log.read_text()[-3000:]
    assert not (ops.work / "admin.json").exists()
    assert wait_until(
        lambda: (
            not any(logged_on_at_venue(v, c) for v in (ops.inner, ops.outer) for c in (PRI, BAK))
        ),
        10,
    )
    log_text = ops.log.read_text()
    assert "admin API at http://127.0.0.1:" in log_text
    assert TOKEN not in log_text
    with ReceiptStore(f"sqlite:///{ops.work / 'receipts.sqlite'}") as store:
        receipts = store.all()
    actions = [r for r in receipts if r.kind == "operator.session"]
    assert {r.verdict for r in actions} >= {
        "logout",
        "logon",
        "failover",
        "failback",
        "set-seq",
        "reset-seq",
        "snapshot",
    }
    assert all(r.data["who"] for r in actions)
    assert any(r.reason == "test" and r.verdict == "failover" for r in actions)
    assert TOKEN.encode() not in (ops.work / "receipts.sqlite").read_bytes()
    gone = ops.run("sessions", "list")
    assert gone.returncode == 3


# -- configuration ----------------------------------------------------------------------------


def test_the_admin_api_listens_on_loopback_only() -> None:
    assert AdminConfig(host="::1").host == "::1"
    assert AdminConfig(host="localhost").host == "127.0.0.1"
    for host in ("0.0.0.0", "192.168.1.10", "example.org"):
        with pytest.raises(ValueError, match="loopback"):
            AdminConfig(host=host)


def test_the_gateway_will_not_start_without_its_token(tmp_path: Path) -> None:
    venues = [
        Venue(venue_config(id="INNER", comp_id="INNER", instruments=[GOLD_INNER])),
        Venue(venue_config(id="OUTER", comp_id="OUTER", instruments=[GOLD_OUTER])),
    ]  # never started: the gateway must stop before it connects anywhere
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(tmp_path, venues))
    env = {k: v for k, v in os.environ.items() if k != "CMC_ADMIN_TOKEN"}
    result = subprocess.run(
        [CMC, "gateway", "--config", str(config), "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CMC_ADMIN_TOKEN is not set" in result.stderr
    assert not (tmp_path / "admin.json").exists()
    short = subprocess.run(
        [CMC, "gateway", "--config", str(config), "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "CMC_ADMIN_TOKEN": "short"},
    )
    assert short.returncode == 2 and "too short" in short.stderr
    assert "short" not in short.stderr.replace("too short", "")
