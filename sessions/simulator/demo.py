"""The simulator demo: two venues with market makers, one scripted client trading on both.

What it shows, in order: an opening call auction on the inner venue uncrossing at the price
of maximum volume; continuous trading on both venues (orders that rest, cross, walk the
book, get replaced and cancelled, FOK orders that cannot fill); a closing auction and the
close, where DAY orders expire. It ends with what each venue did, what the client saw, and
whether the book the client rebuilt from market data matches the venue's own.
"""

from __future__ import annotations

import functools
import importlib.resources
import random
import statistics
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from oms.clock import NS_PER_US, now_ns
from oms.enums import Side, TimeInForce
from sessions.config_loader import validate_mapping
from sessions.measure import machine_line, percentile
from sessions.ports import free_port
from sessions.simulator.client import BookView, FixClient, Received
from sessions.simulator.config import SimulatorConfig
from sessions.simulator.matching import Phase
from sessions.simulator.venue import Venue

CLIENT = "DEMO"


def demo_config(
    *, opening_auction: bool = True, clients: list[str] | None = None
) -> SimulatorConfig:
    """The embedded demo venues, on free loopback ports.

    ``opening_auction=False`` starts the inner venue in continuous trading; ``clients``
    adds CompIDs the venues accept beside the scripted client's.
    """
    import tomllib

    text = importlib.resources.files("sessions.simulator").joinpath("demo_venues.toml").read_text()
    data = tomllib.loads(text)
    for venue in data["venues"]:
        venue["port"] = free_port()
        venue["clients"] = venue["clients"] + list(clients or ())
        if not opening_auction:
            venue.pop("initial_phase", None)
            venue.pop("schedule", None)
    return validate_mapping(data, SimulatorConfig, Path("sessions/simulator/demo_venues.toml"))


@dataclass
class Leg:
    """The client's view of one venue."""

    venue: Venue
    client: FixClient
    symbol: str
    tick: Decimal
    book: BookView
    sent_ns: dict[str, int] = field(default_factory=dict)
    resting: list[tuple[str, Side, int, Decimal]] = field(default_factory=list)
    seen: int = 0

    def pump(self) -> None:
        """Apply market data received since the last call."""
        msgs = self.client.received
        while self.seen < len(msgs):
            msg = msgs[self.seen]
            self.seen += 1
            if msg.msg_type in ("W", "X"):
                self.book.apply(msg)

    def send(self, side: Side, qty: int, price: Decimal | None, tif: TimeInForce) -> str:
        clordid = self.client.next_id()
        self.sent_ns[clordid] = now_ns()
        self.client.new_order(self.symbol, side, qty, price, tif, clordid=clordid)
        return clordid


def run_demo(console: Console, *, seconds: float = 6.0, seed: int = 42) -> int:
    config = demo_config()
    venues = [Venue(v) for v in config.venues]
    legs: list[Leg] = []
    rng = random.Random(seed)
    started = time.monotonic()
    try:
        for venue in venues:
            venue.start()
        for venue in venues:
            client = FixClient(port=venue.config.port, sender=CLIENT, target=venue.config.comp_id)
            client.start()
            inst = next(iter(venue.instruments.values()))
            legs.append(Leg(venue, client, inst.symbol, inst.tick, BookView(inst.symbol)))
            client.subscribe([inst.symbol], depth=5)
        console.print(
            "[bold]venues up[/bold]: "
            + ", ".join(f"{v.id} on 127.0.0.1:{v.config.port}" for v in venues)
        )
        inner = legs[0]
        _opening_auction(console, inner)
        _continuous(console, legs, rng, seconds)
        _close(console, inner)
        for venue in venues:
            venue.set_quoting(False)  # a still market, so the books can be compared
        matches = all(_book_matches(leg) for leg in legs)
        console.print(_venue_table(venues))
        console.print(_client_table(legs))
        elapsed = time.monotonic() - started
        console.print(
            f"books rebuilt from market data match the venues: "
            f"{'[green]yes[/green]' if matches else '[red]NO[/red]'}"
        )
        console.print(f"machine: {machine_line()}; demo took {elapsed:.1f} s", highlight=False)
        errors = sum(v.application.callback_errors for v in venues)
        errors += sum(leg.client.app.callback_errors for leg in legs)
        return 0 if matches and errors == 0 else 1
    finally:
        for leg in legs:
            leg.client.stop()
        for venue in venues:
            venue.retire()  # the process ends through exit_process: see FixEngine.retire


