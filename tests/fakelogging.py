"""A local stand-in for Cloud Logging's REST API: ``POST /v2/entries:write``, recorded as received.

Started by the tests on 127.0.0.1; the job's sink reaches it through its endpoint setting
(``DB_INIT_LOG_SINK_ENDPOINT=http://127.0.0.1:PORT``) over the client's real HTTP transport.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeCloudLogging:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200  # what the next writes answer (e.g. 403 to make the sink fail)

    def entries(self) -> list[dict[str, Any]]:
        """Every entry written, with the request's defaults (logName, resource, labels) filled in."""
        out = []
        for body in self.requests:
            for e in body["entries"]:
                out.append({"logName": body.get("logName"), "resource": body.get("resource"),
                            "labels": body.get("labels")} | e)
        return out


@contextmanager
def fake_cloud_logging() -> Iterator[FakeCloudLogging]:
    fake = FakeCloudLogging(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.split("?")[0] != "/v2/entries:write":
                self.send_error(404)
                return
            if fake.status == 200:
                fake.requests.append(json.loads(body))
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            denied = b'{"error": {"code": 403, "message": "denied"}}'
            self.wfile.write(b"{}" if fake.status == 200 else denied)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
