"""`lrbench run --workers N`: N worker processes on this machine, each claiming runs itself.

The processes are the same workers as one started on another machine (`harness.work`); this
module only starts them, shows the suite's progress, and stops them together:

- Ctrl-C reaches every process of the terminal's group; each stops at its next safe point
  (`lrbench.interrupts`): a worker fails its trial in flight and gives up its claim, once (a
  second Ctrl-C is ignored), and exits 130 without a traceback. SIGINT or SIGTERM sent to
  this process alone is passed on to the workers; a worker whose parent was killed outright
  is sent SIGTERM by the kernel (Linux) and stops the same way.
- A worker that meets bad input (a run stored with other settings, corrupt data) sends the
  error here and exits 2; the others are stopped as on Ctrl-C and the error is raised once.
- A worker that dies (killed, out of memory) is reported; the others go on and take its run
  over when its heartbeat lapses.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from queue import Empty

import optuna

from lrbench.errors import LrbenchError
from lrbench.interrupts import (
    STOP_SIGNALS,
    interrupts_at_safe_points,
    interrupts_held,
    raise_if_interrupted,
    release_held_interrupts,
)
from lrbench.running._claims import RunQueue
from lrbench.running._progress import SuiteProgress
from lrbench.storage import open_storage

STOP_TIMEOUT_S = 60.0


def run_in_processes(work, suite, url, runs, only, options, wopts, workers: int) -> None:
    """Start `workers` processes, each calling `work` (the harness's worker loop, passed in so
    that this module need not import the harness back) to claim `runs`; return when they are
    done."""
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    stopping = ctx.Event()
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(
                work,
                suite,
                runs,
                url,
                options,
                wopts,
                i,
                workers,
                errors,
                stopping,
                os.getpid(),
            ),
            name=f"lrbench worker {i + 1}",
        )
        for i in range(workers)
    ]
    with interrupts_held():
        # A new process inherits the blocked signals, so a Ctrl-C or SIGTERM that lands while
        # a worker is still importing cannot print a traceback from the middle of an import,
        # and is not lost either: each process receives it once its handler is in place (this
        # one when the block ends), and `stopping` tells a worker of one sent to this process.
        for p in procs:
            p.start()
    try:
        _watch(procs, errors, RunQueue(open_storage(url), suite.name, _names(runs)), wopts)
    except BaseException:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        _stop(procs, stopping)
        raise


def _names(runs) -> list[str]:
    return [r.study_name for r in runs]


def _watch(procs, errors, queue: RunQueue, wopts) -> None:
    """Show the suite's progress until every worker has exited; raise a worker's error."""
    overall = SuiteProgress(len(queue.runs), wopts.progress)
    reported: set[int] = set()
    try:
        while any(p.is_alive() for p in procs):
            raise_if_interrupted()
            error = _next_error(errors)
            if error is not None:
                raise error
            for i, p in enumerate(procs):
                if p.exitcode not in (None, 0, 2, 130) and i not in reported:
                    reported.add(i)
                    print(_died(i, p.exitcode), file=sys.stderr, flush=True)
            if overall.due():
                overall.update(*queue.counts()[:2])
            procs[0].join(timeout=2.0)
        error = _next_error(errors)
        if error is not None:
            raise error
        done, _, total = queue.counts()
        overall.update(done, 0, force=True)
    finally:
        overall.close()
    if any(p.exitcode == 130 for p in procs):
        raise KeyboardInterrupt
    if done < total:
        raise LrbenchError(
            f"{total - done} of {total} runs are not complete (a worker stopped); "
            "run the same command again to finish them"
        )


def _next_error(errors) -> LrbenchError | None:
    try:
        return errors.get_nowait()
    except Empty:
        return None


def _died(i: int, code: int | None) -> str:
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return (
        f"lrbench: worker {i + 1} stopped ({how}); the other workers take its run over "
        "when its heartbeat lapses"
    )


def _stop(procs, stopping) -> None:
    """SIGINT to every worker still running, then wait; terminate any that do not stop."""
    stopping.set()  # before the signals: a worker still starting up ignores them
    for p in procs:
        if p.is_alive() and p.pid is not None:
            try:
                os.kill(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.terminate()
            p.join()


def _worker_main(
    work, suite, runs, url, options, wopts, index: int, n: int, errors, stopping, parent: int
) -> None:
    import torch

    _stop_with_parent(parent)

    # Each worker gets its share of the cores: N workers x all-core OpenMP pools oversubscribe
    # the CPU, and small models then spend most of their time waiting at OpenMP barriers
    # (measured: the quick suite's VAE runs took up to 25x longer).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // n))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with interrupts_at_safe_points():
            release_held_interrupts()  # what arrived while this process started is taken now
            if stopping.is_set():  # stopped while this process was starting up
                raise KeyboardInterrupt
            work(suite, runs, url, options, wopts, index)
    except KeyboardInterrupt:
        sys.exit(130)
    except LrbenchError as e:
        errors.put(e)
        sys.exit(2)
    finally:
        # The parent passes SIGINT on to workers still alive; one that is already exiting
        # would otherwise print a KeyboardInterrupt traceback from its exit handlers.
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)


def _stop_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the parent process dies (Linux's
    PR_SET_PDEATHSIG), so that a parent killed outright (SIGKILL, out of memory) leaves no
    worker training on: each stops at its next safe point and gives its claim up. Elsewhere
    a dead parent's workers finish their runs."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
