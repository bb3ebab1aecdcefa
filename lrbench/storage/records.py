"""What a run stores in its Optuna study, and how it is read back: the one place for key names.

A *run* is one Optuna study; its user attrs say what the run was (`RunKeys`: budget, target,
direction ...) and what it spent outside trials (the range test's overhead). Each trial's user
attrs say what that trial trained and measured (`TrialKeys`), with one entry per epoch in its
history (`EpochKeys`). Writers go through `TrialRecord.write`, `charge_overhead` and
`write_run_attrs`; readers through `TrialRecord.from_frozen` and `RunRecord.from_study` /
`RunRecord.from_storage` / `RunRecord.from_attrs`, which hold every default for a missing key.

Key names and value formats are a storage format: old stored suites must still read the same,
so keys are only ever added, never renamed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState


class TrialKeys:
    """User-attr keys of one trial."""

    EPOCHS = "epochs"  # epochs trained: steps / steps_per_epoch (what the budget is charged)
    STEPS = "steps"  # optimizer steps trained
    PLANNED_EPOCHS = "planned_epochs"  # epochs the trial was configured for (its schedule's span)
    DIVERGED = "diverged"
    CUT = "cut"  # stopped by the run's budget
    PRUNED = "pruned"
    # Test metric of the trial's best state, for a trial that was its run's best so far (else
    # None); never shown to strategies.
    TEST = "test"
    BEST_VAL = "best_val"
    BEST_EPOCH = "best_epoch"
    INITIAL_VAL = "initial_val"  # the metric before any training
    SECONDS = "seconds"  # training wall seconds
    EVAL_SECONDS = "eval_seconds"
    SCHEDULE = "schedule"  # ScheduleSpec.describe()
    OPTIMIZER = "optimizer"
    # "epoch": the optimizer was built afresh at every epoch boundary; "none" (or missing, in
    # suites stored before it was recorded): one optimizer for the whole trial.
    OPTIMIZER_RESET = "optimizer_reset"
    PHASE = "phase"  # "search", "train" or "exploit"
    HISTORY = "history"  # one EpochEntry dict per epoch
    # The keys above are stored together, as one dict under RECORD: one storage write per
    # trial instead of sixteen (a sixth of a quick suite's time went to those writes).
    RECORD = "record"
    ENQUEUED_LR = "enqueued_lr"  # the rate of a grid point enqueued after an interruption
    FAIL_REASON = "fail_reason"  # why a trial failed: "interrupted (KeyboardInterrupt)" ...


class EpochKeys:
    """Keys of one entry of a trial's history."""

    EPOCH = "epoch"
    TRAIN_LOSS = "train_loss"
    VAL = "val"
    LR = "lr"
    STEPS = "steps"
    EPOCHS_DONE = "epochs_done"
    SECONDS = "seconds"
    EVAL_SECONDS = "eval_seconds"
    EXTRAS = "extras"  # extra validation metrics by name; omitted when there are none


