"""A TCP relay on loopback whose outage can be switched: what a test or a soak puts between
the gateway and its receipt database to cut it mid-run and restore it."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpRelay:
    """127.0.0.1:``port`` relayed to ``target``. ``cut()`` is the outage: the listener
    closes (new connections are refused) and every open connection is reset; ``open()``
    listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        self.port: int = listener.getsockname()[1]
        listener.close()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listening = threading.Event()
        self._accepter: threading.Thread | None = None

    def open(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        listener.settimeout(0.05)
        self._listening.set()
        self._accepter = threading.Thread(
            target=self._accept, args=(listener,), name="soak-db-relay", daemon=True
        )
        self._accepter.start()

    def cut(self) -> None:
        self._listening.clear()
        if self._accepter is not None:
            self._accepter.join(5)
            self._accepter = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                # linger on with a zero timeout: close() resets the connection
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._listening.is_set():
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
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pump, args=(a, b), daemon=True).start()


_RESET = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
