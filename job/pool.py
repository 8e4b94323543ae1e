"""A bounded number of worker threads over a list, stopped cleanly by SIGTERM or SIGINT.

The handler of ``job.signals`` raises ``Interrupted`` in the main thread only, which just waits here.
On it: no new item starts, and each running item gets ``Interrupted`` raised in its own thread
(``PyThreadState_SetAsyncExc``), which is what a single run gets from the handler. psycopg answers it
as it answers Ctrl-C: it cancels the query on the server, and the run rolls back and unlocks.

An asynchronous exception is raised only between bytecodes, and psycopg's C wait loop runs none until
the query returns; so the pure-Python wait, which wakes every 0.1 s, is used while a pool runs. A
worker asleep in a back-off (at most 5 s) sees the exception when it wakes.
"""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import psycopg.waiting

from job.errors import Interrupted

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class PoolResult(Generic[R]):
    results: list[R | None]  # by item position; None: never started
    stopped_by: str | None = None  # the signal's name when the pool was stopped


def _cancel(thread_id: int, signal_name: str) -> None:
    # Raised as a class, so it must build itself without arguments.
    cls = type("Interrupted", (Interrupted,),
               {"__init__": lambda self: Interrupted.__init__(self, signal_name)})
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(cls))


def run_bounded(items: Sequence[T], work: Callable[[T], R], *, concurrency: int,
                on_interrupt: Callable[[T, str], R]) -> PoolResult[R]:
    """``work`` on every item, ``concurrency`` at a time; ``on_interrupt`` makes the result of one
    whose run was interrupted. ``work`` must catch everything else itself."""
    queue = deque(enumerate(items))
    results: list[R | None] = [None] * len(items)
    running: dict[int, int] = {}  # thread id -> item position
    lock = threading.Lock()
    stop: list[str] = []

    done = threading.Event()
    alive = [0]

    def worker() -> None:
        try:
            loop()
        finally:
            with lock:
                alive[0] -= 1
                if not alive[0]:
                    done.set()

    def loop() -> None:
        me = threading.get_ident()
        while True:
            try:
                with lock:
                    if stop or not queue:
                        return
                    position, item = queue.popleft()
                    running[me] = position
                try:
                    results[position] = work(item)
                    with lock:
                        running.pop(me, None)  # from here on no cancellation is sent to this thread
                except Interrupted as sig:
                    with lock:
                        running.pop(me, None)
                    if results[position] is None:  # it may have landed just after the work was done
                        results[position] = on_interrupt(item, sig.signal_name)
            except Interrupted:  # landed between two items: nothing of ours was running
                continue

    previous_wait = psycopg.waiting.wait
    psycopg.waiting.wait = psycopg.waiting.wait_poll if hasattr(psycopg.waiting, "wait_poll") \
        else psycopg.waiting.wait_select
    threads = [threading.Thread(target=worker, name=f"fleet-{n}", daemon=True)
               for n in range(min(concurrency, len(items)))]
    alive[0] = len(threads)
    if not threads:
        done.set()
    try:
        for thread in threads:
            thread.start()
        try:
            _wait(done)
        except Interrupted as sig:  # the handler ignores a second signal: the clean-up below finishes
            with lock:
                stop.append(sig.signal_name)
                for thread_id in running:
                    _cancel(thread_id, sig.signal_name)
            _wait(done)
    finally:
        psycopg.waiting.wait = previous_wait
    return PoolResult(results, stop[0] if stop else None)


def _wait(done: threading.Event) -> None:
    # Not Thread.join: on Python 3.11 a join interrupted by the handler's exception can leave
    # is_alive() False for a thread still running. Short waits: the signal handler runs between them.
    while not done.wait(0.2):
        pass
