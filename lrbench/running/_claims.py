"""Work claimed through the storage: a suite's runs as enqueued trials of one coordinating study.

`<suite>/_runs` holds one trial per claim of a run, its user attr `run` naming the run's
study. Every worker, on any machine, enqueues the runs that have no live claim yet (WAITING,
RUNNING or COMPLETE) and takes a WAITING one. While it drives the run it records the claim's
heartbeat; when the run is done the claim is told COMPLETE. A worker that dies stops beating:
after the grace period any live worker's `optuna.storages.fail_stale_trials` fails the claim
and Optuna's `RetryFailedTrialCallback` enqueues it again, and the run resumes from its stored
trials.

Two workers that start at once may both enqueue one run. Of the live claims of a run, the one
with the lowest trial number is the run's; a worker that wins another one tells it FAIL as a
duplicate and takes the next. No lock, queue or partition of our own.

Optuna's public API does all of this but two steps, each done with the storage method Optuna
itself uses for it (both are public methods of `RDBStorage`, which Optuna's docs mark as meant
for its own use):

- Taking one named run: `Study.ask` pops whichever trial waits first, and creates a new trial
  when none waits, so a worker could neither take a seed group's sibling runs nor tell "nothing
  waits" from "a new trial". `storage.set_trial_state_values(trial, RUNNING)` is the step inside
  `Study.ask` that moves one waiting trial to RUNNING for exactly one caller.
- The heartbeat: Optuna beats only inside `Study.optimize`, one trial at a time, with a private
  thread class; a worker here holds a claim for a whole run (a seed group: several claims), so it
  beats with `storage.record_heartbeat` from a thread of its own. That thread swallows nothing:
  an error stops it and is raised again in the worker at its next `Claim.held` check, which
  fails the run's trial in flight and gives the claim up (the run resumes when claimed again).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import optuna
from optuna.trial import FrozenTrial, TrialState

from lrbench.storage.records import ClaimKeys, coordinator_name

LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
WHO = f"{socket.gethostname()}:{os.getpid()}"


def _run_of(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(ClaimKeys.RUN)


@dataclass
class Claim:
    """One run claimed by this worker; its heartbeat runs until `complete` or `release`."""

    queue: RunQueue
    number: int
    trial_id: int
    run: str
    started: float = field(default_factory=time.perf_counter)
    lost: bool = False  # another worker declared this claim dead (our heartbeat lapsed)
    _checked: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _beating: threading.Thread | None = None
    _beat_error: BaseException | None = None  # what stopped the heartbeat, raised by `held`

    def start_heartbeat(self) -> None:
        storage, interval = self.queue.storage, self.queue.storage.heartbeat_interval

        def beat() -> None:
            try:
                while not self._stop.is_set():
                    storage.record_heartbeat(self.trial_id)
                    if storage.get_trial(self.trial_id).state != TrialState.RUNNING:
                        self.lost = True
                        return
                    self._stop.wait(interval)
            except BaseException as e:  # handed to the worker's thread, which raises it
                self._beat_error = e

        self._beating = threading.Thread(target=beat, name=f"heartbeat {self.run}", daemon=True)
        self._beating.start()

    def held(self, every: float = 1.0) -> bool:
        """Whether this claim is still ours, read from the storage at most every `every`
        seconds (else the heartbeat thread's last word). A worker starved of CPU for longer than
        the grace period is declared dead although it lives; it must stop before it stores
        another trial of a run that another worker now drives. Raises what stopped the
        heartbeat (a storage error), since without a beat the claim would soon be lost."""
        if self._beat_error is not None:
            raise RuntimeError(f"{self.run}: the claim's heartbeat failed") from self._beat_error
        now = time.monotonic()
        if now - self._checked >= every:
            self._checked = now
            self.check_lost()
        return not self.lost

    def check_lost(self) -> bool:
        """Read from the storage now whether another worker declared this claim dead."""
        if (
            not self.lost
            and self.queue.storage.get_trial(self.trial_id).state != TrialState.RUNNING
        ):
            self.lost = True
        return self.lost

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beating is not None and self._beating is not threading.current_thread():
            self._beating.join()

    def complete(self) -> None:
        self._stop_heartbeat()
        seconds = time.perf_counter() - self.started
        try:
            self.queue.storage.set_trial_user_attr(self.trial_id, ClaimKeys.SECONDS, seconds)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # failed meanwhile by another worker's stale check: nothing to tell
        self.queue.study.tell(self.number, 0.0, skip_if_finished=True)

    def release(self, reason: str) -> None:
        """Give the run up (interrupted, failed): FAIL, so the next `lrbench run` enqueues it."""
        self._stop_heartbeat()
        try:
            self.queue.storage.set_trial_user_attr(self.trial_id, ClaimKeys.RELEASED, reason)
            self.queue.study.tell(self.number, state=TrialState.FAIL, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # already failed by another worker's stale check


class RunQueue:
    """The coordinating study of `suite`, seen by a worker that runs the runs named `runs`."""

    def __init__(self, storage: optuna.storages.RDBStorage, suite: str, runs: Iterable[str]):
        self.storage = storage
        self.runs = list(runs)
        self._mine = set(self.runs)
        # What `claim` read of the queue last: waiting claims, and claim numbers by run.
        self._waiting: list[FrozenTrial] = []
        self._numbers: dict[str, list[int]] = {}
        self.study = optuna.create_study(
            storage=storage, study_name=coordinator_name(suite), load_if_exists=True
        )
        self.study_id = storage.get_study_id_from_name(self.study.study_name)
        if self.study.user_attrs.get(ClaimKeys.ROLE) is None:
            self.study.set_user_attr(ClaimKeys.ROLE, ClaimKeys.ROLE_TEXT)
            with warnings.catch_warnings():  # experimental since Optuna 3.2, public all the same
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.study.set_metric_names([ClaimKeys.METRIC])

    def _claims(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return [
            t
            for t in self.storage.get_all_trials(self.study_id, deepcopy=False, states=states)
            if _run_of(t) in self._mine
        ]

    def enqueue_missing(self) -> int:
        """Enqueue each of our runs that has no live claim; return how many were enqueued."""
        live = {_run_of(t) for t in self._claims(LIVE)}
        missing = [run for run in self.runs if run not in live]
        for run in missing:
            self.study.enqueue_trial({}, user_attrs={ClaimKeys.RUN: run})
        return len(missing)

    def claim(self, only: Collection[str] | None = None) -> Claim | None:
        """Take one waiting run, of `only` if given (None when none of them is waiting).

        Reads the queue only when what it read last has no waiting run left (a suite of n runs
        reads it about once per worker, not n times: reading every claim each time made a
        1,500-run suite's claims cost more than its training)."""
        read_again = True
        while True:
            trial = self._next_waiting(only)
            if trial is None:
                if not read_again:
                    return None
                self._read()
                read_again = False
                continue
            if not self._take(trial):
                continue  # another worker took it since the read
            trial_id = self._claim_id(trial)
            claim = Claim(self, trial.number, trial_id, trial.user_attrs[ClaimKeys.RUN])
            if self._is_the_runs_claim(claim):
                # The first beat before any work: Optuna never declares a trial without one
                # stale. The worker attr follows it, so a claim without that attr may have no
                # beat (see fail_unbeaten for a kill right here).
                self.storage.record_heartbeat(trial_id)
                self.storage.set_trial_user_attr(trial_id, ClaimKeys.WORKER, WHO)
                claim.start_heartbeat()
                return claim
            claim.release("duplicate: the run has a claim with a lower number")

    def _read(self) -> None:
        """Read our claims: the waiting ones (candidates, lowest number first) and every claim's
        number by run, for the duplicate check."""
        claims = sorted(self._claims(), key=lambda t: t.number)
        self._waiting = [t for t in claims if t.state == TrialState.WAITING]
        self._numbers = {}
        for t in claims:
            self._numbers.setdefault(_run_of(t) or "", []).append(t.number)

    def _next_waiting(self, only: Collection[str] | None) -> FrozenTrial | None:
        """The first waiting claim of the last read (of `only`, if given), taken off the list."""
        for i, trial in enumerate(self._waiting):
            if only is None or _run_of(trial) in only:
                return self._waiting.pop(i)
        return None

    def _take(self, trial: FrozenTrial) -> bool:
        """Optuna's claim: WAITING -> RUNNING for one caller; False if another got it first."""
        try:
            return self.storage.set_trial_state_values(self._claim_id(trial), TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:  # taken and finished meanwhile
            return False

    def _claim_id(self, trial: FrozenTrial | int) -> int:
        """The storage's id of a claim trial (or trial number), through the storage's lookup."""
        number = trial if isinstance(trial, int) else trial.number
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def _is_the_runs_claim(self, claim: Claim) -> bool:
        """No live claim of the run has a lower number. Numbers grow as claims are enqueued, so
        the lower ones were enqueued before `claim`, and the read that listed `claim` lists
        them; their states are read now."""
        earlier = [n for n in self._numbers.get(claim.run, []) if n < claim.number]
        return not any(self.storage.get_trial(self._claim_id(n)).state in LIVE for n in earlier)

    def fail_stale(self) -> None:
        """Fail claims whose worker stopped beating; Optuna's callback enqueues them again."""
        optuna.storages.fail_stale_trials(self.study)
        self.fail_unbeaten()

    def fail_unbeaten(self) -> None:
        """Fail claims RUNNING for longer than the grace period without a single heartbeat: a
        worker killed between taking a claim and its first beat. Optuna's stale check skips
        trials without a heartbeat; a claim's worker attr is written just after its first beat,
        so a claim without it is failed the way `fail_stale_trials` does, with the same
        callback."""
        grace = timedelta(seconds=self.storage.grace_period or 0)
        now = datetime.now()
        for trial in self._claims((TrialState.RUNNING,)):
            started = trial.datetime_start
            if started is None or now - started <= grace:
                continue
            beaten = trial.user_attrs.get(ClaimKeys.WORKER) is not None
            if not beaten and self._take_to_fail(trial):
                callback = self.storage.get_heartbeat_stale_trial_callback()
                if callback is not None:
                    callback(self.study, self.storage.get_trial(self._claim_id(trial)))

    def _take_to_fail(self, trial: FrozenTrial) -> bool:
        try:
            return self.storage.set_trial_state_values(self._claim_id(trial), TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def counts(self) -> tuple[int, int, int]:
        """(runs complete, runs claimed now, runs in all) of our runs, whichever worker ran them."""
        complete = {_run_of(t) for t in self._claims((TrialState.COMPLETE,))}
        running = {_run_of(t) for t in self._claims((TrialState.RUNNING,))} - complete
        return len(complete), len(running), len(self.runs)
