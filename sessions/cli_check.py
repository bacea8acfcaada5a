"""``cmc check``: the readiness check of a gateway file, as a table or as JSON."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from sessions.config_loader import ConfigError
from sessions.readiness import Item

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Gateway TOML file to check (see conf/demo.toml).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@click.option(
    "--logon-timeout",
    type=float,
    default=8.0,
    show_default=True,
    help="Seconds to wait for logons.",
)
def check(config_path: Path, as_json: bool, logon_timeout: float) -> None:
    """Is this gateway file ready to trade? Logs on to every venue line with the gateway's
    CompIDs and sequence-number store (do not run it beside a gateway using the same file),
    measures each line's round trip and clock offset, opens the receipt store, and checks
    what the client side needs. Exit 0: every item ok or warn; 1: an item failed; 2: the
    file itself is wrong."""
    from sessions.fixengine import exit_process
    from sessions.gateway_config import load_gateway_config
    from sessions.readiness import Item
    from sessions.readiness import check as run_check

    logging.basicConfig(level=logging.CRITICAL)
    out = Console()
    try:
        config = load_gateway_config(config_path)
    except ConfigError as exc:
        items = [Item("config", str(config_path), "fail", str(exc))]
        _show(out, items, as_json)
        exit_process(2)
    items = run_check(config, logon_timeout_s=logon_timeout)
    _show(out, items, as_json)
    sys.stdout.flush()
    exit_process(1 if any(i.verdict == "fail" for i in items) else 0)


def _show(out: Console, rows: list[Item], as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "ready": all(i.verdict != "fail" for i in rows),
                    "items": [i.as_json() for i in rows],
                }
            )
        )
        return
    table = Table(title="Readiness", title_justify="left")
    for column in ("area", "what", "verdict", "detail"):
        table.add_column(column, overflow="fold")
    for i in rows:
        table.add_row(i.area, i.name, f"[{_STYLE[i.verdict]}]{i.verdict}[/]", i.detail)
    out.print(table)
    failed = sum(i.verdict == "fail" for i in rows)
    out.print("ready" if not failed else f"[bold red]not ready: {failed} item(s) failed[/]")
