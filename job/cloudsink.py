"""Opt-in log sink: every entry also sent through Cloud Logging's API (``--log-sink cloud-logging``).

For runs outside Google's collectors: a CI runner, a laptop with the Cloud SQL proxy, another cloud's
cluster. Inside Cloud Run and GKE the JSON lines on stderr already reach Cloud Logging, so the sink
stays off there (it would write each entry twice). What it does differently from the library's
defaults, and why:

- google-cloud-logging is imported only when the sink is chosen, and over HTTP (no grpc);
- the monitored resource is given (``generic_task``), never detected: detection asks the metadata server;
- entries are kept in one batch that the main thread commits before the process exits (and whenever
  ``BATCH_MAX`` are waiting): no background thread that can lose the last lines at exit;
- it fails soft: a fault is said once on stderr, the lines stay on stderr, the exit code is unchanged;
- a plain ``http://`` endpoint (a local fake in the tests) gets anonymous credentials: no token is ever
  sent in clear text.
"""

from __future__ import annotations

import importlib
import json
import signal
import socket
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TextIO

LOG_NAME = "db-init-job"
BATCH_MAX = 500  # entries per entries.write call, well under the API's limits
TIMEOUT_S = 10.0  # per HTTP request: a commit at exit must fit in Kubernetes' 30 s grace period
_SPECIAL = ("severity", "time", "logging.googleapis.com/labels", "logging.googleapis.com/sourceLocation")


class CloudLoggingSink:
    """Collects Cloud Logging entries (the dicts the JSON lines are made of) and sends them in batches."""

    def __init__(self, endpoint: str, env: Mapping[str, str], labels: Mapping[str, str],
                 stderr: TextIO | None = None) -> None:
        self._stderr = stderr or sys.stderr
        self._failed = False
        self._pending: list[dict[str, Any]] = []
        self._batch: Any = None
        self._resource: Any = None
        try:
            self._batch, self._resource = _open_batch(endpoint, env, labels)
        except Exception as exc:
            self._fail(exc)

    def processor(self, _: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        """A structlog processor placed after the Cloud Logging fields are set: takes a copy, passes on."""
        if self._batch is not None:
            self._pending.append(dict(event))
            if len(self._pending) >= BATCH_MAX:
                self.flush()
        return event

    def flush(self) -> None:
        """Send what is waiting, on this thread; SIGTERM/SIGINT wait until it is done (TIMEOUT_S at most)."""
        if self._batch is None or not self._pending:
            return
        entries, self._pending = self._pending, []
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for entry in entries:
                _add(self._batch, entry, self._resource)
            self._batch.commit()
        except Exception as exc:
            self._fail(exc)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _fail(self, exc: BaseException) -> None:
        self._batch = None
        if not self._failed:
            self._failed = True
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            print(f"db-init: log sink cloud-logging failed ({type(exc).__name__}: {reason}); entries stay on"
                  " stderr only, the exit code is unaffected", file=self._stderr, flush=True)


def _open_batch(endpoint: str, env: Mapping[str, str], labels: Mapping[str, str]) -> tuple[Any, Any]:
    """A batch of the ``db-init-job`` log and the resource each entry names (entries default to global)."""
    # Modules as Any: google-auth and google-cloud-logging are only partly typed.
    auth: Any = importlib.import_module("google.auth")
    anonymous: Any = importlib.import_module("google.auth.credentials").AnonymousCredentials
    transport: Any = importlib.import_module("google.auth.transport.requests")
    options: Any = importlib.import_module("google.api_core.client_options")
    logging_v2: Any = importlib.import_module("google.cloud.logging_v2.client")
    resource_type: Any = importlib.import_module("google.cloud.logging_v2.resource").Resource

    project = env.get("GOOGLE_CLOUD_PROJECT")
    if endpoint.startswith("http://"):
        credentials = anonymous()
    else:
        credentials, found = auth.default(scopes=["https://www.googleapis.com/auth/logging.write"])
        project = project or found
    if not project:
        raise ValueError("no project: set GOOGLE_CLOUD_PROJECT")

    class Session(transport.AuthorizedSession):  # type: ignore[misc]
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = TIMEOUT_S
            return super().request(*args, **kwargs)

    client = logging_v2.Client(project=project, credentials=credentials, _http=Session(credentials),
                               _use_grpc=False, client_options=options.ClientOptions(api_endpoint=endpoint))
    resource = resource_type(type="generic_task", labels={
        "project_id": project, "location": env.get("CLOUD_RUN_REGION", "global"),
        "namespace": labels.get("namespace", "db-init-job"), "job": labels.get("job", "db-init"),
        "task_id": labels.get("pod") or labels.get("execution") or socket.gethostname()})
    return client.logger(LOG_NAME, resource=resource).batch(), resource


def _add(batch: Any, entry: dict[str, Any], resource: Any) -> None:
    payload = json.loads(json.dumps({k: v for k, v in entry.items() if k not in _SPECIAL}, default=str))
    location = entry.get("logging.googleapis.com/sourceLocation")
    batch.log_struct(payload, resource=resource, severity=entry.get("severity", "DEFAULT"),
                     labels=dict(entry.get("logging.googleapis.com/labels") or {}),
                     timestamp=datetime.fromisoformat(entry["time"]) if "time" in entry else None,
                     source_location=dict(location) if location else None)
