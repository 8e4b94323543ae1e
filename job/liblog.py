"""Libraries' own log records (psycopg's) as the job's structured lines.

A module of its own, so the line's source location is the job's, as for every other line (job.logs is
left out of the call-site lookup, as it calls the processors itself).
"""

from __future__ import annotations

import logging

import structlog


class LibraryWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log = structlog.get_logger()
        log.warning("library.warning", logger=record.name, detail=record.getMessage())
