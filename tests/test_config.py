"""Configuration is validated once, and a bad file says where and how to fix it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from sessions.config_loader import ConfigError
from sessions.simulator.config import load_simulator_config
from sessions.simulator.demo import demo_config

REPO = Path(__file__).resolve().parents[1]

GOOD = """
[[venues]]
id = "V"
comp_id = "V"
port = 9301
clients = ["A"]
[[venues.instruments]]
symbol = "AU"
currency = "CNY"
tick = "0.02"
prev_close = "560.00"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sim.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> tuple[str, list[str]]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_simulator_config(path)
    assert str(path) in str(info.value)
    return str(info.value), info.value.problems


def test_documented_example_config_is_valid() -> None:
    config = load_simulator_config(REPO / "conf" / "sim.toml")
    assert [v.id for v in config.venues] == ["SHFE-SIM", "COMEX-SIM"]
    au = config.venues[0].instrument_list()[0]
    assert (au.symbol, au.tick, au.contract_size, au.contract_unit) == (
        "AU",
        Decimal("0.02"),
        Decimal(1000),
        "g",
    )
    assert au.band_ticks() == (26320, 29680)  # 560.00 ± 6 % = 526.40 .. 593.60


def test_embedded_demo_config_is_valid_and_uses_free_ports() -> None:
    config = demo_config()
    ports = [v.port for v in config.venues]
    assert len(set(ports)) == 2 and all(p > 1024 for p in ports)


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    config = load_simulator_config(write(tmp_path, GOOD))
    venue = config.venues[0]
    assert venue.liquidity.enabled is False
    assert venue.faults.reject_rate == 0.0
    assert venue.instrument_list()[0].lot == 1


def test_unknown_key_lists_the_valid_keys(tmp_path: Path) -> None:
    _, found = problems(tmp_path, GOOD + '[venues.faults]\ncolour = "red"\n')
    assert found == [
        "venues[0].faults.colour: unknown key; valid keys here are: ack_delay_ms, cancel_delay_ms, "
        "fill_delay_ms, partial_fill_rate, pending_reports, refuse_logons, reject_rate, seed"
    ]


def test_out_of_range_value_names_the_key_the_rule_and_the_value(tmp_path: Path) -> None:
    _, found = problems(tmp_path, GOOD.replace('tick = "0.02"', 'tick = "-0.02"'))
    assert found == ["venues[0].instruments[0].tick: Input should be greater than 0 (got '-0.02')"]


def test_missing_required_key_says_to_add_it(tmp_path: Path) -> None:
    _, found = problems(tmp_path, GOOD.replace('currency = "CNY"\n', ""))
    assert found == ["venues[0].instruments[0].currency: required key is missing; add it"]


def test_prev_close_off_the_tick_suggests_a_valid_price(tmp_path: Path) -> None:
    _, found = problems(tmp_path, GOOD.replace('prev_close = "560.00"', 'prev_close = "560.01"'))
    assert len(found) == 1
    assert "prev_close 560.01 is not a multiple of tick 0.02" in found[0]
    assert "560.00" in found[0]


def test_wrong_enum_lists_the_valid_values(tmp_path: Path) -> None:
    _, found = problems(
        tmp_path, GOOD.replace("port = 9301", 'port = 9301\ninitial_phase = "lunch"')
    )
    assert len(found) == 1
    assert found[0].startswith("venues[0].initial_phase: ")
    for phase in ("opening_auction", "continuous", "closing_auction", "closed"):
        assert phase in found[0]


def test_schedule_naming_an_unknown_symbol_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace(
        "port = 9301",
        'port = 9301\nschedule = [{after_s = 1, phase = "continuous", symbols = ["CU"]}]',
    )
    _, found = problems(tmp_path, text)
    assert found == ["venues[0]: schedule names unknown symbols ['CU']; known: ['AU']"]


def test_duplicate_venue_ids_are_refused(tmp_path: Path) -> None:
    second = GOOD.replace("port = 9301", "port = 9302")
    _, found = problems(tmp_path, GOOD + second)
    assert found == ["(top level): venue ids must be distinct: ['V', 'V']"]


def test_invalid_toml_is_reported_with_its_position(tmp_path: Path) -> None:
    _, found = problems(tmp_path, "[[venues]]\nid = \n")
    assert found[0].startswith("not valid TOML: ")
    assert "line 2" in found[0]


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_simulator_config(tmp_path / "absent.toml")
    assert info.value.problems == ["file not found; pass the path of an existing TOML file"]
