"""Server round trips of one process, counted on the wire by a TCP proxy between it and PostgreSQL.

A round trip is a burst the client sends that the server then answers: every turn from client bytes
to server bytes counts one. The connection's start-up (SSL request, start-up message, SCRAM's two
exchanges) counts too; ``count`` returns the total, and the floor's (connect + one query) tells how many
of those connecting takes.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Sequence


def _message_types(data: bytes) -> str:
    """The type letters of the protocol messages in ``data`` (start-up messages have none: '*')."""
    out, at = "", 0
    while at + 5 <= len(data):
        kind = chr(data[at])
        if not kind.isalpha():  # SSLRequest / StartupMessage: a length first
            out += "*"
            at += int.from_bytes(data[at:at + 4], "big")
            continue
        out += kind
        at += 1 + int.from_bytes(data[at + 1:at + 5], "big")
    return out


class TurnCounter:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.turns = 0
        self._sent = False
        self._lock = threading.Lock()
        self.requests: list[str] = []  # per round trip, what the client sent: its messages' type bytes

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        while data := src.recv(65536):
            with self._lock:
                if from_client:
                    if not self._sent:
                        self.requests.append("")
                    self.requests[-1] += _message_types(data)
                    self._sent = True
                elif self._sent:
                    self.turns += 1
                    self._sent = False
            dst.sendall(data)
        dst.close() if not from_client else dst.shutdown(socket.SHUT_WR)

    def serve_one(self) -> threading.Thread:
        def run() -> None:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.upstream)
            t = threading.Thread(target=self._pump, args=(server, client, False), daemon=True)
            t.start()
            self._pump(client, server, True)
            t.join(10)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def count(argv: Sequence[str], env: dict[str, str], url_of_port: object, upstream_port: int
          ) -> tuple[int, list[str]]:
    """Round trips of one run of ``argv``, whose DATABASE_URL is ``url_of_port(proxy port)``, and what the
    client sent in each (protocol message types: Q simple query, P/B/D/E/S extended query and Sync...)."""
    proxy = TurnCounter(upstream_port)
    thread = proxy.serve_one()
    url = url_of_port(proxy.port)  # type: ignore[operator]
    subprocess.run(list(argv), env=env | {"DATABASE_URL": url}, check=True, capture_output=True)
    thread.join(10)
    proxy.listener.close()
    return proxy.turns, proxy.requests
