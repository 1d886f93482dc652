"""A killed run leaves nothing behind: the processes afgen starts die with it, and a stop
signal (SIGTERM from a scheduler, Ctrl-C) stops it cleanly.

- `die_with_parent(parent)` runs first in every process afgen starts (producers, synth and
  seed workers, DDP ranks). On Linux it asks the kernel for SIGKILL when the parent dies
  (prctl PR_SET_PDEATHSIG): immediate, and it works whatever the parent died of, SIGKILL
  included. A daemon thread that checks the parent's pid once a second backs it up (other
  systems; a parent that died before the prctl).
- `stop_handlers()` (around the CLI's main) turns SIGTERM and SIGINT into `Stopped`, so one
  path unwinds both: `finally` blocks stop the workers, locks are released, and `critical()`
  sections (a clip's files and its manifest line) finish first. `Stopped` is a BaseException
  but not a KeyboardInterrupt, so neither `except Exception` nor Click's own Ctrl-C handling
  (which would exit 1 with "Aborted!") swallows it: it reaches the CLI's main, which prints
  one line and exits 143 (SIGTERM) or 130 (SIGINT).
- `stop_children()` terminates every multiprocessing child still running.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1
#: How often the watchdog thread checks that the parent is alive (seconds).
WATCH_SECONDS = 1.0


class Stopped(BaseException):
    """A stop signal (SIGTERM or SIGINT) received; `progress` says how far the work got."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.progress: str | None = None

    @property
    def status(self) -> int:
        """The conventional exit status: 128 + the signal (143 for SIGTERM, 130 for SIGINT)."""
        return 128 + self.signum


#: The stop signal received (SIGINT or SIGTERM), if any.
received: int | None = None
_critical_depth = 0
_pending: int | None = None


def die_with_parent(parent: int | None = None) -> None:
    """End this process when `parent` (default: the current parent) ends, by any signal."""
    parent = parent or os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="afgen-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(1)


def _raise(signum: int) -> None:
    raise Stopped(signum)


def _handler(signum: int, _frame) -> None:
    global received, _pending
    if received is not None and signum == received and _critical_depth == 0:
        return  # a second signal while unwinding: the first is already on its way
    received = signum
    if _critical_depth:
        _pending = signum
        return
    _raise(signum)


@contextlib.contextmanager
def stop_handlers() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGINT raise Stopped (deferred inside `critical()`); the
    previous handlers come back after it. Main thread only; elsewhere the block runs as is."""
    global received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    received = None
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A block a stop signal does not cut in half (e.g. a clip's files and its manifest line):
    the signal takes effect when the block ends."""
    global _critical_depth, _pending
    _critical_depth += 1
    try:
        yield
    finally:
        _critical_depth -= 1
        if _critical_depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            _raise(signum)


def stop_children(timeout: float = 5.0) -> None:
    """Terminate every multiprocessing child of this process that is still running."""
    children = mp.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout)
        if child.is_alive():
            child.kill()


@contextlib.contextmanager
def stopped_after(progress) -> Iterator[None]:
    """On a stop, note how far the work got (`progress()`, e.g. "10 of 14 clips") on the
    exception, for the one-line message the CLI prints."""
    try:
        yield
    except Stopped as exc:
        exc.progress = progress()
        raise


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A spawn ProcessPoolExecutor whose processes die with this one, and which a stop (or any
    error) ends at once: queued work is cancelled and running workers are terminated, instead
    of the executor's default of waiting for everything submitted."""
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=die_with_parent,
                               initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_children()
        raise
    pool.shutdown(wait=True)
