"""``cmc trade``: type orders at a venue and watch the execution reports come back."""

from __future__ import annotations

import threading
import time
from decimal import Decimal, InvalidOperation

from rich.console import Console
from rich.table import Table

from oms.enums import Side, TimeInForce
from sessions.simulator.client import BookView, FixClient, Received
from sessions.simulator.line_console import LineConsole

HELP = """\
  buy|sell SYMBOL QTY @ PRICE [day|gtc|ioc|fok]   a limit order (DAY unless told)
  buy|sell SYMBOL QTY market                       a market order
  cancel CLORDID                                   cancel one of your orders
  replace CLORDID QTY @ PRICE                      change its total quantity and price
  status CLORDID                                   ask the venue for its status
  md SYMBOL [DEPTH]                                subscribe to market data
  book SYMBOL                                      the book rebuilt from market data
  orders                                           your orders as last reported
  quit"""

EXEC_TYPES = {
    "0": "New",
    "4": "Canceled",
    "5": "Replaced",
    "6": "PendingCancel",
    "8": "Rejected",
    "C": "Expired",
    "E": "PendingReplace",
    "F": "Trade",
    "I": "Status",
}
ORD_STATUS = {
    "0": "New",
    "1": "PartiallyFilled",
    "2": "Filled",
    "4": "Canceled",
    "6": "PendingCancel",
    "8": "Rejected",
    "C": "Expired",
    "E": "PendingReplace",
}
TIFS = {
    "day": TimeInForce.DAY,
    "gtc": TimeInForce.GTC,
    "ioc": TimeInForce.IOC,
    "fok": TimeInForce.FOK,
}


def describe(msg: Received) -> str:
    """One readable line for a message from the venue."""
    t = msg.tags
    if msg.msg_type == "8":
        line = (
            f"ER {EXEC_TYPES.get(t.get(150, ''), t.get(150))}: {t.get(11)} "
            f"{'BUY' if t.get(54) == '1' else 'SELL'} {t.get(38, '')} {t.get(55)}"
            f" status={ORD_STATUS.get(t.get(39, ''), t.get(39))} cum={t.get(14)} "
            f"leaves={t.get(151)} avg={t.get(6)}"
        )
        if t.get(150) == "F":
            line += f" last={t.get(32)}@{t.get(31)}"
        if 58 in t:
            line += f" ({t[58]})"
        return line
    if msg.msg_type == "9":
        return f"CANCEL REJECT {t.get(11)} for {t.get(41)}: {t.get(58)} (CxlRejReason {t.get(102)})"
    if msg.msg_type == "Y":
        return f"MARKET DATA REJECT {t.get(262)}: {t.get(58)}"
    if msg.msg_type == "3":
        return f"SESSION REJECT of seq {t.get(45)}: {t.get(58)}"
    if msg.msg_type == "j":
        return f"BUSINESS REJECT: {t.get(58)}"
    if msg.msg_type == "5":
        return f"LOGOUT{': ' + t[58] if 58 in t else ''}"
    return f"{msg.msg_type}: {msg.fields}"


