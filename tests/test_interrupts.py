"""Ctrl-C at safe points: a SIGINT is held until the next `raise_if_interrupted`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lrbench import interrupts
from lrbench.interrupts import (
    interrupt_requested,
    interrupts_at_safe_points,
    raise_if_interrupted,
)


def test_a_sigint_is_raised_at_the_next_safe_point_and_only_once():
    with interrupts_at_safe_points():  # whatever SIGINT did before, it is held in here
        os.kill(os.getpid(), signal.SIGINT)  # delivered here, in the main thread
        assert interrupt_requested()  # held, not raised mid-statement
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C, during the cleanup: ignored
        raise_if_interrupted()
    assert not interrupt_requested()


def test_outside_the_context_sigint_keeps_pythons_default():
    # Set here: a process started in the background may have SIGINT ignored from the start.
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with interrupts_at_safe_points():
            pass
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            raise_if_interrupted()  # not reached: Python raised at once
    finally:
        signal.signal(signal.SIGINT, outer)


def test_a_sigterm_is_a_stop_request_like_ctrl_c_with_its_own_exit_code():
    with interrupts_at_safe_points():
        os.kill(os.getpid(), signal.SIGTERM)
        assert interrupt_requested()
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
        assert interrupts.stop_signal() == signal.SIGTERM and interrupts.exit_code() == 143
        os.kill(os.getpid(), signal.SIGTERM)  # a second one, during the cleanup: ignored
    with interrupts_at_safe_points():
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    assert interrupts.exit_code() == 130


HELD = """
import os, signal
from lrbench import interrupts
with interrupts.interrupts_at_safe_points():
    with interrupts.interrupts_held():
        os.kill(os.getpid(), signal.SIGINT)
        print("during", interrupts.interrupt_requested())
    print("after", interrupts.interrupt_requested())
    try:
        interrupts.raise_if_interrupted()
    except KeyboardInterrupt:
        print("raised")
"""


def test_a_signal_that_lands_while_held_is_delivered_when_the_hold_ends_not_lost():
    # In a process of its own: the block is the main thread's, and a signal sent to a process
    # with other threads (this one's, after other tests) may be taken by one of them at once.
    done = subprocess.run([sys.executable, "-c", HELD], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["during", "False", "after", "True", "raised"], done.stdout
