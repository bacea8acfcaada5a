"""`cmc check`, the readiness check, run as an operator runs it: a subprocess against two
simulated venues, with a sound gateway file and with broken ones."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sessions.ports import free_port
from sessions.simulator.venue import Venue
from tests.test_audit_chain import CMC
from tests.test_ops_cli import PRI, TOKEN, gateway_toml

pytestmark = pytest.mark.fix


def run_check(config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, "CMC_ADMIN_TOKEN": TOKEN}
    done = subprocess.run(
        [CMC, "check", "--config", str(config), "--json", "--logon-timeout", "6", *extra],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def by_area(report: dict[str, Any], area: str) -> list[dict[str, str]]:
    return [i for i in report["items"] if i["area"] == area]


def test_a_sound_file_is_ready_line_by_line(venues: tuple[Venue, Venue], tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(tmp_path, list(venues)))
    code, report = run_check(config)
    assert code == 0 and report["ready"] is True, report
    lines = by_area(report, "line")
    assert len(lines) == 4 and {i["verdict"] for i in lines} == {"ok"}
    clocks = by_area(report, "clock")
    assert len(clocks) == 4 and all("round trip" in i["detail"] for i in clocks)
    assert {i["verdict"] for i in clocks} <= {"ok", "warn"}
    assert [i["verdict"] for i in by_area(report, "receipts")] == ["ok"]
    assert [i["verdict"] for i in by_area(report, "admin")] == ["ok"]


def test_a_wrong_port_and_a_wrong_comp_id_fail_with_their_reasons(
    venues: tuple[Venue, Venue], tmp_path: Path
) -> None:
    text = gateway_toml(tmp_path, list(venues))
    inner, outer = venues
    nobody = free_port()
    # the inner venue's backup line points at a port nothing listens on ...
    marker = f'role = "backup"\nport = {inner.config.port}\n'
    assert marker in text
    text = text.replace(marker, f'role = "backup"\nport = {nobody}\n', 1)
    # ... and the outer venue's primary logs on as a CompID the venue does not know
    marker = (
        f'port = {outer.config.port}\nsender_comp_id = "{PRI}"\n'
        f'target_comp_id = "{outer.config.comp_id}"'
    )
    assert marker in text
    text = text.replace(
        marker,
        f'port = {outer.config.port}\nsender_comp_id = "GW-NOBODY"\n'
        f'target_comp_id = "{outer.config.comp_id}"',
    )
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    code, report = run_check(config)
    assert code == 1 and report["ready"] is False
    verdicts = {
        i["name"].split(" (")[0]: (i["verdict"], i["detail"]) for i in by_area(report, "line")
    }
    assert verdicts["INNER primary"][0] == "ok" and verdicts["OUTER backup"][0] == "ok"
    assert verdicts["INNER backup"][0] == "fail"
    assert f"nothing answers at 127.0.0.1:{nobody}" in verdicts["INNER backup"][1]
    assert verdicts["OUTER primary"][0] == "fail"
    assert "sender_comp_id" in verdicts["OUTER primary"][1]


def test_a_file_that_does_not_load_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('store_dir = "x"\nheartbeat_s = 0\n')
    code, report = run_check(config)
    assert code == 2 and report["ready"] is False
    [item] = report["items"]
    assert item["area"] == "config" and "heartbeat_s" in item["detail"]
