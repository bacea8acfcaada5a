"""The running simulator's operator console: one line in, one answer out.

``cmc sim`` reads these lines from its standard input, so a venue can be driven by hand or
by a script piped in (``printf 'phase continuous\\n' | cmc sim ...``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from sessions.config_loader import explain
from sessions.simulator.config import FaultConfig
from sessions.simulator.line_console import LineConsole
from sessions.simulator.matching import Phase
from sessions.simulator.venue import Venue

HELP = """\
commands (a command applies to the current venue; `use ID` changes it):
  venues                               list the venues and which one is current
  use VENUE                            make VENUE the current venue
  book SYMBOL [DEPTH]                  show the top of a book
  phase PHASE [SYMBOL ...]             opening_auction | continuous | closing_auction | closed
  fault KEY=VALUE [KEY=VALUE ...]      e.g. fault reject_rate=0.2 ack_delay_ms=50
                                       refuse_logons=T1,T2 (empty value clears)
  faults                               show the current fault settings
  drop                                 cut every logged-on client connection
  skip-seq N [CLIENT]                  jump outgoing MsgSeqNum forward by N
  anchor SYMBOL PRICE                  move the liquidity provider's fair-value anchor
  stats                                orders, fills, rejects, cancels, sessions
  help                                 this text
  quit                                 stop the simulator"""


class SimConsole(LineConsole):
    def __init__(self, venues: list[Venue], console: Console) -> None:
        self.venues = {v.id: v for v in venues}
        self.current = venues[0]
        super().__init__(
            console,
            {
                "venues": self._venues,
                "use": self._use,
                "book": self._book,
                "phase": self._phase,
                "fault": self._fault,
                "faults": self._faults,
                "drop": self._drop,
                "skip-seq": self._skip_seq,
                "anchor": self._anchor,
                "stats": self._stats,
                "help": lambda _: self.out.print(HELP, highlight=False),
            },
        )

    def _venues(self, _: list[str]) -> None:
        for vid, venue in self.venues.items():
            mark = "*" if venue is self.current else " "
            self.out.print(
                f"{mark} {vid} port {venue.config.port} clients {', '.join(venue.config.clients)}"
            )

    def _use(self, args: list[str]) -> None:
        if not args or args[0] not in self.venues:
            raise ValueError(f"usage: use VENUE, one of {', '.join(self.venues)}")
        self.current = self.venues[args[0]]
        self.out.print(f"current venue: {self.current.id}")

    def _book(self, args: list[str]) -> None:
        if not args:
            raise ValueError(
                f"usage: book SYMBOL [DEPTH]; symbols: {', '.join(self.current.instruments)}"
            )
        symbol = args[0]
        if symbol not in self.current.instruments:
            raise ValueError(
                f"unknown symbol {symbol}; symbols: {', '.join(self.current.instruments)}"
            )
        depth = int(args[1]) if len(args) > 1 else 5
        self.out.print(book_table(self.current, symbol, depth))

    def _phase(self, args: list[str]) -> None:
        valid = ", ".join(p.value for p in Phase)
        if not args:
            raise ValueError(f"usage: phase PHASE [SYMBOL ...]; PHASE is one of {valid}")
        try:
            phase = Phase(args[0])
        except ValueError:
            raise ValueError(f"unknown phase {args[0]!r}; use one of {valid}") from None
        unknown = [s for s in args[1:] if s not in self.current.instruments]
        if unknown:
            raise ValueError(f"unknown symbols {unknown}")
        self.current.set_phase(phase, args[1:] or None)
        self.out.print(f"{self.current.id}: phase {phase.value}")

    def _fault(self, args: list[str]) -> None:
        if not args:
            raise ValueError("usage: fault KEY=VALUE [KEY=VALUE ...]; `faults` shows the keys")
        changes: dict[str, object] = {}
        for arg in args:
            key, sep, value = arg.partition("=")
            if not sep:
                raise ValueError(f"{arg!r} is not KEY=VALUE")
            changes[key] = [v for v in value.split(",") if v] if key == "refuse_logons" else value
        try:
            self.current.set_faults(**changes)
        except ValidationError as exc:
            raise ValueError("; ".join(explain(exc, FaultConfig))) from None
        self._faults([])

    def _faults(self, _: list[str]) -> None:
        config = self.current.faults.config
        for key, value in config.model_dump().items():
            self.out.print(f"  {key} = {value}")

    def _drop(self, _: list[str]) -> None:
        count = self.current.drop_connections()
        self.out.print(f"{self.current.id}: dropped {count} connection(s)")

    def _skip_seq(self, args: list[str]) -> None:
        if not args or not args[0].isdigit():
            raise ValueError("usage: skip-seq N [CLIENT]")
        self.current.skip_sequence(int(args[0]), args[1] if len(args) > 1 else None)
        self.out.print(f"{self.current.id}: next outgoing MsgSeqNum moved forward by {args[0]}")

    def _anchor(self, args: list[str]) -> None:
        if len(args) != 2:
            raise ValueError("usage: anchor SYMBOL PRICE")
        try:
            price = Decimal(args[1])
        except InvalidOperation:
            raise ValueError(f"{args[1]!r} is not a price") from None
        self.current.set_anchor(args[0], price)
        self.out.print(f"{self.current.id}: {args[0]} fair value now drifts toward {price}")

    def _stats(self, _: list[str]) -> None:
        self.out.print(stats_table(list(self.venues.values())))


def book_table(venue: Venue, symbol: str, depth: int) -> Table:
    book = venue.book(symbol, depth)
    table = Table(title=f"{venue.id} {symbol}", show_lines=False)
    for name in ("bid orders", "bid qty", "bid", "ask", "ask qty", "ask orders"):
        table.add_column(name, justify="right")
    bids, asks = book["bids"], book["asks"]
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else None
        a = asks[i] if i < len(asks) else None
        table.add_row(
            str(b[2]) if b else "",
            str(b[1]) if b else "",
            str(b[0]) if b else "",
            str(a[0]) if a else "",
            str(a[1]) if a else "",
            str(a[2]) if a else "",
        )
    return table


def stats_table(venues: list[Venue]) -> Table:
    table = Table(title="venues")
    for name in ("venue", "port", "logged on", "orders", "fills", "rejects", "cancels", "md msgs"):
        table.add_column(name, justify="left" if name in ("venue", "logged on") else "right")
    for venue in venues:
        s, logged_on, md_sent = venue.call(
            lambda v: (dict(v.stats), sorted(v.logged_on), v.md.messages_sent)
        )
        table.add_row(
            venue.id,
            str(venue.config.port),
            ", ".join(k.split("->")[1] for k in logged_on) or "-",
            str(s["orders"]),
            str(s["fills"]),
            str(s["rejects"]),
            str(s["cancels"]),
            str(md_sent),
        )
    return table
