"""``python -m job``: the signal handlers go in first, so a SIGTERM during start-up exits 7 too."""

import sys

from job.errors import ExitCode, Interrupted
from job.signals import install

install()
try:
    from job.cli import entrypoint
except Interrupted:
    sys.exit(ExitCode.INTERRUPTED)
entrypoint()
