"""The operator's live page: what a snapshot holds, who may read it, and the page itself in a
real browser.

The snapshot builder is checked against the OMS harness, where every event is stated; the
stream's coalescing on its own; the token and the commands against a real gateway over FIX;
and the page end to end in Debian's headless Chromium driven by Selenium, against the demo's
venues (market makers quoting and moving) and the demo's gateway: books and spread moving,
a spread trade with its legs, and the kill switch halting trading.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oms.clock import now_ns
from oms.core import Oms
from oms.pairs import Direction, SpreadPair
from oms.receipts import Receipt
from sessions.dashboard import RecentReceipts, SnapshotHub, capture, pair_specs, render
from sessions.demo import GW_BACKUP, GW_PRIMARY, gateway_config
from sessions.gateway import Gateway
from sessions.gateway_config import AdminConfig
from sessions.simulator.demo import demo_config
from sessions.simulator.venue import Venue
from tests.conftest import wait_until
from tests.oms_harness import Harness, orders

CMC = str(Path(sys.executable).parent / "cmc")
TOKEN_ENV = "CMC_DASHBOARD_TEST_TOKEN"
TOKEN = "dash-" + os.urandom(16).hex()
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1700",
)


# -- the snapshot, from the OMS harness ------------------------------------------------------


def test_a_snapshot_shows_the_books_the_spread_and_a_trade_being_topped_up() -> None:
    h = Harness()
    h.book("INNER", "AU", [("559.90", 50), ("559.88", 10)], [("560.00", 50), ("560.02", 7)])
    h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])
    inner, outer = orders(h)
    h.fill_in_full(inner, "560.00")
    h.reject(outer)  # the outer leg is refused: the engine tops it up
    recent = RecentReceipts(lambda r: None)
    for receipt in h.receipts:
        recent.record(receipt)

    snap = render(capture(h.oms, recent), [], pair_specs(h.oms), 7)
    assert json.loads(json.dumps(snap)) == snap  # JSON as it is: no Decimal, no float
    assert snap["seq"] == 7
    [pair] = snap["pairs"]
    assert (pair["pair"], pair["lots"], pair["entry"], pair["exit"]) == (
        "GOLD",
        {"inner": 28, "outer": 9},
        "2.0",
        "-1000",
    )
    # The inner book after our 28 lots came off its ask: each level with the lots from the
    # touch down to it, and how many pair units each side can fill.
    book = pair["books"]["inner"]
    assert book["bids"] == [
        {"price": "559.90", "qty": 50, "cum": 50},
        {"price": "559.88", "qty": 10, "cum": 60},
    ]
    assert book["asks"] == [
        {"price": "560.00", "qty": 22, "cum": 22},
        {"price": "560.02", "qty": 7, "cum": 29},
    ]
    assert (book["bids_units"], book["asks_units"]) == (2, 1)
    # The edge the strategy saw, exact to its last digit: 2406.0 - 560.00 / 7.25 * 1000 /
    # 31.1034768 (grams per troy ounce), as the trade that fired captured it.
    assert pair["last"]["buy_inner"] == "3.524550620689655172413793"
    assert pair["last"]["fired"] == "buy_inner_sell_outer"
    assert pair["series"]["buy_inner"][-1] == pair["last"]["buy_inner"]
    assert len(pair["series"]["ts_ns"]) == pair["evaluations"] == 2

    [trade] = pair["trades"]
    assert (trade["id"], trade["status"], trade["top_ups"]) == ("GOLD-1", "working", 1)
    assert trade["legs"]["inner"] | {} == {
        "venue": "INNER",
        "symbol": "AU",
        "side": "BUY",
        "target": 28,
        "filled": 28,
        "lots_per_unit": 28,
        "working": False,
        "state": "filled",
    }
    assert (trade["legs"]["outer"]["filled"], trade["legs"]["outer"]["state"]) == (0, "working")
    assert [(o["purpose"], o["leg"], o["status"]) for o in trade["orders"]] == [
        ("leg", "inner", "FILLED"),
        ("leg", "outer", "REJECTED"),
        ("top-up", "outer", "PENDING_NEW"),
    ]
    assert trade["fills"] == [{"leg": "inner", "qty": 28, "price": "560.00", "ns": 1_016_000}]

    # The top-up fills: the trade is done, topped up, both legs whole.
    top_up = orders(h)[2]
    h.fill_in_full(top_up, "2405.8")
    done = render(capture(h.oms, recent), [], pair_specs(h.oms), 8)["pairs"][0]["trades"][0]
    assert (done["status"], done["outcome"]) == ("done", "topped_up")
    assert {leg: v["state"] for leg, v in done["legs"].items()} == {
        "inner": "filled",
        "outer": "filled",
    }

    venues = {v["venue"]: v for v in snap["venues"]}
    assert venues["OUTER"]["rejects"] == {"orders": 1, "cancels": 0, "session": 0, "not_sent": 0}
    assert venues["INNER"]["rejects"]["orders"] == 0
    assert venues["OUTER"]["active"] == "primary"  # the OMS's own view, with no lines given
    assert snap["risk"]["states"]["global"] == "active" and snap["risk"]["halted"] is False


def test_recent_receipts_forward_everything_and_keep_what_an_operator_reads() -> None:
    """Every receipt reaches the writer; market data is counted, not kept, so that a burst
    of it does not push the orders and risk changes off the page."""
    h = Harness()
    h.book("INNER", "AU", [("559.90", 50)], [("560.00", 50)])
    h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])
    h.oms.kill(None, who="alice", why="runaway strategy")
    forwarded: list[Receipt] = []
    recent = RecentReceipts(forwarded.append, keep=5)
    for receipt in h.receipts:
        recent.record(receipt)
    for i in range(50):  # a burst of market data after them
        recent.record(Receipt.of("event.market_data", ts_ns=10**9 + i, venue="INNER"))

    assert forwarded == [*h.receipts, *forwarded[len(h.receipts) :]]
    assert recent.total == len(forwarded) == len(h.receipts) + 50
    assert recent.market_data == 50 + sum(r.kind == "event.market_data" for r in h.receipts)
    kept = [r for r in h.receipts if r.kind != "event.market_data"][-5:]
    assert list(recent.latest) == kept
    change = recent.risk_changes["global"]
    assert (change.verdict, change.data["who"], change.reason) == (
        "halted",
        "alice",
        "runaway strategy",
    )
    snap = render(capture(h.oms, recent), [], pair_specs(h.oms), 1)
    assert snap["risk"]["halted"] is True
    assert snap["risk"]["changes"][0] | {"at_ns": 0} == {
        "scope": "global",
        "state": "halted",
        "who": "alice",
        "why": "runaway strategy",
        "rule": "kill",
        "at_ns": 0,
    }


def test_a_slow_reader_gets_the_newest_snapshot_never_a_backlog() -> None:
    async def scenario() -> None:
        hub = SnapshotHub(lambda seq: str(seq).encode(), period_s=0.001)
        reader = hub.updates()
        first = int(await reader.__anext__())
        # The reader is busy elsewhere; the hub goes on without queueing for it.
        target = first + 20
        while hub.version < target:
            await asyncio.sleep(0.001)
        second = int(await reader.__anext__())
        assert second >= target  # the newest, the ones in between skipped
        assert hub.ticking
        await reader.aclose()
        assert hub.readers == 0
        for _ in range(1000):  # with nobody reading, the hub stops making snapshots
            if not hub.ticking:
                break
            await asyncio.sleep(0.001)
        assert not hub.ticking

    asyncio.run(scenario())


# -- a real gateway: the token, the page's files, the commands --------------------------------


def _admin(gateway_url: str, path: str, token: str | None = TOKEN) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(gateway_url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def start_gateway(
    venues: list[Venue], tmp_path: Path, gateways: list[Gateway], monkeypatch: pytest.MonkeyPatch
) -> Gateway:
    """The demo's gateway with its admin API (and so the page) on a free loopback port."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = gateway_config(venues, tmp_path)
    config = config.model_copy(update={"admin": AdminConfig(token_env=TOKEN_ENV)})
    gateway = Gateway(config)
    gateways.append(gateway)
    gateway.start()
    assert gateway.wait_ready(20), "the gateway did not log on to both venues"
    assert gateway.admin is not None and gateway.admin.url is not None
    return gateway


