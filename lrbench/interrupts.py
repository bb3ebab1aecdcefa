"""Ctrl-C at safe points only.

A KeyboardInterrupt raised wherever SIGINT lands can cut a storage call in half: an SQLite
connection interrupted inside its transaction keeps the database's write lock, and every
other process, and this one's own cleanup (failing the trial in flight), then waits for it
and fails with "database is locked". So inside `interrupts_at_safe_points()` a SIGINT only
records the request, and `raise_if_interrupted()`, called at every optimizer step and between
trials and runs, raises KeyboardInterrupt there, outside any storage call. A second SIGINT is
ignored while the first is handled, so the cleanup is not cut short either.

Outside the context (a library user's own loop) SIGINT keeps Python's default behaviour.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_requested = False


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a SIGINT arrived (once: the request is then taken)."""
    global _requested
    if _requested:
        _requested = False
        raise KeyboardInterrupt


def interrupt_requested() -> bool:
    return _requested


@contextmanager
def interrupts_at_safe_points() -> Iterator[None]:
    """SIGINT is recorded, and raised as KeyboardInterrupt at the next `raise_if_interrupted`;
    later SIGINTs are ignored. In the main thread only (where Python delivers signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        global _requested
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _requested = True

    global _requested
    _requested = False
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested = False


@contextmanager
def interrupts_ignored() -> Iterator[None]:
    """SIGINT ignored (in the main thread) while a summary is written after Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
