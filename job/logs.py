"""Structured logs: one JSON object per line for Cloud Logging, readable lines on a TTY.

Processors are small functions composed in a list, as structlog intends.
Events have stable names (``lock.waiting``, ``run.finished``...) and fields, so
a Cloud Logging query written today keeps working.  Logs go to stderr; stdout
is kept for what a command prints (the plan).

The JSON lines follow Cloud Logging's structured format (the special keys of
google-cloud-logging's ``StructuredLogHandler``, which the tests use as the
reference) without importing that library: its import costs ~480 ms, its
environment detection asks the metadata server, and its default handler on
Cloud Run jobs sends from a background thread that can lose lines at exit.
Here every line is written and flushed synchronously by the main thread, and
where the job runs is read from the environment only.

Runs outside Google's collectors can add the opt-in sink (``--log-sink cloud-logging``,
``job/cloudsink.py``): the same entries also sent through the library's API client, committed by the
main thread before exit (``close``).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from job import __version__
from job.liblog import LibraryWarnings
from job.redact import redact

_SEVERITY = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR",
             "critical": "CRITICAL", "exception": "ERROR"}
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
# Fields not worth repeating in the one-line summary that Cloud Logging shows.
_SUMMARY_SKIP = {"event", "level", "time", "logger", "pathname", "lineno", "func_name", "stack_trace"}
# With this @type, Error Reporting takes an entry as an error event whatever its message holds.
REPORTED_ERROR_EVENT = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"


def environment_labels(env: Mapping[str, str]) -> dict[str, str]:
    """Where this run happens: Cloud Run job coordinates, or the pod (no metadata-server call)."""
    labels = {"app": "db-init-job"}
    cloud_run = {"job": "CLOUD_RUN_JOB", "execution": "CLOUD_RUN_EXECUTION",
                 "task_index": "CLOUD_RUN_TASK_INDEX", "task_attempt": "CLOUD_RUN_TASK_ATTEMPT"}
    labels |= {k: env[v] for k, v in cloud_run.items() if env.get(v)}
    if env.get("KUBERNETES_SERVICE_HOST"):
        pod = env.get("POD_NAME") or env.get("HOSTNAME")
        if pod:
            labels["pod"] = pod
        if env.get("POD_NAMESPACE"):
            labels["namespace"] = env["POD_NAMESPACE"]
    return labels


def redact_strings(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Last line of defence: no password leaves the process, whatever a field holds."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, BaseException):
            event[key] = redact(str(value))
    return event


def service_context(env: Mapping[str, str]) -> dict[str, str]:
    """How Error Reporting names and groups this job's errors: the Cloud Run job, else the app."""
    return {"service": env.get("CLOUD_RUN_JOB") or "db-init-job", "version": __version__}


