"""SIGTERM (Kubernetes, Cloud Run) and SIGINT become ``Interrupted``: cancel, roll back, exit 7.

Python's default for SIGTERM is no handler at all, and as PID 1 in a container
an unhandled SIGTERM is ignored; so the job installs its own, before anything
heavy is imported.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

from job.errors import Interrupted

# Every signal received in this process, in order.  Kept at module level: a handler's exception raised
# inside a callback Python runs on its own (an import lock's weakref callback during start-up) is
# swallowed ("Exception ignored in ..."), and the run must still end as interrupted.
_received: list[str] = []


def install() -> dict[int, Any]:
    """Raise once; a second signal during the clean-up is ignored so rollback and unlock can finish.

    Returns the handlers it replaced.
    """
    def handler(signum: int, _frame: FrameType | None) -> None:
        first = not _received
        _received.append(signal.Signals(signum).name)
        if first:
            raise Interrupted(_received[0])

    sys.unraisablehook = _quiet_if_interrupted
    return {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}


def raise_if_received() -> None:
    """At the start of a command: a signal whose exception Python swallowed still interrupts the run."""
    if _received:
        raise Interrupted(_received[0])


def _quiet_if_interrupted(unraisable: Any) -> None:
    """No bare traceback on stderr for the swallowed signal: raise_if_received reports it."""
    if not isinstance(unraisable.exc_value, Interrupted):
        sys.__unraisablehook__(unraisable)
