"""SIGTERM (Kubernetes, Cloud Run) and SIGINT become ``Interrupted``: cancel, roll back, exit 7.

Python's default for SIGTERM is no handler at all, and as PID 1 in a container
an unhandled SIGTERM is ignored; so the job installs its own, before anything
heavy is imported.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from job.errors import Interrupted


def install() -> dict[int, Any]:
    """Raise once; a second signal during the clean-up is ignored so rollback and unlock can finish.

    Returns the handlers it replaced.
    """
    state = {"raised": False}

    def handler(signum: int, _frame: FrameType | None) -> None:
        if state["raised"]:
            return
        state["raised"] = True
        raise Interrupted(signal.Signals(signum).name)

    return {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}
