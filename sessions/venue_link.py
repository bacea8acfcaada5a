"""The gateway's FIX sessions to the venues: one initiator session per venue line.

Every line of every venue is a session of one non-threaded ``SocketInitiator``. Both lines
of a venue stay logged on when the venue allows it, so the backup is a hot standby: if the
primary drops, orders go out on the backup at once, with no logon to wait for. Which line
is active, and every change of it, is published to the OMS as ``LineStateChanged``. (When
to switch for reasons other than a lost line, such as latency or rejects, is policy for
later; here the link only knows which lines are up.)

The callbacks decode and post; market data is subscribed on the active line as soon as it
is known, and again on the other line after a switch.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oms.clock import now_ns
from oms.commands import Command
from oms.events import LineRole, LineState, LineStateChanged, MarketDataReceived
from sessions.codec import (
    Decoded,
    DecodeError,
    decode,
    encode_command,
    market_data_cancel,
    market_data_request,
)
from sessions.fixengine import (
    FixEngine,
    GuardedApplication,
    build_settings,
    common_defaults,
    data_dictionary,
    owned_session_id,
    send_text,
    session_key,
)
from sessions.gateway_config import GatewayConfig, GatewayVenue, LineConfig

log = logging.getLogger("cmc.sessions")

Post = Callable[[Decoded | LineStateChanged], None]


@dataclass
class Line:
    venue: str
    config: LineConfig
    session_id: Any
    logged_on: bool = False
    md_req_id: str | None = None

    @property
    def role(self) -> LineRole:
        return self.config.role

    @property
    def key(self) -> str:
        return session_key(self.config.sender_comp_id, self.config.target_comp_id)


class VenueLink:
    """The lines of one venue and which of them orders go out on."""

    def __init__(self, venue: GatewayVenue) -> None:
        self.venue = venue
        self.lines = {
            c.role: Line(venue.id, c, owned_session_id(c.sender_comp_id, c.target_comp_id))
            for c in venue.lines
        }
        self.active: LineRole | None = None

    def choose_active(self) -> LineRole | None:
        """The primary when it is up, else the backup when it is up, else none."""
        for role in (LineRole.PRIMARY, LineRole.BACKUP):
            line = self.lines.get(role)
            if line is not None and line.logged_on:
                return role
        return None


class GatewayApplication(GuardedApplication):
    def __init__(self, sessions: GatewaySessions) -> None:
        super().__init__()
        self._sessions = sessions

    def on_logon(self, session: str) -> None:
        self._sessions._line_changed(session, logged_on=True)

    def on_logout(self, session: str) -> None:
        self._sessions._line_changed(session, logged_on=False)

    def on_from_app(self, message: Any, session: str) -> None:
        self._sessions._received(message.toString(), session)

    def on_from_admin(self, message: Any, session: str) -> None:
        if message.getHeader().getField(35) == "3":
            self._sessions._received(message.toString(), session)


class GatewaySessions:
    def __init__(self, config: GatewayConfig, post: Post) -> None:
        self._post = post
        self.links = {v.id: VenueLink(v) for v in config.venues}
        self._by_key: dict[str, tuple[VenueLink, Line]] = {
            line.key: (link, line) for link in self.links.values() for line in link.lines.values()
        }
        self._lock = threading.Lock()  # guards line state between quickfix's callbacks
        self._md_ids = itertools.count(1)
        self._dd = data_dictionary()
        default = common_defaults(config.store_dir, heartbeat_s=config.heartbeat_s)
        default |= {
            "ConnectionType": "initiator",
            "ReconnectInterval": config.reconnect_s,
            # Sequence numbers stay in the FileStore, but not the messages: a venue's resend
            # request is answered with a gap fill, never by replaying an old order, which a
            # venue could execute late. Every message sent is in the receipt store instead.
            # (Writing each body to the store also cost 40-60 µs per order on the hot path.)
            "PersistMessages": False,
        }
        sessions: list[dict[str, str | int | bool | Path]] = [
            {
                "SenderCompID": line.config.sender_comp_id,
                "TargetCompID": line.config.target_comp_id,
                "SocketConnectHost": line.config.host,
                "SocketConnectPort": line.config.port,
            }
            for link in self.links.values()
            for line in link.lines.values()
        ]
        self.application = GatewayApplication(self)
        self._engine = FixEngine(
            self.application, build_settings(default, sessions), acceptor=False, file_store=True
        )

    def start(self) -> None:
        self._engine.start()

    def stop(self) -> None:
        self._engine.stop(reason="gateway shutting down")

    def send(self, command: Command) -> bool:
        """Send on the venue's active line. False when no line of the venue is up.

        Runs on the OMS thread: the text is built here and quickfix is called once.
        """
        link = self.links.get(command.venue)
        if link is None or link.active is None:
            return False
        line = link.lines[link.active]
        return send_text(encode_command(command), line.session_id, self._dd)

    def active_lines(self) -> dict[str, LineRole | None]:
        return {venue: link.active for venue, link in self.links.items()}

    # -- quickfix's thread ----------------------------------------------------------------

    def _received(self, text: str, session: str) -> None:
        recv_ns = now_ns()
        found = self._by_key.get(session)
        if found is None:
            return
        link, line = found
        try:
            event = decode(text, link.venue.id, line.role, recv_ns)
        except (DecodeError, KeyError, ValueError) as exc:
            log.error(
                "%s %s: cannot use message (%s): %s",
                link.venue.id,
                line.role.value,
                exc,
                text.replace("\x01", "|"),
            )
            return
        if isinstance(event, MarketDataReceived) and link.active is not line.role:
            return  # a line that is no longer active may still stream until unsubscribed
        if event is not None:
            self._post(event)

    def _line_changed(self, session: str, *, logged_on: bool) -> None:
        found = self._by_key.get(session)
        if found is None:
            return
        link, line = found
        with self._lock:
            line.logged_on = logged_on
            before = link.active
            link.active = link.choose_active()
            switched = link.active != before
        log.info(
            "%s %s line %s; active line: %s",
            link.venue.id,
            line.role.value,
            "logged on" if logged_on else "logged out",
            link.active.value if link.active else "none",
        )
        if switched and before is not None and link.lines[before].logged_on:
            self._unsubscribe(link.lines[before])
        if switched and link.active is not None:
            self._subscribe(link, link.lines[link.active])
        self._post(
            LineStateChanged(
                venue=link.venue.id,
                line=line.role,
                state=LineState.LOGGED_ON if logged_on else LineState.LOGGED_OUT,
                active=link.active,
                recv_ns=now_ns(),
            )
        )

    def _subscribe(self, link: VenueLink, line: Line) -> None:
        symbols = [i.symbol for i in link.venue.instruments]
        line.md_req_id = f"{link.venue.id}-{line.role.value}-{next(self._md_ids)}"
        text = market_data_request(line.md_req_id, symbols, link.venue.market_data_depth)
        send_text(text, line.session_id, self._dd)

    def _unsubscribe(self, line: Line) -> None:
        if line.md_req_id is not None:
            send_text(market_data_cancel(line.md_req_id), line.session_id, self._dd)
            line.md_req_id = None
