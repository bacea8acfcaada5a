"""``cmc stage``: where a running gateway is on its way to trading (shadow, canary, live),
and an operator's change of it, through the admin API like the other operations commands.
"""

from __future__ import annotations

import click
from rich.markup import escape

from sessions.cli_ops import (
    EXIT_CODES,
    AdminClient,
    Options,
    _confirm,
    _print_json,
    _who,
    admin_options,
    console,
    stage_header,
)

STAGES = ("shadow", "canary", "live")
MEANING = {
    "shadow": "orders filled on paper against a mirror of the real books; no venue gets one",
    "canary": "real orders, held to the canary caps",
    "live": "real orders, within the risk limits",
}


def _since(ns: object) -> str:
    from oms.audit.timerange import utc_text

    return utc_text(ns) if isinstance(ns, int) else "-"


def _caps(canary: dict[str, object] | None) -> str | None:
    if not canary:
        return None
    currency = canary.get("currency") or ""
    parts = []
    if canary.get("max_lots_per_order") is not None:
        parts.append(f"{canary['max_lots_per_order']} lots an order")
    if canary.get("max_order_notional") is not None:
        parts.append(f"{canary['max_order_notional']} {currency} an order")
    if canary.get("max_pairs_per_day") is not None:
        parts.append(
            f"{canary['max_pairs_per_day']} spread trades a day ({canary['pairs_today']} today)"
        )
    if canary.get("max_day_notional") is not None:
        parts.append(
            f"{canary['max_day_notional']} {currency} a day ({canary['notional_today']} today)"
        )
    return "canary caps: " + ", ".join(parts)


@click.group(invoke_without_command=True, epilog=EXIT_CODES)
@admin_options
def stage(options: Options) -> None:
    """The gateway's stage: shadow (paper orders against a mirror of the real books), canary
    (real orders within the canary caps) or live; who set it, why and when.

    `cmc stage set` changes it. Options go after the subcommand (`cmc stage set ... --json`).
    """
    if click.get_current_context().invoked_subcommand is not None:
        return
    answer = AdminClient(options).get("/stage")
    if options.as_json:
        _print_json(answer)
        return
    console.print(stage_header(answer), highlight=False)
    console.print(
        f"  {MEANING.get(answer['stage'], '')}; since {_since(answer.get('since_ns'))}, "
        f"set by {answer.get('who')}: {answer.get('why')}",
        highlight=False,
        markup=False,
    )
    caps = _caps(answer.get("canary"))
    if caps:
        console.print(f"  {caps}", highlight=False, markup=False)
    console.print(f"  {answer.get('working_orders', 0)} order(s) working", highlight=False)


@stage.command("set", epilog=EXIT_CODES)
@click.argument("to", metavar="STAGE", type=click.Choice(STAGES))
@click.option(
    "--why",
    "--reason",
    "why",
    required=True,
    help="Why (required: kept in the operator.stage receipt).",
)
@click.option("--who", default=None, help="Who asks (default: the OS user name).")
@click.option("--yes", is_flag=True, help="Do it without asking first.")
@admin_options
def stage_set(options: Options, to: str, why: str, who: str | None, yes: bool) -> None:
    """Move the gateway to STAGE (shadow, canary or live). Refused while any order works or
    a spread trade is in flight (`cmc orders --working`, `cmc kill`), and, into or out of
    shadow, while any position is open: paper and real orders never mix."""
    client = AdminClient(options)
    _confirm(yes, f"Move the gateway to {to} ({MEANING[to]})?")
    answer = client.post("/stage", {"stage": to, "who": who or _who(), "why": why})
    if options.as_json:
        _print_json(answer)
        return
    if answer.get("changed"):
        console.print(
            f"stage: {answer['from']} -> [bold]{answer['stage']}[/bold] "
            f"(by {escape(str(answer.get('who')))}: {escape(str(answer.get('why')))})",
            highlight=False,
        )
    else:
        console.print(f"the gateway is in {answer['stage']} already; nothing changed")
