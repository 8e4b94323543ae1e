"""Which targets are this task's: rendezvous (highest-random-weight) hashing on the target's name.

Each target goes to the task whose hash of (task, name) is highest. The assignment depends on the
name and the task count only, never on a target's position, so

- appending, inserting, removing or reordering entries moves no other target to another task (a
  task retried after the file grew, e.g. a Secret Manager ``latest`` read again, keeps its targets
  and cannot lose one to a task that already finished);
- ``--group`` filters first and the shares stay the same: a target runs in the same task whether
  or not the group was picked;
- changing the task count moves only about 1/count of the targets.

``index mod count`` would balance exactly, but it is stable only under appends: one entry removed in
the middle shifts every later target to another task. The price of hashing is balance by chance
(200 targets on 8 tasks: 25 each on average, bench/RESULTS.md shows the real spread).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _weight(task: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{task}\x00{name}".encode()).digest()[:8], "big")


def task_of(name: str, count: int) -> int:
    """The task (0 to count - 1) that runs the target called ``name``."""
    return max(range(count), key=lambda task: _weight(task, name))


def share(names: Iterable[str], *, index: int, count: int) -> list[str]:
    """The names task ``index`` of ``count`` runs, in their original order."""
    return [name for name in names if task_of(name, count) == index]