def _opening_auction(console: Console, leg: Leg) -> None:
    console.print(
        f"[bold]{leg.venue.id}[/bold]: opening call auction, orders collect without trading"
    )
    time.sleep(0.3)  # the market maker's first quotes go into the auction too
    prev = leg.venue.instruments[leg.symbol].prev_close
    assert prev is not None
    orders = [
        (Side.BUY, 6, prev + 5 * leg.tick),
        (Side.BUY, 4, prev + 2 * leg.tick),
        (Side.SELL, 3, prev - 4 * leg.tick),
        (Side.SELL, 5, prev + 8 * leg.tick),
    ]
    sent = [leg.send(side, qty, price, TimeInForce.DAY) for side, qty, price in orders]
    for clordid in sent:
        leg.client.wait_report(clordid, "0")
    found = leg.venue.call(lambda v: v.engine.auction_price(leg.symbol))
    if found is not None:
        inst = leg.venue.instruments[leg.symbol]
        console.print(
            f"  indicative uncross: {found[1]} lots at {inst.from_ticks(found[0])} "
            f"(imbalance {found[2]})"
        )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        phase = leg.venue.call(lambda v: v.engine.books[leg.symbol].phase)
        if phase is Phase.CONTINUOUS:
            break
        time.sleep(0.05)
    result = leg.venue.call(lambda v: v.engine.books[leg.symbol].last_uncross)
    if result is not None:
        inst = leg.venue.instruments[leg.symbol]
        console.print(
            f"  uncrossed {result[1]} lots at {inst.from_ticks(result[0])}, "
            f"the price of maximum volume"
        )


def _continuous(console: Console, legs: list[Leg], rng: random.Random, seconds: float) -> None:
    console.print(f"continuous trading on both venues for {seconds:.0f} s")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        leg = rng.choice(legs)
        leg.pump()
        bid, ask = leg.book.best_bid(), leg.book.best_ask()
        if bid is None or ask is None:
            time.sleep(0.02)
            continue
        roll = rng.random()
        side = rng.choice((Side.BUY, Side.SELL))
        if roll < 0.35:  # marketable: takes the touch, sometimes walks a level or two
            walk = rng.randint(0, 2) * leg.tick
            price = ask + walk if side is Side.BUY else bid - walk
            leg.send(side, rng.randint(1, 15), price, TimeInForce.IOC)
        elif roll < 0.65:  # passive: rests behind the touch
            away = rng.randint(1, 4) * leg.tick
            price = bid - away if side is Side.BUY else ask + away
            qty = rng.randint(1, 5)
            leg.resting.append((leg.send(side, qty, price, TimeInForce.DAY), side, qty, price))
        elif roll < 0.80 and leg.resting:  # replace: move toward the touch, new size
            clordid, rside, _, price = leg.resting.pop(rng.randrange(len(leg.resting)))
            new_price = price + leg.tick if rside is Side.BUY else price - leg.tick
            new_qty = rng.randint(1, 6)
            new_id = leg.client.replace(clordid, leg.symbol, rside, new_qty, new_price)
            leg.resting.append((new_id, rside, new_qty, new_price))
        elif roll < 0.95 and leg.resting:
            clordid, rside, _, _ = leg.resting.pop(rng.randrange(len(leg.resting)))
            leg.client.cancel(clordid, leg.symbol, rside)
        else:  # FOK far larger than the touch: killed, nothing trades
            price = ask if side is Side.BUY else bid
            leg.send(side, 400 if leg.symbol == "AU" else 150, price, TimeInForce.FOK)
        time.sleep(0.03)


