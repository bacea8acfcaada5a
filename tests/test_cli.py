"""The real `cmc` command, run as a subprocess the way an operator runs it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sessions.ports import free_port

CMC = str(Path(sys.executable).parent / "cmc")
pytestmark = pytest.mark.fix


def run(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [CMC, *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=env
    )


class Running:
    """A long-running `cmc` process whose output lines are read as they come."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "COLUMNS": "120"}
        self.proc = subprocess.Popen(
            [CMC, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not seen; output so far:\n{''.join(self.seen)}")

    def finish(self, stdin: str, timeout: float = 20) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(stdin)
        self.proc.stdin.close()
        self.proc.wait(timeout=timeout)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def test_demo_runs_both_venues_and_the_client_books_match() -> None:
    result = run("sim-demo", "--seconds", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "uncrossed" in out and "the price of maximum volume" in out
    assert "what the venues did" in out and "what client DEMO saw" in out
    assert "books rebuilt from market data match the venues: yes" in out
    assert "quickfix 1.16.0" in out


def test_sim_with_a_bad_config_fails_before_starting_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[venues]]\nid = "V"\ncomp_id = "V"\nport = 1\nclients = ["A"]\n'
        '[[venues.instruments]]\nsymbol = "AU"\ncurrency = "cny"\ntick = "0.02"\n'
        'prev_close = "560"\n'
    )
    result = run("sim", "--config", str(path), timeout=30)
    assert result.returncode == 2
    assert f"{path}: invalid configuration" in result.stderr
    assert (
        "venues[0].instruments[0].currency: String should match pattern '^[A-Z]{3}$'"
        in result.stderr
    )
    assert "listening" not in result.stdout


def test_sim_refuses_an_unknown_venue_id(tmp_path: Path) -> None:
    result = run("sim", "--config", "conf/sim.toml", "--venue", "NOPE", timeout=30)
    assert result.returncode == 2
    assert "no venue with id NOPE; the file has SHFE-SIM, COMEX-SIM" in result.stderr


def test_trade_by_hand_against_a_running_sim(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "venue.toml"
    config.write_text(f"""
[[venues]]
id = "HAND"
comp_id = "HAND"
port = {port}
clients = ["TRADER1"]
store_dir = "{tmp_path / "venue-store"}"
[[venues.instruments]]
symbol = "AU"
currency = "CNY"
tick = "0.02"
prev_close = "560.00"
price_band_pct = "6"
[venues.liquidity]
enabled = true
interval_ms = 50
""")
    sim = Running("sim", "--config", str(config), "--seconds", "60")
    try:
        sim.wait_for(f"listening on port {port}")
        script = "md AU\nbuy AU 3 @ 565.00\nbuy AU 1 @ 560.01\nbuy AU 2 @ 500.00\norders\n"
        trade = run(
            "trade",
            "--port",
            str(port),
            "--sender",
            "TRADER1",
            "--target",
            "HAND",
            "--store-dir",
            str(tmp_path / "trader-store"),
            stdin=script,
            timeout=60,
        )
        assert trade.returncode == 0, trade.stdout + trade.stderr
        out = trade.stdout
        assert "logged on to HAND as TRADER1" in out
        assert "snapshot AU" in out
        assert "status=Filled cum=3 leaves=0" in out
        assert "(price is not a multiple of the tick size)" in out
        assert "(price is outside the daily limit band)" in out
        sim_out = sim.finish("book AU\nstats\nquit\n")
        assert sim.proc.returncode == 0, sim_out
        assert "HAND AU" in sim_out  # the book table
        row = next(line for line in sim_out.splitlines() if line.startswith("│ HAND"))
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells[3:6] == ["3", "1", "2"], row  # orders, fills, rejects
    finally:
        sim.kill()


def test_trade_without_a_venue_says_what_to_check() -> None:
    result = run(
        "trade",
        "--port",
        str(free_port()),
        "--sender",
        "T",
        "--target",
        "V",
        "--logon-timeout",
        "1",
        timeout=30,
    )
    assert result.returncode == 1
    assert "could not log on to V" in result.stderr
    assert "is the venue running" in result.stderr


def test_demo_trades_the_converted_gold_spread_and_leaves_receipts() -> None:
    result = run("demo", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "28 AU lots (28,000 g) against 9 GC lots (900 troy_oz)" in out
    row = next(line for line in out.splitlines() if "spread trades (entries / closes)" in line)
    trades = int(row.split("│")[2].split("(")[0])
    assert trades >= 2, row
    path = Path(next(line for line in out.splitlines() if line.startswith("receipts: "))[10:])
    assert path.is_file()
    from oms.receipts import ReceiptStore

    with ReceiptStore(f"sqlite:///{path}") as store:
        kinds = {r.kind for r in store.all()}
    assert {"decision.spread_intent", "command.send_order", "event.execution"} <= kinds


def test_gateway_with_a_pair_on_an_unknown_venue_fails_before_starting(tmp_path: Path) -> None:
    text = (
        Path("conf/demo.toml")
        .read_text()
        .replace('outer = { venue = "COMEX-SIM"', 'outer = { venue = "CME"')
    )
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    result = run("gateway", "--config", str(path), timeout=30)
    assert result.returncode == 2
    assert f"{path}: invalid configuration" in result.stderr
    assert "pair GOLD: CME GC is not an instrument of a configured venue" in result.stderr


def test_ctrl_c_ends_the_demo_early_with_its_summary_and_receipts(tmp_path: Path) -> None:
    """SIGINT is Python's again once quickfix is loaded (sessions/__init__.py): the gateway
    stops cleanly, logs out and flushes its receipts instead of dying on the spot."""
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen(
        [CMC, "demo"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "spread trade" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    out = "".join(seen) + rest
    assert proc.returncode == 0, out
    assert "stopping the demo" in out and "receipts written" in out, out
    assert (tmp_path / "var" / "demo" / "receipts.sqlite").is_file()