class TradeConsole(LineConsole):
    def __init__(self, client: FixClient, console: Console) -> None:
        self.client = client
        super().__init__(
            console,
            {
                "buy": lambda args: self._order(Side.BUY, args),
                "sell": lambda args: self._order(Side.SELL, args),
                "cancel": self._cancel,
                "replace": self._replace,
                "status": self._status,
                "md": self._md,
                "book": self._book,
                "orders": lambda _: self._orders(),
                "help": lambda _: self.out.print(HELP, highlight=False, markup=False),
            },
        )
        self._mark = 0
        self.orders: dict[str, tuple[str, Side]] = {}
        self.books: dict[str, BookView] = {}
        self._seen = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._printer, daemon=True).start()

    def _printer(self) -> None:
        while True:
            self.drain(0.2)

    def drain(self, wait_s: float) -> None:
        """Print what arrived since last time, waiting up to ``wait_s`` for something."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                fresh = self.client.received[self._seen :]
                self._seen += len(fresh)
                for msg in fresh:
                    self._show(msg)
            if fresh or time.monotonic() >= deadline:
                return
            time.sleep(0.02)

    def _show(self, msg: Received) -> None:
        if msg.msg_type in ("W", "X"):
            for book in self.books.values():
                book.apply(msg)
            if msg.msg_type == "W":
                self.out.print(
                    f"snapshot {msg.get(55)}: best bid "
                    f"{self.books[msg[55]].best_bid()} / best ask {self.books[msg[55]].best_ask()}"
                )
            return
        if msg.admin and msg.msg_type not in ("3", "5"):
            return
        self.out.print(describe(msg), highlight=False, markup=False, soft_wrap=True)

    def execute(self, line: str) -> bool:
        self._mark = len(self.client.received)
        return super().execute(line)

    def after(self, name: str) -> None:
        if name in ("buy", "sell", "cancel", "replace", "status", "md"):
            self._await_answer(self._mark)

    def _status(self, args: list[str]) -> None:
        clordid = self._known(args)
        symbol, side = self.orders[clordid]
        self.client.status(clordid, symbol, side)

    def _md(self, args: list[str]) -> None:
        if not args:
            raise ValueError("usage: md SYMBOL [DEPTH]")
        self.books.setdefault(args[0], BookView(args[0]))
        self.client.subscribe([args[0]], depth=int(args[1]) if len(args) > 1 else 5)

    def _await_answer(self, mark: int, timeout: float = 2.0) -> None:
        """Wait for the venue's first answer, so that a script's next line sees it."""
        try:
            self.client.wait_for(lambda m: not m.admin or m.msg_type == "3", timeout, start=mark)
        except TimeoutError:
            self.out.print(f"(no answer from the venue within {timeout:.0f} s)")
        self.drain(0.05)

    def _order(self, side: Side, args: list[str]) -> None:
        usage = (
            "usage: buy|sell SYMBOL QTY @ PRICE [day|gtc|ioc|fok]  or  buy|sell SYMBOL QTY market"
        )
        if len(args) < 3 or not args[1].isdigit():
            raise ValueError(usage)
        symbol, qty = args[0], int(args[1])
        rest = [a.lower() for a in args[2:]]
        price: Decimal | None
        if rest[0] == "market":
            price, tif = None, TimeInForce.IOC
        elif rest[0] == "@" and len(rest) >= 2:
            price = _price(rest[1])
            chosen = TIFS.get(rest[2]) if len(rest) > 2 else TimeInForce.DAY
            if chosen is None:
                raise ValueError(f"unknown time in force {rest[2]!r}; use day, gtc, ioc or fok")
            tif = chosen
        else:
            raise ValueError(usage)
        clordid = self.client.new_order(symbol, side, qty, price, tif)
        self.orders[clordid] = (symbol, side)
        self.out.print(f"sent {clordid}")

    def _known(self, args: list[str]) -> str:
        if not args or args[0] not in self.orders:
            raise ValueError(
                f"unknown ClOrdID; yours are: {', '.join(self.orders) or '(none yet)'}"
            )
        return args[0]

    def _cancel(self, args: list[str]) -> None:
        clordid = self._known(args)
        symbol, side = self.orders[clordid]
        new_id = self.client.cancel(clordid, symbol, side)
        self.orders[new_id] = (symbol, side)
        self.out.print(f"sent cancel {new_id}")

    def _replace(self, args: list[str]) -> None:
        if len(args) != 4 or args[2] != "@" or not args[1].isdigit():
            raise ValueError("usage: replace CLORDID QTY @ PRICE")
        clordid = self._known(args)
        symbol, side = self.orders[clordid]
        new_id = self.client.replace(clordid, symbol, side, int(args[1]), _price(args[3]))
        self.orders[new_id] = (symbol, side)
        self.out.print(f"sent replace {new_id}")

    def _book(self, args: list[str]) -> None:
        if not args or args[0] not in self.books:
            raise ValueError("subscribe first: md SYMBOL")
        top = self.books[args[0]].top(5)
        table = Table(title=args[0])
        for name in ("bid qty", "bid", "ask", "ask qty"):
            table.add_column(name, justify="right")
        bids, asks = top["bids"], top["asks"]
        for i in range(max(len(bids), len(asks))):
            b = bids[i] if i < len(bids) else None
            a = asks[i] if i < len(asks) else None
            table.add_row(
                str(b[1]) if b else "",
                str(b[0]) if b else "",
                str(a[0]) if a else "",
                str(a[1]) if a else "",
            )
        self.out.print(table)

    def _orders(self) -> None:
        table = Table(title="orders")
        for name in ("ClOrdID", "symbol", "side", "status", "cum", "leaves", "avg"):
            table.add_column(name)
        for clordid in self.orders:
            reports = self.client.reports(clordid)
            if reports and reports[-1].get(11) == clordid:
                t = reports[-1].tags
                table.add_row(
                    clordid,
                    t.get(55, ""),
                    "BUY" if t.get(54) == "1" else "SELL",
                    ORD_STATUS.get(t.get(39, ""), ""),
                    t.get(14, ""),
                    t.get(151, ""),
                    t.get(6, ""),
                )
        self.out.print(table)


def _price(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a price") from None