def _close(console: Console, leg: Leg) -> None:
    leg.venue.set_phase(Phase.CLOSING_AUCTION)
    console.print(f"[bold]{leg.venue.id}[/bold]: closing call auction")
    time.sleep(0.3)
    leg.venue.set_phase(Phase.CLOSED)
    result = leg.venue.call(lambda v: v.engine.books[leg.symbol].last_uncross)
    closing = ""
    if result is not None:
        price = leg.venue.instruments[leg.symbol].from_ticks(result[0])
        closing = f" (closing uncross {result[1]} lots at {price})"
    console.print(f"  closed{closing}; DAY orders expire")


def _book_matches(leg: Leg, timeout_s: float = 3.0) -> bool:
    """Whether the client's book, once its market data has caught up, is the venue's."""
    venue_book = leg.venue.book(leg.symbol, 5)
    expected = {name: [(p, q) for p, q, _ in venue_book[name]] for name in ("bids", "asks")}
    deadline = time.monotonic() + timeout_s
    while True:
        leg.pump()
        if leg.book.top(5) == expected:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _venue_table(venues: list[Venue]) -> Table:
    table = Table(title="what the venues did")
    table.add_column("")
    rows: dict[str, list[str]] = {
        k: []
        for k in (
            "symbol",
            "phase now",
            "client orders",
            "client fills",
            "client rejects",
            "client cancels",
            "market data msgs",
        )
    }
    for venue in venues:
        table.add_column(venue.id, justify="right")
        symbol = next(iter(venue.instruments))
        stats, phase, md = venue.call(functools.partial(_venue_figures, symbol=symbol))
        for key, value in zip(
            rows,
            (
                symbol,
                phase.value,
                stats["orders"],
                stats["fills"],
                stats["rejects"],
                stats["cancels"],
                md,
            ),
            strict=True,
        ):
            rows[key].append(str(value))
    for key, values in rows.items():
        table.add_row(key, *values)
    return table


def _venue_figures(venue: Venue, symbol: str) -> tuple[dict[str, int], Phase, int]:
    return dict(venue.stats), venue.engine.books[symbol].phase, venue.md.messages_sent


def _client_table(legs: list[Leg]) -> Table:
    table = Table(title=f"what client {CLIENT} saw")
    table.add_column("")
    rows: dict[str, list[str]] = {
        k: []
        for k in (
            "orders sent",
            "bought (lots)",
            "average buy",
            "sold (lots)",
            "average sell",
            "IOC/FOK remainders cancelled",
            "DAY orders expired",
            "market data msgs",
            "ack round trip p50 (µs)",
            "ack round trip p99 (µs)",
        )
    }
    for leg in legs:
        table.add_column(leg.venue.id, justify="right")
        reports = leg.client.reports()
        fills: dict[Side, list[tuple[Decimal, int]]] = {Side.BUY: [], Side.SELL: []}
        for r in reports:
            if r.get(150) == "F":
                fills[Side(r[54])].append((Decimal(r[31]), int(r[32])))
        first: dict[str, Received] = {}
        for r in reports:
            cl = r.get(11)
            if cl in leg.sent_ns and cl not in first:
                first[cl] = r
        acks = sorted(
            (first[c].recv_ns - t) / NS_PER_US for c, t in leg.sent_ns.items() if c in first
        )
        values = (
            len(leg.sent_ns),
            sum(q for _, q in fills[Side.BUY]),
            _avg(fills[Side.BUY]),
            sum(q for _, q in fills[Side.SELL]),
            _avg(fills[Side.SELL]),
            sum(1 for r in reports if r.get(150) == "4" and r.get(59) in ("3", "4")),
            sum(1 for r in reports if r.get(150) == "C"),
            sum(1 for m in leg.client.received if m.msg_type in ("W", "X")),
            f"{statistics.median(acks):.0f}" if acks else "-",
            f"{percentile(acks, 99):.0f}" if acks else "-",
        )
        for key, value in zip(rows, values, strict=True):
            rows[key].append(str(value))
    for key, cells in rows.items():
        table.add_row(key, *cells)
    return table


def _avg(fills: list[tuple[Decimal, int]]) -> str:
    qty = sum(q for _, q in fills)
    if not qty:
        return "-"
    return f"{sum(p * q for p, q in fills) / qty:.4f}"