def stack_trace(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """``log.exception``: the traceback as Python prints it, in the field Error Reporting reads first."""
    exc_info = event.pop("exc_info", None)
    if exc_info is True or isinstance(exc_info, tuple):
        exc = sys.exc_info()[1] if exc_info is True else exc_info[1]
    else:
        exc = exc_info if isinstance(exc_info, BaseException) else None
    if exc is not None:
        event["stack_trace"] = redact("".join(traceback.format_exception(exc)))
    return event


def summarize(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """``message``: the event name and its fields on one line, for log viewers' summary column."""
    fields = " ".join(f"{k}={_short(v)}" for k, v in event.items()
                      if k not in _SUMMARY_SKIP and k != "message" and not k.startswith("logging."))
    event["message"] = f"{event['event']} {fields}".strip()
    return event


def cloud_logging_fields(labels: dict[str, str]) -> Processor:
    """The special fields Cloud Logging lifts out of a JSON line."""
    def processor(_: WrappedLogger, method: str, event: EventDict) -> EventDict:
        level = event.pop("level", method)
        event["severity"] = _SEVERITY.get(level, "DEFAULT")
        event["logging.googleapis.com/labels"] = labels
        location = {"file": event.pop("pathname", None), "line": event.pop("lineno", None),
                    "function": event.pop("func_name", None)}
        if location["file"]:
            event["logging.googleapis.com/sourceLocation"] = {
                "file": _source_file(location["file"]), "line": str(location["line"]),
                "function": location["function"]}
        return event
    return processor


def error_reporting(context: dict[str, str]) -> Processor:
    """ERROR lines become Error Reporting events: typed, named after the service, located in the code."""
    def processor(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        if event.get("severity") not in ("ERROR", "CRITICAL"):
            return event
        event["@type"] = REPORTED_ERROR_EVENT
        event["serviceContext"] = context
        location = event.get("logging.googleapis.com/sourceLocation")
        if location:
            event["context"] = {"reportLocation": {
                "filePath": location["file"], "lineNumber": int(location["line"]),
                "functionName": location["function"]}}
        return event
    return processor


_sink: Any = None  # the opt-in Cloud Logging sink (job/cloudsink.py), when chosen


def configure(fmt: str = "auto", level: str = "info", stream: TextIO | None = None,
              env: Mapping[str, str] = os.environ, sink: str = "stderr",
              sink_endpoint: str = "https://logging.googleapis.com") -> None:
    """Lines on ``stream`` (stderr); with ``sink="cloud-logging"`` each entry also goes to Cloud Logging.

    The sink gets the same entry as a JSON line carries, whatever the line format.
    """
    global _sink  # noqa: PLW0603 - one logging configuration per process, as structlog's own
    close()
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    labels = environment_labels(env)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        redact_strings,
    ]
    cloud: list[Processor] = [
        structlog.processors.CallsiteParameterAdder({
            structlog.processors.CallsiteParameter.PATHNAME,
            structlog.processors.CallsiteParameter.LINENO,
            structlog.processors.CallsiteParameter.FUNC_NAME},
            additional_ignores=[__name__]),  # `fork` below calls it from this module
        stack_trace,
        summarize,
        cloud_logging_fields(labels),
        error_reporting(service_context(env)),
    ]
    if sink == "cloud-logging":
        from job.cloudsink import CloudLoggingSink
        _sink = CloudLoggingSink(sink_endpoint, env, labels)
        cloud.append(_sink.processor)
    tail: list[Processor]
    if fmt == "json":
        tail = [*cloud, structlog.processors.JSONRenderer(default=str)]
    else:
        tail = [fork(cloud)] if _sink is not None else []
        tail.append(structlog.dev.ConsoleRenderer(colors=stream.isatty()))
    structlog.configure(
        processors=shared + tail,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, 20)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # A library's own warnings (psycopg's, e.g. a cancellation cut short by a signal) as the job's
    # structured lines: never a bare text line among the JSON ones.
    root = logging.getLogger()
    root.handlers[:] = [LibraryWarnings()]
    root.setLevel(logging.WARNING)



def fork(processors: list[Processor]) -> Processor:
    """Run ``processors`` on a copy of the event (for the sink) and pass the event on unchanged."""
    def processor(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        entry = dict(event)
        for p in processors:
            entry = p(logger, method, entry)  # type: ignore[assignment]
        return event
    return processor


def close() -> None:
    """Send what the sink holds (on this thread, before the process exits); a no-op without a sink."""
    global _sink  # noqa: PLW0603
    if _sink is not None:
        _sink.flush()
        _sink = None


def get_logger() -> Any:
    return structlog.get_logger()


_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _source_file(path: str) -> str:
    """``job/run.py`` rather than where it is installed: the same in a venv, an image or a checkout."""
    if path.startswith(_PACKAGE_ROOT + os.sep):
        return path[len(_PACKAGE_ROOT) + 1:]
    return path


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def bind(**fields: Any) -> None:
    structlog.contextvars.bind_contextvars(**fields)


def unbind_all() -> None:
    structlog.contextvars.clear_contextvars()

