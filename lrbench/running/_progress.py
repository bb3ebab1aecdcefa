"""Progress of `lrbench run` on stderr: one line for the suite, one per local worker.

On a terminal these are tqdm bars; when stderr is a file or a pipe (a log), plain lines
instead, at most one per `LOG_INTERVAL_S` seconds for the suite and one per finished run.
The suite's count is read from the storage (the coordinating study), so it counts runs done
by every worker on every machine.
"""

from __future__ import annotations

import math
import sys
import time

from lrbench.training import EpochRecord

LOG_INTERVAL_S = 30.0


def _is_tty() -> bool:
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


class SuiteProgress:
    """Runs complete of all runs of the suite (or of `--only`), whichever worker did them."""

    def __init__(self, total: int, enabled: bool, label: str = "suite") -> None:
        self.enabled, self.total, self.label = enabled, total, label
        self.bar = None
        self.last_line = 0.0
        self.last: tuple[int, int] | None = None
        self.last_update = -math.inf
        if enabled and _is_tty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="run", position=0, file=sys.stderr)

    def due(self) -> bool:
        """Whether an update would show now: the counts cost a read of every claim, so callers
        read them only then (a bar at most every second, a log line every LOG_INTERVAL_S)."""
        interval = 1.0 if self.bar is not None else LOG_INTERVAL_S
        return self.enabled and time.monotonic() - self.last_update >= interval

    def update(self, done: int, running: int, force: bool = False) -> None:
        if not self.enabled:
            return
        self.last_update = time.monotonic()
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(f"{running} in progress")
            return
        now = time.monotonic()
        if (done, running) != self.last and (force or now - self.last_line >= LOG_INTERVAL_S):
            print(
                f"{self.label}: {done}/{self.total} runs complete, {running} in progress",
                file=sys.stderr,
                flush=True,
            )
            self.last, self.last_line = (done, running), now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class WorkerProgress:
    """The epochs of the run this worker drives, against its budget."""

    def __init__(self, enabled: bool, position: int, name: str) -> None:
        self.enabled, self.position, self.name = enabled, position, name
        self.tty = _is_tty()
        self.bar = None
        self.run_name = ""
        self.done = 0.0  # epochs charged to the run(s) being driven, as far as seen
        self._trials: dict[str, float] = {}  # epochs done per trial key
        self.t0 = time.monotonic()
        self._waiting_for: int | None = None

    def start(self, run_name: str, budget: float, spent: float) -> None:
        """A run (or several runs trained as one population: their budgets and spending
        summed) begins."""
        self.run_name, self.t0, self._waiting_for = run_name, time.monotonic(), None
        self.done, self._trials = spent, {}
        if not self.enabled or not self.tty:
            return
        from tqdm import tqdm

        self.bar = tqdm(
            total=budget,
            initial=spent,
            desc=f"{self.name} {run_name}",
            unit="epoch",
            leave=False,
            position=self.position,
            file=sys.stderr,
            bar_format="{l_bar}{bar}| {n:.1f}/{total:g} epochs [{elapsed}<{remaining}]",
        )

    def epoch(self, record: EpochRecord, trial: str) -> None:
        """One epoch of `trial` (a key per trial: a population's members interleave their
        epochs). Counted from the records themselves: no storage query per epoch."""
        self.done += record.epochs_done - self._trials.get(trial, 0.0)
        self._trials[trial] = record.epochs_done
        if self.bar is not None:
            self.bar.update(self.done - self.bar.n)
            self.bar.set_postfix_str(f"val {record.val:.4g}", refresh=False)

    def finish(self, what: str = "done") -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and self.run_name:
            seconds = time.monotonic() - self.t0
            print(f"{self.name}: {self.run_name} {what} ({seconds:.0f} s)", file=sys.stderr)
        self.run_name = ""

    def waiting(self, running: int) -> None:
        if running == self._waiting_for:  # one line per change, not one per poll
            return
        self._waiting_for = running
        if self.enabled and not self.tty:
            print(
                f"{self.name}: no run left to claim; waiting for {running} run(s) held by other "
                "workers (a dead worker's run is taken over when its heartbeat lapses)",
                file=sys.stderr,
            )
