"""The one place that owns quickfix engines: settings, guarded callbacks, start and stop.

What the Python bindings demand, and how this module meets it:

* A Python exception that escapes a callback ends the process from quickfix's own thread
  (``PyErr_Print(); Py_Exit(1)``) and leaves the counterparty believing the session is up.
  ``GuardedApplication`` runs every callback body inside a guard that records the error and
  carries on; only quickfix's own exceptions (``RejectLogon``, ``DoNotSend``, the field and
  tag errors that become session rejects) pass through, because quickfix expects them.
* A ``Message`` or ``SessionID`` handed to a callback must not be kept after it returns.
  Callbacks copy what they need (the message text, the session's name); sends use
  ``SessionID`` objects that Python created and owns.
* The ``Threaded*`` engines deadlocked under load; the plain ``SocketAcceptor`` and
  ``SocketInitiator`` did not, so those are the only ones used.
* Leaving the interpreter without ``stop()`` crashes, and stopping right after a logout has
  crashed too: ``FixEngine.stop`` logs every session out, waits for the logouts to settle,
  then stops.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import quickfix as fix

from fix_specs import spec_path

log = logging.getLogger("cmc.fix")

Settings = Mapping[str, str | int | bool | Path]

# quickfix runs its session timers once a second. A SocketAcceptor stopped less than about a
# tick after a session logged out segfaulted (its onStop closes the socket server while the
# acceptor thread may still be using it; upstream PR #740), and never once a full tick had
# passed with no client reconnecting. So an acceptor stops only this long after the last
# logout; the counterparties must be stopped first (tests and demos do).
ACCEPTOR_QUIET_S = 1.1


def session_key(sender: str, target: str) -> str:
    """How the project names a session: ``SENDER->TARGET`` from this side's point of view."""
    return f"{sender}->{target}"


def owned_session_id(sender: str, target: str, begin_string: str = "FIX.4.4") -> Any:
    """A ``SessionID`` that Python owns, safe to keep and to send on from any thread."""
    return fix.SessionID(begin_string, sender, target)


def key_of(session_id: Any) -> str:
    """Copy the name out of a callback's ``SessionID`` (which must not be kept).

    One call across the binding (``BEGIN:SENDER->TARGET``) instead of four: this runs for
    every message in and out, and each call costs about a microsecond with the GIL held.
    """
    return str(session_id.toString()).partition(":")[2]


def _setting_text(value: str | int | bool | Path) -> str:
    if isinstance(value, bool):
        return "Y" if value else "N"
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"a quickfix setting cannot contain a line break: {text!r}")
    return text


def build_settings(default: Settings, sessions: Iterable[Settings]) -> Any:
    """quickfix ``SessionSettings`` from plain mappings, written as the settings file would be."""
    lines = ["[DEFAULT]"] + [f"{k}={_setting_text(v)}" for k, v in default.items()]
    for session in sessions:
        lines.append("[SESSION]")
        lines.extend(f"{k}={_setting_text(v)}" for k, v in session.items())
    settings = fix.SessionSettings()
    settings.setFromString("\n".join(lines) + "\n")
    return settings


def common_defaults(
    store_dir: Path | None, *, heartbeat_s: int = 30
) -> dict[str, str | int | bool | Path]:
    """Settings every FIX 4.4 session of the project shares.

    ``NonStopSession`` keeps quickfix from resetting sequence numbers at a session-window edge
    (a ``StartTime == EndTime`` window resets them at the UTC date change); venues with real
    windows are scheduled by the project, not by quickfix. Timestamps carry microseconds.
    """
    settings: dict[str, str | int | bool | Path] = {
        "BeginString": "FIX.4.4",
        "NonStopSession": True,
        "HeartBtInt": heartbeat_s,
        "UseDataDictionary": True,
        "DataDictionary": spec_path("FIX44.xml"),
        "ValidateUserDefinedFields": False,
        "TimestampPrecision": 6,
        "SocketNodelay": True,
        "PersistMessages": True,
    }
    if store_dir is not None:
        store_dir.mkdir(parents=True, exist_ok=True)
        settings["FileStorePath"] = store_dir
    return settings


_thread_state = threading.local()