def cmc(*args: str, token: str | None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMC_ADMIN")}
    env["COLUMNS"] = "200"
    env.pop(TOKEN_ENV, None)
    if token is not None:
        env[TOKEN_ENV] = token
    return subprocess.run(
        [CMC, *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


@pytest.mark.fix
def test_data_wants_the_token_and_the_page_carries_none(demo: Demo, tmp_path: Path) -> None:
    url = demo.url

    for path in ("/v1/dashboard/snapshot", "/v1/dashboard/stream"):
        for token in (None, "not-" + TOKEN, TOKEN[:-1]):
            status, body, headers = _admin(url, path, token)
            assert status == 401, (path, token)
            assert headers["WWW-Authenticate"] == "Bearer"
            assert TOKEN.encode() not in body

    status, body, _ = _admin(url, "/v1/dashboard/snapshot")
    assert status == 200
    snap = json.loads(body)
    assert [p["pair"] for p in snap["pairs"]] == ["GOLD"]
    assert {v["venue"]: v["active"] for v in snap["venues"]} == {
        "SHFE-SIM": "primary",
        "COMEX-SIM": "primary",
    }
    lines = {(v["venue"], x["role"]): x for v in snap["venues"] for x in v["lines"]}
    assert all(x["logged_on"] and x["next_sender_seq"] >= 2 for x in lines.values())

    # The page's own files need no token, and none of them holds it (or any data).
    for path, kind in (
        ("/dashboard", "text/html"),
        ("/dashboard/static/dashboard.js", "text/javascript"),
        ("/dashboard/static/dashboard.css", "text/css"),
        ("/dashboard/static/plotly.min.js", "text/javascript"),
    ):
        status, body, headers = _admin(url, path, token=None)
        assert status == 200, path
        assert headers["Content-Type"].startswith(kind)
        assert TOKEN.encode() not in body
        assert b"GOLD" not in body and b"SHFE-SIM" not in body
    status, page, headers = _admin(url, "/dashboard", token=None)
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert b'src="/dashboard/static/plotly.min.js"' in page
    assert b"http" not in page.split(b"<body>")[0]  # nothing loaded from anywhere else
    status, _, _ = _admin(url, "/dashboard/static/secrets.txt", token=None)
    assert status == 404

    # `cmc dashboard` finds it through admin.json and prints where it is, not the token.
    found = cmc("dashboard", "--state-dir", str(tmp_path), "--no-browser", token=TOKEN)
    assert found.returncode == 0, found.stderr
    assert f"dashboard at {url}/dashboard" in found.stdout
    assert TOKEN not in found.stdout + found.stderr
    as_json = cmc("dashboard", "--state-dir", str(tmp_path), "--no-browser", "--json", token=TOKEN)
    assert json.loads(as_json.stdout) == {"url": f"{url}/dashboard", "token_env": TOKEN_ENV}
    wrong = cmc("dashboard", "--state-dir", str(tmp_path), "--no-browser", token="x" * 20)
    assert wrong.returncode == 4 and "refused the token" in wrong.stderr
    nowhere = cmc("dashboard", "--state-dir", str(tmp_path / "none"), "--no-browser", token=TOKEN)
    assert nowhere.returncode == 3


@pytest.mark.fix
@pytest.mark.parametrize("stop", ["seconds", "ctrl-c"])
def test_the_demo_serves_the_page_while_its_market_trades(tmp_path: Path, stop: str) -> None:
    """`cmc demo --dashboard` prints the page's address with a token made for the run, and
    the page's data answers to it until the demo stops, at --seconds or at Ctrl-C, with its
    summary either way."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMC_ADMIN")}
    args = ["--seconds", "4"] if stop == "seconds" else []
    proc = subprocess.Popen(
        [CMC, "demo", "--dashboard", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "dashboard at" in line:
                break
        found = re.search(
            r"dashboard at (http://127\.0\.0\.1:\d+)/dashboard#token=(\S+)", "".join(seen)
        )
        assert found, "".join(seen)
        base, token = found.groups()
        status, body, _ = _admin(base, "/v1/dashboard/snapshot", token)
        assert status == 200
        assert json.loads(body)["pairs"][0]["pair"] == "GOLD"
        assert _admin(base, "/v1/dashboard/snapshot", None)[0] == 401
        if stop == "ctrl-c":
            proc.send_signal(signal.SIGINT)
        rest, errors = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, errors
    assert "the gateway's spread trading" in rest
    assert (tmp_path / "var" / "demo" / "receipts.sqlite").exists()
    assert not (tmp_path / "var" / "demo" / "admin.json").exists()  # gone with the gateway


# -- the page in a real browser ---------------------------------------------------------------


def _say(config: pytest.Config, text: str) -> None:
    """Print past pytest's capture: what an operator of the test run needs to see."""
    capture_manager = config.pluginmanager.getplugin("capturemanager")
    if capture_manager is None:
        print(text, flush=True)
        return
    with capture_manager.global_and_fixture_disabled():
        print(f"\n{text}", flush=True)


def _unavailable(reason: str) -> None:
    """No browser to test with: a skip on a developer's machine, a failure in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run)", pytrace=False)
    pytest.skip(reason)


def _install_chromium(config: pytest.Config) -> str | None:
    """Debian's Chromium and its driver, installed with apt-get: None once both are there,
    else why not."""
    if os.geteuid() != 0:
        return (
            f"{CHROMIUM} or {CHROMEDRIVER} is missing and only root can install them: "
            "apt-get install chromium chromium-driver"
        )
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} or {CHROMEDRIVER} is missing and there is no apt-get here"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    started = time.monotonic()
    try:
        done = subprocess.run(install, capture_output=True, text=True, timeout=540, env=env)
        if done.returncode != 0:  # a stale package list: refresh it and try once more
            subprocess.run(
                ["apt-get", "update"], capture_output=True, text=True, timeout=300, env=env
            )
            done = subprocess.run(install, capture_output=True, text=True, timeout=540, env=env)
    except subprocess.TimeoutExpired:
        return "installing chromium with apt-get timed out"
    took = time.monotonic() - started
    if done.returncode != 0 or not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return f"could not install chromium with apt-get (exit {done.returncode}): {' '.join(tail)}"
    _say(config, f"installed chromium and chromium-driver with apt-get in {took:.1f} s")
    return None


@pytest.fixture(scope="session")
def chromium(pytestconfig: pytest.Config) -> tuple[Path, Path]:
    """Debian's headless Chromium and ChromeDriver, installed on first use where missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable("selenium is not installed: pip install -e '.[dev]'")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = _install_chromium(pytestconfig)
        if reason is not None:
            _unavailable(reason)
    return CHROMIUM, CHROMEDRIVER


@dataclass
class Demo:
    gateway: Gateway
    inner: Venue
    outer: Venue

    @property
    def url(self) -> str:
        assert self.gateway.admin is not None and self.gateway.admin.url is not None
        return self.gateway.admin.url


@pytest.fixture
def demo(
    make_venue: Callable[..., Venue],
    tmp_path: Path,
    gateways: list[Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> Demo:
    """The demo's two venues, market makers quoting and moving, and the demo's gateway."""
    sim = demo_config(opening_auction=False, clients=[GW_PRIMARY, GW_BACKUP])
    inner, outer = (make_venue(**v.model_dump(mode="json")) for v in sim.venues)
    gateway = start_gateway([inner, outer], tmp_path, gateways, monkeypatch)
    return Demo(gateway, inner, outer)


@pytest.fixture
def browser(chromium: tuple[Path, Path], tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = Options()
    options.binary_location = str(binary)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver: Any, element_id: str) -> str:
    """The element's text as the page wrote it (before any CSS upper-casing)."""
    return str(driver.find_element("id", element_id).get_attribute("textContent"))


def _changes(driver: Any, element_id: str, timeout_s: float = 15) -> bool:
    before = _text(driver, element_id)
    return wait_until(lambda: _text(driver, element_id) != before, timeout_s, poll_s=0.1)


@pytest.mark.fix
@pytest.mark.timeout(600)  # the first run may install Chromium
def test_the_page_shows_the_market_moving_a_pair_trading_and_its_kill_switch_halts_trading(
    demo: Demo, browser: Any, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(f"{demo.url}/dashboard#token={TOKEN}&who=pytest")
    assert wait_until(lambda: driver.execute_script("return document.body.dataset.seq"), 20), (
        "the page drew no snapshot: " + _text(driver, "status")
    )
    # The token left the address bar at once, and stays in this tab only.
    assert "token" not in driver.current_url
    assert driver.execute_script("return sessionStorage.getItem('cmc.dashboard.token')") == TOKEN
    assert _text(driver, "status") == "live"

    # Both books and the spread move as the market makers requote.
    assert _text(driver, "inner-title").startswith("inner: SHFE-SIM AU")
    assert _text(driver, "outer-title").startswith("outer: COMEX-SIM GC")
    assert "bid" in _text(driver, "book-inner") and "ask" in _text(driver, "book-outer")
    assert _changes(driver, "book-inner"), "the inner book did not change on the page"
    assert _changes(driver, "book-outer"), "the outer book did not change on the page"
    prev_close = demo.outer.instruments["GC"].prev_close
    assert prev_close is not None
    demo.outer.set_anchor("GC", prev_close + 3)  # the outer market moves: so does the spread
    assert _changes(driver, "edge-buy"), "the spread did not change on the page"
    assert wait_until(
        lambda: int(driver.find_element("id", "chart").get_attribute("data-points") or 0) > 10,
        15,
    ), "the chart has no history"
    plotted = driver.execute_script("return document.getElementById('chart').data.length")
    assert plotted == 5  # both edges, entry, close, and the trades that fired

    # A pair appears with its legs: the strategy's own, or one sent now.
    def trade_now(oms: Oms) -> SpreadPair | str:
        book = oms.pairs["GOLD"]
        if book.working is not None or book.done:
            return book.working or book.done[-1]
        direction = Direction.SELL_INNER if book.position > 0 else Direction.BUY_INNER
        return oms.engine.trade_now("GOLD", direction, 1, now_ns())

    trade = demo.gateway.oms.call(trade_now)
    assert isinstance(trade, SpreadPair), trade
    trade_id = trade.intent.intent_id
    assert wait_until(lambda: trade_id in _text(driver, "trades"), 15)
    assert wait_until(lambda: trade.outcome is not None, 15)
    assert wait_until(lambda: trade.outcome.value in _text(driver, "trades"), 15)  # type: ignore[union-attr]
    trades = _text(driver, "trades")
    assert f"SHFE-SIM {trade.intent.direction.inner_side.name} {trade.inner_filled}/28" in trades
    assert f"COMEX-SIM {trade.intent.direction.outer_side.name} {trade.outer_filled}/9" in trades
    assert "leg inner" in trades and "leg outer" in trades

    # The lines as the sessions have them.
    lines = _text(driver, "venues")
    assert "SHFE-SIM" in lines and "COMEX-SIM" in lines
    assert lines.count("primary (active)logged on") == 2
    assert lines.count("backuplogged on") == 2

    # The kill switch: a reason, a confirmation, and trading halts.
    driver.find_element("id", "kill-reason").send_keys("dashboard test")
    driver.find_element("id", "kill-button").click()
    WebDriverWait(driver, 5).until(expected_conditions.alert_is_present())
    driver.switch_to.alert.accept()
    assert wait_until(lambda: "halted global" in _text(driver, "kill-result"), 10), _text(
        driver, "kill-result"
    )
    status, body, _ = _admin(demo.url, "/v1/risk")
    assert status == 200 and json.loads(body)["states"]["global"] == "halted"
    assert wait_until(lambda: _text(driver, "risk-state") == "risk: HALTED", 10)
    assert wait_until(lambda: "pytest (dashboard)" in _text(driver, "risk-changes"), 10)
    assert "dashboard test" in _text(driver, "risk-changes")

    shot = tmp_path / "dashboard.png"
    driver.save_screenshot(str(shot))
    _say(pytestconfig, f"dashboard screenshot: {shot}")
    problems = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not problems, problems