class RunKeys:
    """User-attr keys of a run's study."""

    # What the run is (written once, when the run starts).
    SUITE = "suite"
    TASK = "task"
    TASK_NAME = "task_name"
    STRATEGY = "strategy"
    STRATEGY_NAME = "strategy_name"
    SEED = "seed"
    BUDGET_EPOCHS = "budget_epochs"
    EPOCHS_PER_TRIAL = "epochs_per_trial"
    TARGET = "target"
    DIRECTION = "direction"
    METRIC = "metric"
    METRIC_UNIT = "metric_unit"
    LOW = "low"
    HIGH = "high"
    OPTIMIZER = "optimizer"
    TASK_OPTIONS = "task_options"
    STRATEGY_OPTIONS = "strategy_options"
    STEPS_PER_EPOCH = "steps_per_epoch"
    TRAIN_SUBSET = "train_subset"  # the suite's [data] train_subset (None: the whole split)
    CONTROL = "control"  # the suite's control strategy (label; None: the report's default)
    DEVICE = "device"
    # Published figures to set beside the run's own: [[epochs, best-so-far value], ...].
    REFERENCE = "reference"
    TARGET_PROCEDURE = "target_procedure"  # how the suite set the target, when it says
    # The settings above but SUITE are stored together, as one dict under SETTINGS: one storage
    # write per run instead of 22 (suites stored before it hold them as attrs of their own).
    SETTINGS = "settings"
    # Its progress.
    STATUS = "status"  # "running" or "complete"
    STARTED_AT = "started_at"
    FINISHED_AT = "finished_at"
    WALL_SECONDS = "wall_seconds"
    # Numbers of trials failed by an interruption (Ctrl-C, a killed worker), not by the
    # strategy: they trained nothing that counts, and results leave them out of n_failed.
    INTERRUPTED_TRIALS = "interrupted_trials"
    # What it spent outside trials, and what a strategy froze.
    OVERHEAD_STEPS = "overhead_steps"
    OVERHEAD_EPOCHS = "overhead_epochs"
    OVERHEAD_SECONDS = "overhead_seconds"
    RANGE_TEST = "range_test"  # RangeTestResult.to_dict()
    SIGDIGIT_KEPT = "sigdigit_kept"  # the significant-digit search's kept rates
    # The task's final metrics (e.g. an IWAE bound) of the chosen configuration's best state on
    # the test split, by name, with the trial number they belong to.
    CHOSEN_FINAL = "chosen_final_metrics"


# What a run records about itself when it starts (`write_run_settings`). SUITE is written
# last: a study holding it holds all of them.
RUN_SETTINGS = (
    RunKeys.TASK,
    RunKeys.TASK_NAME,
    RunKeys.STRATEGY,
    RunKeys.STRATEGY_NAME,
    RunKeys.SEED,
    RunKeys.BUDGET_EPOCHS,
    RunKeys.EPOCHS_PER_TRIAL,
    RunKeys.TARGET,
    RunKeys.DIRECTION,
    RunKeys.METRIC,
    RunKeys.METRIC_UNIT,
    RunKeys.LOW,
    RunKeys.HIGH,
    RunKeys.OPTIMIZER,
    RunKeys.TASK_OPTIONS,
    RunKeys.STRATEGY_OPTIONS,
    RunKeys.STEPS_PER_EPOCH,
    RunKeys.TRAIN_SUBSET,
    RunKeys.CONTROL,
    RunKeys.DEVICE,
    RunKeys.REFERENCE,
    RunKeys.TARGET_PROCEDURE,
    RunKeys.SUITE,
)


class ClaimKeys:
    """The coordinating study `<suite>/_runs`: one trial per claim of a run by a worker."""

    STUDY_SUFFIX = "_runs"
    RUN = "run"  # user attr: the claimed run's study name
    RELEASED = "released"  # user attr: why a claim was given up (interrupted, error ...)
    WORKER = "worker"  # user attr: who holds it, "<host>:<pid>"
    SECONDS = "seconds"  # user attr: how long the claim was held, its run done
    # The study's user attr and metric name that say what it is, for optuna-dashboard and
    # `optuna studies`: a claim's value is always 0, never a result.
    ROLE = "lrbench_role"
    ROLE_TEXT = (
        "lrbench's coordination of a suite's runs between workers: one trial per claim of a "
        "run (user attr 'run'); not results (the runs are the studies <suite>/<task>/...)"
    )
    METRIC = "claim (always 0, not a result)"


def coordinator_name(suite: str) -> str:
    return f"{suite}/{ClaimKeys.STUDY_SUFFIX}"


def is_run_study_name(name: str) -> bool:
    """`<suite>/<task>/<strategy>/seed<k>`, not the coordinating study `<suite>/_runs`."""
    return name.count("/") >= 3


# Attributes that define a run: a stored run made with other values is not the same run.
RUN_IDENTITY = (
    RunKeys.BUDGET_EPOCHS,
    RunKeys.EPOCHS_PER_TRIAL,
    RunKeys.TARGET,
    RunKeys.LOW,
    RunKeys.HIGH,
    RunKeys.OPTIMIZER,
    RunKeys.TASK_OPTIONS,
    RunKeys.STRATEGY_OPTIONS,
    RunKeys.STEPS_PER_EPOCH,
    RunKeys.TRAIN_SUBSET,
)