def keep_thread_state() -> None:
    """Keep the calling quickfix thread's Python thread state for the thread's lifetime.

    The bindings enter Python from quickfix's own threads with ``PyGILState_Ensure`` and
    leave with ``PyGILState_Release``, so a thread Python did not start got a fresh thread
    state for every callback and lost it on return (strace of a busy gateway: an mmap, an
    munmap and a gettid for each message received). One extra ``Ensure``, never released,
    keeps the first one; the thread's callbacks then only take and drop the GIL. A
    ``threading.local`` lives in the thread state, so it is empty exactly until then.
    """
    if not getattr(_thread_state, "kept", False):
        ctypes.pythonapi.PyGILState_Ensure()
        _thread_state.kept = True


class EngineStartError(RuntimeError):
    """quickfix could not start: a port in use, a bad setting, an unreadable store."""


class GuardedApplication(fix.Application):  # type: ignore[misc]
    """A quickfix ``Application`` whose callbacks can never take the process down.

    Subclasses override the ``on_*`` methods; they receive the copied session key and, for
    messages, the live ``Message`` (to read, not to keep) and return nothing. Errors are
    logged with their traceback and counted in ``callback_errors``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.callback_errors = 0
        self.last_logout = 0.0  # time.monotonic() of the latest onLogout, for FixEngine.stop
        # toApp runs for every message sent: skip it entirely when nobody listens
        self._hears_to_app = type(self).on_to_app is not GuardedApplication.on_to_app
        # Each callback's SessionID is its Session's own member, at one address for the
        # session's life; onCreate names it once (see ``_key``).
        self._keys: dict[int, str] = {}

    def _guard(self, where: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except fix.FIXException:
            raise
        except BaseException:
            self.callback_errors += 1
            log.exception("error in quickfix callback %s (session kept up)", where)

    def _key(self, session_id: Any) -> str:
        """The session's name without a call into quickfix.

        Every call across the binding lets go of the GIL and takes it back, and on a busy
        gateway another thread is always waiting for it: a ``toString`` per callback was a
        handover of the GIL per message. The address is read from the SWIG pointer instead.
        """
        key = self._keys.get(int(session_id.this))
        return key if key is not None else key_of(session_id)

    # quickfix's interface -------------------------------------------------------------

    def onCreate(self, session_id: Any) -> None:
        key = key_of(session_id)
        self._keys[int(session_id.this)] = key  # a session made at a freed one's address too
        self._guard("onCreate", self.on_create, key)

    def onLogon(self, session_id: Any) -> None:
        self._guard("onLogon", self.on_logon, self._key(session_id))

    def onLogout(self, session_id: Any) -> None:
        self.last_logout = time.monotonic()
        self._guard("onLogout", self.on_logout, self._key(session_id))

    def toAdmin(self, message: Any, session_id: Any) -> None:
        keep_thread_state()
        self._guard("toAdmin", self.on_to_admin, message, self._key(session_id))

    def fromAdmin(self, message: Any, session_id: Any) -> None:
        keep_thread_state()
        self._guard("fromAdmin", self.on_from_admin, message, self._key(session_id))

    def toApp(self, message: Any, session_id: Any) -> None:
        if self._hears_to_app:
            self._guard("toApp", self.on_to_app, message, self._key(session_id))

    def fromApp(self, message: Any, session_id: Any) -> None:
        keep_thread_state()
        self._guard("fromApp", self.on_from_app, message, self._key(session_id))

    # what subclasses override ---------------------------------------------------------

    def on_create(self, session: str) -> None:
        pass

    def on_logon(self, session: str) -> None:
        pass

    def on_logout(self, session: str) -> None:
        pass

    def on_to_admin(self, message: Any, session: str) -> None:
        pass

    def on_from_admin(self, message: Any, session: str) -> None:
        pass

    def on_to_app(self, message: Any, session: str) -> None:
        pass

    def on_from_app(self, message: Any, session: str) -> None:
        pass


class FixEngine:
    """A started-and-stopped-safely quickfix acceptor or initiator."""

    def __init__(
        self,
        application: GuardedApplication,
        settings: Any,
        *,
        acceptor: bool,
        file_store: bool,
        log_dir: Path | None = None,
    ) -> None:
        self.application = application
        self.settings = settings
        store = fix.FileStoreFactory(settings) if file_store else fix.MemoryStoreFactory()
        log_factory = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            log_factory = fix.FileLogFactory(str(log_dir))
        cls = fix.SocketAcceptor if acceptor else fix.SocketInitiator
        self._engine: Any = cls(application, store, settings, log_factory)
        self._acceptor = acceptor
        self._lock = threading.Lock()
        self._started = False

    def session_ids(self) -> list[Any]:
        return list(self.settings.getSessions())

    def start(self) -> None:
        with self._lock:
            if self._engine is None:
                raise RuntimeError("this engine was stopped; create a new FixEngine to start again")
            if not self._started:
                try:
                    self._engine.start()
                except (fix.RuntimeError, fix.ConfigError) as exc:
                    raise EngineStartError(str(exc).removeprefix("Runtime error: ")) from None
                self._started = True

    def logged_on(self) -> list[str]:
        out = []
        for sid in self.session_ids():
            session = fix.Session.lookupSession(sid)
            if session is not None and session.isLoggedOn():
                out.append(key_of(sid))
        return out

    def log_out_all(self, reason: str, wait_s: float = 3.0) -> list[str]:
        """Send Logout on every logged-on session and wait for the answers.

        Returns the sessions still logged on when ``wait_s`` ran out.
        """
        for sid in self.session_ids():
            session = fix.Session.lookupSession(sid)
            if session is not None and session.isLoggedOn():
                session.logout(reason)
        deadline = time.monotonic() + wait_s
        while self.logged_on() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.logged_on()

    def retire(self, reason: str = "shutting down", wait_s: float = 3.0) -> list[str]:
        """Log every session out and leave the engine running, untouched, until the process
        ends through ``exit_process``. Returns the sessions still logged on.

        For acceptors: quickfix 1.16's ``Acceptor::stop()`` closes its socket server from
        the calling thread while the acceptor thread may still be using it (upstream PR
        #740); it crashed about one stop in four with a client connected, and now and then
        even with none. A retired acceptor never takes that path. It keeps its port and
        its sessions registered until the process ends, so a later engine in the same
        process must use other CompIDs. Sequence numbers are already in the FileStore.
        """
        with self._lock:
            still = self.log_out_all(reason, wait_s)
            self._started = False
            _retired.append(self)
            return still

    def stop(
        self, *, reason: str = "shutting down", settle_s: float = 0.25, wait_s: float = 3.0
    ) -> None:
        """Log out, wait for the logouts to complete, let the engine settle, then stop."""
        with self._lock:
            if not self._started:
                return
            self._started = False
            self.log_out_all(reason, wait_s)
            time.sleep(settle_s)
            if self._acceptor:
                quiet = self.application.last_logout + ACCEPTOR_QUIET_S - time.monotonic()
                if quiet > 0:
                    time.sleep(quiet)
            self._engine.stop()
            # quickfix registers every Session in a process-wide table keyed by SessionID and
            # unregisters it only when the engine object is destroyed. A stopped engine that
            # lingers (Venue and FixClient sit in reference cycles, so Python frees them only
            # when the garbage collector runs) would capture the sessions of the next engine
            # with the same CompIDs: that one never logs on, and when the old engine is
            # finally freed the sessions in use are deleted under it (segfault). Destroy it now.
            self._engine = None


_retired: list[FixEngine] = []


def exit_process(code: int) -> NoReturn:
    """End the process without the interpreter's teardown, which would destroy (and so
    stop) any retired acceptor: see ``FixEngine.retire``."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def send_text(text: str, session_id: Any, data_dictionary: Any) -> bool:
    """Send a message composed by ``fixwire.encode`` on a session. False if it could not go.

    A session that exists but is logged out still takes the message: quickfix stores it
    under the next sequence number and the counterparty recovers it by resend.
    """
    try:
        return bool(fix.Session.sendToTarget(fix.Message(text, data_dictionary, False), session_id))
    except fix.SessionNotFound:
        log.warning("send on unknown session %s dropped", session_id.toString())
        return False


_dictionaries: dict[str, Any] = {}
_dictionaries_lock = threading.Lock()


def data_dictionary(name: str = "FIX44.xml") -> Any:
    """A shared, read-only quickfix ``DataDictionary`` (parsing the XML takes a while)."""
    with _dictionaries_lock:
        dd = _dictionaries.get(name)
        if dd is None:
            dd = _dictionaries[name] = fix.DataDictionary(str(spec_path(name)))
        return dd
