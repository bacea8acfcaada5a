"""The gateway's composition root: configuration in, a running gateway out.

Order of life: the receipt writer (its own process) first, so that nothing happens without
a trail; then the OMS thread; then the FIX sessions, whose callbacks post to the OMS.
Stopping goes the other way round, so that the last receipts are written. Lines with TLS
connect through a tunnel that starts before the sessions and stops after them; venues with
a schedule are logged on and off by a runner that starts just before the sessions (so that
none logs on outside its windows) and stops before them. The admin API,
when configured, is checked first (no token, no gateway), listens last and stops first.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from datetime import date
from pathlib import Path

from oms.audit.reconcile import FixLogSpec
from oms.client_messages import ClientMessage, DropCopy
from oms.commands import Command, SwitchLine
from oms.core import Oms
from oms.events import LineRole
from oms.receipt_writer import ReceiptWriter, ReceiptWriterError
from oms.receipts import Receipt
from oms.recovery import Snapshot
from oms.risk import RiskEngine
from sessions.admin_api import AdminServer
from sessions.client_link import ClientSessions
from sessions.dashboard import RecentReceipts
from sessions.gateway_config import GatewayConfig
from sessions.schedule import Action, Schedule, ScheduleRunner
from sessions.stage import StageControl, StageError
from sessions.tls_tunnel import gateway_tunnel
from sessions.venue_link import GatewaySessions

log = logging.getLogger("cmc.gateway")


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        state = config.store_dir.parent
        self.admin = None if config.admin is None else AdminServer(self, config.admin, state)
        _make_sqlite_dir(config.receipts_url)
        fix_log_dir = config.fix_log_path()
        self.receipts = ReceiptWriter(
            config.receipts_url,
            spool_dir=config.receipt_spool_path(),
            spool_max_bytes=config.receipt_spool_max_bytes,
            fix_log=FixLogSpec(fix_log_dir, session_map(config)),
        )
        # Every receipt goes to the writer through this tee, which keeps the latest few (and
        # counts rejects) for the dashboard, so that the page never reads the database.
        self.recent_receipts = RecentReceipts(self.receipts.append)
        # Shadow, canary or live (README: Delivery stages); in shadow, receipts of paper
        # orders take kinds of their own on their way to the tee.
        self.stage = StageControl(config)
        self.oms = Oms(
            pairs=config.pair_specs(),
            send=self._send,
            record=self.stage.tee(self.recent_receipts.record),
            risk=RiskEngine(config.risk, config.instruments()),
            why_unsent=self._why_unsent,
            emit=self._to_clients,
        )
        self.stage.attach(self.oms)
        self.clients = (
            None
            if config.client_acceptor is None
            else ClientSessions(
                config.client_acceptor, state / "client-store", self.oms.post, fix_log_dir
            )
        )
        # Lines with a `tls` table connect through the tunnel's local ports (bound here).
        self.tunnel, endpoints = gateway_tunnel(config)
        self.sessions = GatewaySessions(config, self.oms.post, endpoints, log_dir=fix_log_dir)
        self.schedule = self._schedule_runner()
        self._started = False
        self.recovered: Snapshot | None = None  # what the receipt store gave back at start

    def _schedule_runner(self) -> ScheduleRunner | None:
        """Venues with a `schedule` are logged on and off by it; the others stay logged on."""
        schedules = {v.id: Schedule(v.schedule) for v in self.config.venues if v.schedule}
        if not schedules:
            return None
        return ScheduleRunner(
            schedules,
            self.sessions,
            end_of_day=[self._trading_report],
            on_action=self._schedule_receipt,
        )

    def _schedule_receipt(self, action: Action) -> None:
        self.oms.call(
            lambda oms: oms.record(
                Receipt.of(
                    "decision.schedule",
                    ts_ns=oms.now(),
                    venue=action.venue,
                    verdict=action.what,
                    reason=action.detail,
                )
            )
        )

    def _trading_report(self, venue: str, trading_day: date, close_ns: int) -> None:
        """End of a venue's trading day: what each of its pairs did, in the log."""
        from sessions.trading_report import summarise

        summaries = self.oms.call(summarise)
        for pair in self.config.pairs:
            s = summaries.get(pair.id)
            if s is not None and venue in (pair.inner.venue, pair.outer.venue):
                log.info(
                    "%s trading day %s ended: pair %s %d trades (%d entries, %d closes), "
                    "%d fills, position %d, imbalance %s",
                    venue,
                    trading_day,
                    pair.id,
                    s.trades,
                    s.entries,
                    s.closes,
                    s.fills,
                    s.position,
                    s.imbalance,
                )

    def _to_clients(self, message: ClientMessage) -> None:
        """Client reports and drop copies, from the OMS thread (set up before the acceptor)."""
        if self.clients is not None:
            if isinstance(message, DropCopy) and self.stage.shadow_on:
                return  # a drop copy is of a real execution; a paper fill is none
            self.clients.send(message)

    def _send(self, command: Command) -> LineRole | None:
        """The OMS needs a sender before the sessions exist (they post to the OMS).

        Nothing goes out while receipts cannot be kept (store down and spool full, writer
        gone): no trading without an audit trail.
        """
        if self.receipts.halted is not None:
            return None
        stage = self.stage
        if stage.shadow_on and not isinstance(command, SwitchLine):  # orders go on paper
            link = self.sessions.links.get(command.venue)
            return stage.shadow.send(command, None if link is None else link.active)
        return self.sessions.send(command)

    def _why_unsent(self, venue: str) -> str:
        halted = self.receipts.halted
        if halted is not None:
            return f"receipts cannot be kept ({halted}): no trading without an audit trail"
        return f"no line to {venue} is logged on"

    def start(self) -> None:
        if self.admin is not None:
            self.admin.bind()
        self._await_earlier_writer()
        self.receipts.start()
        self._note_writer()
        self.recovered = self._recover()  # after the writer's reconciliation with the FIX log
        try:
            self.stage.started(self.oms, self.recovered)
        except StageError:
            self.receipts.close()
            raise
        self.oms.start()
        if self.tunnel is not None:
            self.tunnel.start()
        if self.schedule is not None:  # before the sessions: none logs on out of its window
            self.schedule.start()
        self.sessions.start()
        if self.clients is not None:  # after the venues: a client's order has a line to go to
            self.clients.start()
        # Everything built so far lives as long as the gateway: move it out of the garbage
        # collector's way, so that a collection only scans what trading creates.
        gc.freeze()
        self._started = True
        if self.admin is not None:  # last: operators act on a gateway that is all there
            self.admin.start()

    def _recover(self) -> Snapshot:
        """Rebuild the orders, pairs and positions the receipt store proves, and hand them to
        the OMS before its thread or any session starts: a gateway killed mid-trading picks
        up where its receipts (and quickfix's log, through the writer's reconciliation)
        leave it, and a fresh store gives an empty OMS."""
        from oms.recovery import canary_counted, recover
        from sessions.codec import decode

        config = self.config
        snapshot = recover(config.receipts_url, config.pair_specs(), decode)
        self.oms.restore(snapshot, {v.id: len(v.lines) for v in config.venues})
        canary = self.stage.canary
        if canary is not None:  # today's canary figures, whatever the stage starts in
            now = self.oms.now()
            canary.resume(canary_counted(config.receipts_url, canary.day_start_ns(now)), now)
        if not snapshot.empty:
            stats = snapshot.stats
            log.warning(
                "recovered from the receipt store: %d order(s), %d working (reconciled with "
                "their venues at the first logons), %d fill(s), %d message(s) only the FIX log "
                "had%s",
                stats.orders,
                len(snapshot.working),
                stats.fills,
                stats.unrecorded,
                f"; {len(stats.problems)} receipt(s) not applied" if stats.problems else "",
            )
        return snapshot

    def _await_earlier_writer(self) -> None:
        """A gateway killed outright leaves its receipt writer process behind for a moment,
        keeping what it was sent; a new writer must not append to the store beside it (two
        writers would number receipts alike). Wait for it to end, within reason."""
        path = self.config.store_dir.parent / WRITER_PID_FILE
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        deadline = time.monotonic() + EARLIER_WRITER_WAIT_S
        while _writer_alive(pid):
            if time.monotonic() > deadline:
                raise ReceiptWriterError(
                    f"the receipt writer of an earlier run (pid {pid}) is still running after "
                    f"{EARLIER_WRITER_WAIT_S:g} s; stop it before starting the gateway again"
                )
            time.sleep(0.02)

    def _note_writer(self) -> None:
        path = self.config.store_dir.parent / WRITER_PID_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{self.receipts.pid}\n")

    def wait_ready(self, timeout_s: float = 15.0) -> bool:
        """Whether every venue has an active line and a book for every instrument."""
        deadline = time.monotonic() + timeout_s
        venues = [v for v in self.config.venues if v.id not in self.scheduled_out()]
        wanted = {(v.id, i.symbol) for v in venues for i in v.instruments}
        while time.monotonic() < deadline:
            lines = {v.id: self.sessions.active_lines()[v.id] for v in venues}
            books = self.oms.call(
                lambda oms: {k for k, b in oms.market.books.items() if b.bids or b.asks}
            )
            if all(lines.values()) and wanted <= books:
                return True
            time.sleep(0.05)
        return False

    def scheduled_out(self) -> set[str]:
        """Venues whose schedule keeps them logged out now."""
        if self.schedule is None:
            return set()
        now = self.schedule.clock.now_ns()
        return {v for v, s in self.schedule.schedules.items() if not s.wanted_at(now)[0]}

    def stop(self) -> None:
        if self.admin is not None:
            self.admin.stop()
        if not self._started:
            return
        self._started = False
        if self.clients is not None:  # first: no client order arrives for a stopping OMS
            self.clients.retire()
        if self.schedule is not None:
            self.schedule.stop()
        self.sessions.stop()
        if self.tunnel is not None:
            self.tunnel.stop()
        self.oms.stop()
        self.receipts.close()


WRITER_PID_FILE = "receipt-writer.pid"
"""Beside ``admin.json``: the process id of the gateway's receipt writer."""

EARLIER_WRITER_WAIT_S = 15.0


def _writer_alive(pid: int) -> bool:
    """Whether ``pid`` is still a receipt writer process (a spawned multiprocessing child);
    a process id since reused by something else, or a zombie, is not."""
    if pid == os.getpid():
        return False
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").is_dir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            return state not in ("Z", "X") and b"multiprocessing" in (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
