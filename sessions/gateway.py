"""The gateway's composition root: configuration in, a running gateway out.

Order of life: the receipt writer (its own process) first, so that nothing happens without
a trail; then the OMS thread; then the FIX sessions, whose callbacks post to the OMS.
Stopping goes the other way round, so that the last receipts are written.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

from oms.audit.reconcile import FixLogSpec
from oms.commands import Command
from oms.core import Oms
from oms.receipt_writer import ReceiptWriter
from sessions.gateway_config import GatewayConfig
from sessions.venue_link import GatewaySessions

log = logging.getLogger("cmc.gateway")


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        _make_sqlite_dir(config.receipts_url)
        state = config.store_dir.parent
        self.receipts = ReceiptWriter(
            config.receipts_url,
            spool_dir=state / "receipt-spool",
            fix_log=FixLogSpec(state / "fixlog", session_map(config)),
        )
        self.oms = Oms(
            pairs=config.pair_specs(),
            send=self._send,
            record=self.receipts.append,
        )
        self.sessions = GatewaySessions(config, self.oms.post)
        self._started = False

    def _send(self, command: Command) -> bool:
        """The OMS needs a sender before the sessions exist (they post to the OMS).

        Nothing goes out while receipts cannot be kept (store down and spool full, writer
        gone): no trading without an audit trail.
        """
        if self.receipts.halted is not None:
            return False
        return self.sessions.send(command)

    def start(self) -> None:
        self.receipts.start()
        self.oms.start()
        self.sessions.start()
        # Everything built so far lives as long as the gateway: move it out of the garbage
        # collector's way, so that a collection only scans what trading creates.
        gc.freeze()
        self._started = True

    def wait_ready(self, timeout_s: float = 15.0) -> bool:
        """Whether every venue has an active line and a book for every instrument."""
        deadline = time.monotonic() + timeout_s
        wanted = {(v.id, i.symbol) for v in self.config.venues for i in v.instruments}
        while time.monotonic() < deadline:
            lines = self.sessions.active_lines()
            books = self.oms.call(
                lambda oms: {k for k, b in oms.market.books.items() if b.bids or b.asks}
            )
            if all(lines.values()) and wanted <= books:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.sessions.stop()
        self.oms.stop()
        self.receipts.close()


def _make_sqlite_dir(url: str) -> None:
    """SQLite creates the file but not its directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)


def session_map(config: GatewayConfig) -> dict[tuple[str, str], tuple[str, str]]:
    """(our CompID, the venue's CompID) -> (venue id, line role) for every gateway line:
    which FIX log belongs to which venue and line, for reconciling receipts with it."""
    return {
        (line.sender_comp_id, line.target_comp_id): (venue.id, line.role.value)
        for venue in config.venues
        for line in venue.lines
    }
