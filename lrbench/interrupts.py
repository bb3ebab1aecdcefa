"""Ctrl-C and SIGTERM at safe points only.

A KeyboardInterrupt raised wherever SIGINT lands can cut a storage call in half: an SQLite
connection interrupted inside its transaction keeps the database's write lock, and every
other process, and this one's own cleanup (failing the trial in flight), then waits for it
and fails with "database is locked". So inside `interrupts_at_safe_points()` a SIGINT only
records the request, and `raise_if_interrupted()`, called at every optimizer step and between
trials and runs, raises KeyboardInterrupt there, outside any storage call. A second signal is
ignored while the first is handled, so the cleanup is not cut short either.

SIGTERM (what a batch scheduler, `kill` or `docker stop` sends) is a request to stop like
Ctrl-C: the same path, and the CLI exits 128 + the signal's number (130 for SIGINT, 143 for
SIGTERM), as a shell reports a process ended by it.

Outside the context (a library user's own loop) SIGINT keeps Python's default behaviour.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested: int | None = None  # the stop signal recorded and not yet raised
_last: int = signal.SIGINT  # the stop signal that last stopped this process


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a stop signal arrived (once: the request is then taken)."""
    global _requested
    if _requested is not None:
        _requested = None
        raise KeyboardInterrupt


def interrupt_requested() -> bool:
    return _requested is not None


def stop_signal() -> int:
    """The stop signal (SIGINT or SIGTERM) that last interrupted this process; SIGINT if none."""
    return _last


def exit_code() -> int:
    """What the CLI exits with after an interruption: 128 + the signal, as a shell reports it."""
    return 128 + int(_last)


def _record(signum: int) -> None:
    global _requested, _last
    _requested = _last = signum


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def interrupts_at_safe_points() -> Iterator[None]:
    """A stop signal is recorded, and raised as KeyboardInterrupt at the next
    `raise_if_interrupted`; later ones are ignored. In the main thread only (where Python
    delivers signals)."""
    if not _main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        _record(signum)

    global _requested
    _requested = None
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before)
        _requested = None


@contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Stop signals ignored (in the main thread) while a summary is written after Ctrl-C."""
    if not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before)


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Stop signals blocked, not lost: one that arrives meanwhile is delivered when the block
    ends. Processes started meanwhile inherit the block (across exec too), so a worker cannot
    be interrupted in the middle of its imports; it calls `release_held_interrupts` once its
    handler is in place, and receives then what arrived while it started."""
    if not _main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def release_held_interrupts() -> None:
    """Unblock the stop signals a parent's `interrupts_held` passed on to this process."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def sigterm_as_interrupt() -> None:
    """SIGTERM raises KeyboardInterrupt, as Python's default SIGINT does, for the whole CLI;
    `interrupts_at_safe_points` records it instead where a run is driven."""

    def handler(signum, frame) -> None:
        _record(signum)
        raise_if_interrupted()

    if _main_thread():
        signal.signal(signal.SIGTERM, handler)
