"""A TCP relay on loopback whose outage can be switched: what a test or a soak puts between
the gateway and its receipt database to cut it mid-run and restore it.

Two kinds of outage. ``cut()`` is one both ends notice: the listener closes (new connections
are refused) and every relayed connection is reset, on both sides, as when the server or
the path to it goes down hard. ``freeze()`` is one nobody is told of, as in a network
partition: nothing passes either way, nothing is reset, new connections get no answer.
``open()`` restores either; connections frozen stay frozen, each end waiting on the other
(the server's end until it is ended from the server: its keepalive, or an administrator).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class _Opening:
    """The connections accepted between one ``open()`` and the next outage."""

    def __init__(self) -> None:
        self.cut = threading.Event()
        self.flowing = threading.Event()
        self.flowing.set()
        self.server_ports: list[int] = []


class TcpRelay:
    """127.0.0.1:``port`` relayed to ``target``, with outages on demand (see the module)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        self.port: int = listener.getsockname()[1]
        listener.close()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._opening: _Opening | None = None  # None: cut, or frozen
        self._openings: list[_Opening] = []
        self._listening = threading.Event()
        self._accepter: threading.Thread | None = None

    def open(self) -> None:
        """Relay new connections again (listening again after a cut)."""
        opening = _Opening()
        with self._lock:
            self._opening = opening
            self._openings.append(opening)
        if self._accepter is not None:  # frozen: the listener is still there
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        listener.settimeout(0.05)
        self._listening.set()
        self._accepter = threading.Thread(
            target=self._accept, args=(listener,), name="db-relay", daemon=True
        )
        self._accepter.start()

    def freeze(self) -> list[int]:
        """Stop delivering anything, telling nobody. Returns the local ports of the
        server-side connections frozen (the server sees them as its clients' ports)."""
        with self._lock:
            opening, self._opening = self._opening, None
        if opening is None:
            return []
        opening.flowing.clear()
        return list(opening.server_ports)

    def cut(self) -> None:
        """Refuse new connections and reset every relayed one, frozen ones included."""
        with self._lock:
            openings, self._openings, self._opening = self._openings, [], None
        for opening in openings:
            opening.cut.set()
            opening.flowing.set()  # frozen pumps wake, see the cut and let go
        self._listening.clear()
        if self._accepter is not None:
            self._accepter.join(5)
            self._accepter = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                # Linger on with a zero timeout: the last close resets the connection.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                # A close() alone does not reach the socket while its pump thread is inside
                # recv() on it (the kernel keeps it open for that call): the connection
                # would stay up, both ends waiting, the server's transaction open with its
                # locks. Shutting down the reading side wakes the pump, which lets go.
                sock.shutdown(socket.SHUT_RD)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._listening.is_set():
                opening = self._opening
                if opening is None:  # frozen: connections wait in the backlog, unanswered
                    time.sleep(0.05)
                    continue
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                for sock in (client, upstream):
                    sock.settimeout(None)
                with self._lock:
                    self._sockets += [client, upstream]
                    opening.server_ports.append(upstream.getsockname()[1])
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pump, args=(a, b, opening), daemon=True).start()


_RESET = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")


def _pump(source: socket.socket, sink: socket.socket, opening: _Opening) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            opening.flowing.wait()  # frozen: what came in is held, never delivered
            if opening.cut.is_set():
                return
            sink.sendall(data)
    opening.flowing.wait()
    if not opening.cut.is_set():  # an end that closed: pass its end on (a cut resets)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