def _float(v: Any, default: float = 0.0) -> float:
    """A stored number, `default` for a missing or null one."""
    return default if v is None else float(v)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _finite_or_none(v: float | None) -> float | None:
    """JSON (the storage's format) refuses NaN/inf: non-finite values are stored as null."""
    return v if v is not None and math.isfinite(v) else None


# --------------------------------------------------------------------------------------------- #
# One epoch
# --------------------------------------------------------------------------------------------- #
@dataclass(frozen=True)
class EpochEntry:
    """One epoch of a trial's history, as stored (`val`/`train_loss` None when non-finite)."""

    epoch: int
    train_loss: float | None
    val: float | None
    lr: float | None
    steps: int
    epochs_done: float
    seconds: float
    eval_seconds: float
    extras: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_record(cls, r: Any) -> EpochEntry:
        """From the engine's EpochRecord (anything with its fields)."""
        return cls(
            r.epoch,
            _finite_or_none(r.train_loss),
            _finite_or_none(r.val),
            r.lr,
            r.steps,
            r.epochs_done,
            r.seconds,
            r.eval_seconds,
            {k: v for k, v in getattr(r, "extras", {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            EpochKeys.EPOCH: self.epoch,
            EpochKeys.TRAIN_LOSS: self.train_loss,
            EpochKeys.VAL: self.val,
            EpochKeys.LR: self.lr,
            EpochKeys.STEPS: self.steps,
            EpochKeys.EPOCHS_DONE: self.epochs_done,
            EpochKeys.SECONDS: self.seconds,
            EpochKeys.EVAL_SECONDS: self.eval_seconds,
        }
        if self.extras:
            d[EpochKeys.EXTRAS] = {k: _finite_or_none(v) for k, v in self.extras.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EpochEntry:
        val = d.get(EpochKeys.VAL)
        return cls(
            epoch=int(d.get(EpochKeys.EPOCH, 0) or 0),
            train_loss=_opt_float(d.get(EpochKeys.TRAIN_LOSS)),
            val=None if val is None or not math.isfinite(float(val)) else float(val),
            lr=_opt_float(d.get(EpochKeys.LR)),
            steps=int(d.get(EpochKeys.STEPS, 0) or 0),
            epochs_done=_float(d.get(EpochKeys.EPOCHS_DONE)),
            seconds=_float(d.get(EpochKeys.SECONDS)),
            eval_seconds=_float(d.get(EpochKeys.EVAL_SECONDS)),
            extras={
                k: math.nan if v is None else float(v)
                for k, v in (d.get(EpochKeys.EXTRAS) or {}).items()
            },
        )


# --------------------------------------------------------------------------------------------- #
# One trial
# --------------------------------------------------------------------------------------------- #
@dataclass(frozen=True)
class TrialRecord:
    """What one trial stored about itself; read back with the defaults of a missing key.

    A trial interrupted before it stored anything reads as zero epochs and steps, not
    diverged, not cut, pruned only when its state says so.
    """

    epochs: float = 0.0
    steps: int = 0
    planned_epochs: int | None = None  # None in suites stored before it was recorded
    diverged: bool = False
    cut: bool = False
    pruned: bool = False
    test: float | None = None
    best_val: float | None = None
    best_epoch: int | None = None
    initial_val: float | None = None
    seconds: float | None = None  # None when the trial stored none (interrupted)
    eval_seconds: float | None = None
    schedule: str | None = None
    optimizer: str | None = None
    optimizer_reset: str = "none"
    phase: str | None = None
    history: tuple[EpochEntry, ...] = ()

    @classmethod
    def from_frozen(cls, trial: FrozenTrial) -> TrialRecord:
        return cls.from_attrs(trial.user_attrs, state=trial.state)

    @classmethod
    def from_attrs(cls, a: Mapping[str, Any], state: TrialState | None = None) -> TrialRecord:
        a = record_attrs(a)
        planned = a.get(TrialKeys.PLANNED_EPOCHS)
        best_epoch = a.get(TrialKeys.BEST_EPOCH)
        return cls(
            epochs=_float(a.get(TrialKeys.EPOCHS)),
            steps=int(a.get(TrialKeys.STEPS, 0) or 0),
            planned_epochs=None if planned is None else int(planned),
            diverged=bool(a.get(TrialKeys.DIVERGED, False)),
            cut=bool(a.get(TrialKeys.CUT, False)),
            pruned=bool(a.get(TrialKeys.PRUNED, state == TrialState.PRUNED)),
            test=_opt_float(a.get(TrialKeys.TEST)),
            best_val=_opt_float(a.get(TrialKeys.BEST_VAL)),
            best_epoch=None if best_epoch is None else int(best_epoch),
            initial_val=_opt_float(a.get(TrialKeys.INITIAL_VAL)),
            seconds=_opt_float(a.get(TrialKeys.SECONDS)),
            eval_seconds=_opt_float(a.get(TrialKeys.EVAL_SECONDS)),
            schedule=a.get(TrialKeys.SCHEDULE),
            optimizer=a.get(TrialKeys.OPTIMIZER),
            optimizer_reset=a.get(TrialKeys.OPTIMIZER_RESET) or "none",
            phase=a.get(TrialKeys.PHASE),
            history=tuple(EpochEntry.from_dict(e) for e in a.get(TrialKeys.HISTORY) or ()),
        )

    @property
    def total_seconds(self) -> float:
        """Training plus evaluation seconds (0 for what was not stored)."""
        return (self.seconds or 0.0) + (self.eval_seconds or 0.0)

    @property
    def final_val(self) -> float | None:
        """The last epoch's validation metric (None when that epoch diverged or none ran)."""
        return self.history[-1].val if self.history else None

    def to_attrs(self) -> dict[str, Any]:
        """The user attrs this record is stored as (the format `from_attrs` reads)."""
        return {
            TrialKeys.EPOCHS: self.epochs,
            TrialKeys.STEPS: self.steps,
            TrialKeys.DIVERGED: self.diverged,
            TrialKeys.CUT: self.cut,
            TrialKeys.PRUNED: self.pruned,
            TrialKeys.TEST: self.test,
            TrialKeys.BEST_VAL: self.best_val,
            TrialKeys.BEST_EPOCH: self.best_epoch,
            TrialKeys.INITIAL_VAL: self.initial_val,
            TrialKeys.SECONDS: self.seconds,
            TrialKeys.EVAL_SECONDS: self.eval_seconds,
            TrialKeys.SCHEDULE: self.schedule,
            TrialKeys.OPTIMIZER: self.optimizer,
            TrialKeys.OPTIMIZER_RESET: self.optimizer_reset,
            TrialKeys.PHASE: self.phase,
            TrialKeys.PLANNED_EPOCHS: self.planned_epochs,
            TrialKeys.HISTORY: [e.to_dict() for e in self.history],
        }

    def write(self, trial: optuna.Trial) -> None:
        """Store this record as `trial`'s user attr RECORD."""
        trial.set_user_attr(TrialKeys.RECORD, self.to_attrs())


def record_attrs(user_attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    """A trial's record keys (TrialKeys): the RECORD dict, or, in suites stored before it
    existed, the trial's user attrs themselves; empty when the trial stored no record."""
    return user_attrs.get(TrialKeys.RECORD, user_attrs)


# --------------------------------------------------------------------------------------------- #
# One run
# --------------------------------------------------------------------------------------------- #
@dataclass(frozen=True)
class RunRecord:
    """What a run's study stored about itself (its user attrs), typed, with defaults.

    Name-derived fallbacks (task, strategy, seed from `<suite>/<task>/<strategy>/seed<k>`)
    cover studies stored without those attrs.
    """

    name: str
    attrs: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_attrs(cls, name: str, attrs: Mapping[str, Any]) -> RunRecord:
        return cls(name, run_attrs(attrs))

    @classmethod
    def from_study(cls, study: optuna.Study) -> RunRecord:
        return cls.from_attrs(study.study_name, study.user_attrs)

    @classmethod
    def from_storage(
        cls, storage: str | optuna.storages.BaseStorage, study_name: str
    ) -> RunRecord:
        return cls.from_study(optuna.load_study(study_name=study_name, storage=storage))

    def _name_part(self, i: int) -> str:
        return self.name.split("/")[i] if self.name.count("/") >= 3 else ""

    @property
    def suite(self) -> str:
        return str(self.attrs.get(RunKeys.SUITE, self.name.split("/")[0]))

    @property
    def task(self) -> str:
        return str(self.attrs.get(RunKeys.TASK, self._name_part(1)))

    @property
    def strategy(self) -> str:
        return str(self.attrs.get(RunKeys.STRATEGY, self._name_part(2)))

    @property
    def seed(self) -> int:
        if RunKeys.SEED in self.attrs:
            return int(self.attrs[RunKeys.SEED])
        last = self.name.rsplit("/", 1)[-1]
        return int(last[4:]) if last.startswith("seed") and last[4:].isdigit() else 0

    @property
    def direction(self) -> str:
        return str(self.attrs.get(RunKeys.DIRECTION, "minimize"))

    @property
    def target(self) -> float:
        return _float(self.attrs.get(RunKeys.TARGET), math.nan)

    @property
    def budget_epochs(self) -> float:
        return _float(self.attrs.get(RunKeys.BUDGET_EPOCHS), math.nan)

    @property
    def epochs_per_trial(self) -> int | None:
        v = self.attrs.get(RunKeys.EPOCHS_PER_TRIAL)
        return None if v is None else int(v)

    @property
    def steps_per_epoch(self) -> int | None:
        v = self.attrs.get(RunKeys.STEPS_PER_EPOCH)
        return None if v is None else int(v)

    @property
    def status(self) -> str:
        return str(self.attrs.get(RunKeys.STATUS, "unknown"))

    @property
    def wall_seconds(self) -> float:
        return _float(self.attrs.get(RunKeys.WALL_SECONDS), math.nan)

    @property
    def overhead_steps(self) -> int:
        return int(self.attrs.get(RunKeys.OVERHEAD_STEPS, 0) or 0)

    @property
    def overhead_epochs(self) -> float:
        return _float(self.attrs.get(RunKeys.OVERHEAD_EPOCHS))

    @property
    def overhead_seconds(self) -> float:
        return _float(self.attrs.get(RunKeys.OVERHEAD_SECONDS))

    @property
    def range_test(self) -> dict[str, Any] | None:
        """The stored range test (`RangeTestResult.from_dict` reads it), or None."""
        return self.attrs.get(RunKeys.RANGE_TEST)

    @property
    def reference(self) -> list[tuple[int, float]]:
        return [(int(e), float(v)) for e, v in self.attrs.get(RunKeys.REFERENCE) or []]

    @property
    def chosen_final_metrics(self) -> dict[str, Any] | None:
        return self.attrs.get(RunKeys.CHOSEN_FINAL)

    @property
    def sigdigit_kept(self) -> list[float] | None:
        return self.attrs.get(RunKeys.SIGDIGIT_KEPT)

    @property
    def interrupted_trials(self) -> list[int]:
        return [int(n) for n in self.attrs.get(RunKeys.INTERRUPTED_TRIALS) or ()]

    @property
    def settings_complete(self) -> bool:
        """Whether the run's settings are all stored (a run killed while writing them is not)."""
        return all(key in self.attrs for key in RUN_SETTINGS)

    @property
    def readable(self) -> bool:
        """Whether a report can read the run: its marker and its epoch size are stored (also in
        suites stored before some settings were recorded)."""
        return RunKeys.SUITE in self.attrs and RunKeys.STEPS_PER_EPOCH in self.attrs

    def get(self, key: str, default: Any = None) -> Any:
        """Any other attr by its `RunKeys` name (metric, device, optimizer ...)."""
        return self.attrs.get(key, default)


def run_attrs(user_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A run study's keys (RunKeys), its SETTINGS dict unfolded among its other attrs. Suites
    stored before SETTINGS existed hold every key as an attr of its own; where both are stored
    (such a run resumed and its settings written again), SETTINGS is the newer."""
    out = {k: v for k, v in user_attrs.items() if k != RunKeys.SETTINGS}
    out.update(user_attrs.get(RunKeys.SETTINGS) or {})
    return out


# --------------------------------------------------------------------------------------------- #
# Writing a run's own attrs
# --------------------------------------------------------------------------------------------- #
def write_run_attrs(study: optuna.Study, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def write_run_settings(study: optuna.Study, settings: Mapping[str, Any]) -> None:
    """Store a run's settings (every `RUN_SETTINGS` key): all but the `suite` marker as one
    SETTINGS dict, then the marker.

    A process killed in between leaves a study without the marker, whose settings are written
    again, whole, when the run is resumed.
    """
    missing = [key for key in RUN_SETTINGS if key not in settings]
    if missing:
        raise KeyError(f"run settings without {missing}")
    study.set_user_attr(
        RunKeys.SETTINGS, {key: settings[key] for key in RUN_SETTINGS if key != RunKeys.SUITE}
    )
    study.set_user_attr(RunKeys.SUITE, settings[RunKeys.SUITE])


def charge_overhead(study: optuna.Study, steps: int, steps_per_epoch: int, seconds: float) -> None:
    """Add training outside trials (a range test) to the run's overhead: steps, epochs, seconds."""
    run = RunRecord.from_study(study)
    total = run.overhead_steps + int(steps)
    study.set_user_attr(RunKeys.OVERHEAD_STEPS, total)
    study.set_user_attr(RunKeys.OVERHEAD_EPOCHS, total / steps_per_epoch)
    study.set_user_attr(RunKeys.OVERHEAD_SECONDS, run.overhead_seconds + float(seconds))


def add_wall_seconds(study: optuna.Study, seconds: float) -> None:
    previous = _float(study.user_attrs.get(RunKeys.WALL_SECONDS))
    study.set_user_attr(RunKeys.WALL_SECONDS, previous + float(seconds))


def spent_steps(study: optuna.Study) -> int:
    """Steps the run has charged so far: its overhead plus the steps of every trial that counts.

    A trial an interruption failed is not charged: a kill can land after the trial stored its
    steps and before it was told, and the resumed run must spend what an uninterrupted one does.
    """
    run = RunRecord.from_study(study)
    skip = set(run.interrupted_trials)
    return run.overhead_steps + sum(
        int(record_attrs(t.user_attrs).get(TrialKeys.STEPS, 0) or 0)
        for t in study.get_trials(deepcopy=False)
        if t.number not in skip
    )


def fail_interrupted_trials(
    study: optuna.Study, storage: optuna.storages.BaseStorage, reason: str | None = None
) -> list[int]:
    """Fail the trials a killed process left RUNNING (or enqueued and never began); return
    their numbers.

    Without a `reason` they are a dead worker's, found on resume: noted as interrupted.

    Only for a study that this process alone drives. Through `Study.tell`, which refuses a
    trial another route (a storage heartbeat) already finished: those are skipped.
    """
    unfinished = (TrialState.RUNNING, TrialState.WAITING)
    trials = study.get_trials(deepcopy=False, states=unfinished)
    study_id, failed = storage.get_study_id_from_name(study.study_name), []
    for frozen in trials:
        # The storage's public lookups: a trial of a dead process has no Trial object to hold.
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        try:
            storage.set_trial_user_attr(trial_id, TrialKeys.FAIL_REASON, reason or LOST_WORKER)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished meanwhile by another route
        if frozen.state == TrialState.WAITING:  # `tell` takes only a running trial
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        else:
            study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
        failed.append(frozen.number)
    if reason is None:
        note_interrupted(study, failed)
    return failed


LOST_WORKER = "worker lost: left running by a process that stopped, failed on resume"


def note_interrupted(study: optuna.Study, numbers: list[int]) -> None:
    """Record trials failed by an interruption, not by the strategy (see INTERRUPTED_TRIALS)."""
    if not numbers:
        return
    previous = RunRecord.from_study(study).interrupted_trials
    new = [n for n in numbers if n not in previous]
    if new:
        study.set_user_attr(RunKeys.INTERRUPTED_TRIALS, previous + new)


def interruption_reason(exc: BaseException) -> str:
    """A failed trial's FAIL_REASON for the exception that stopped it."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGINT)"
    return f"{type(exc).__name__}: {exc}"[:500]
