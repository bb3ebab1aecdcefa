"""`lrbench bench --harness`: the cost of a trial through lrbench's harness against plain
Optuna, in the same command.

Both sides train the same near-trivial trials (the bowl of the `functions` task, one step per
epoch, one epoch per trial: the training is microseconds, so what is timed is the harness and
the storage) with the same sampler (`RandomSampler`, seed 0) into the same kind of storage (an
SQLite file of their own, or what `storage` names). lrbench's side is `run_suite` of a
one-run suite (the `random` strategy): its records, budget accounting, claims and
heartbeats included. The baseline is what a user writes: `study.optimize` with an objective
that trains the trial through the same training function and reports its epoch
(`trial.report`). Both sides are timed from their first trial to their last (the suite's data
loading and Optuna's study creation excluded), per trial; the ratio is lrbench's over plain
Optuna's. Optuna's floor, the same study with an objective that trains nothing, says how much of
a trial is the sampler and the storage.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch

LOW, HIGH = 1e-3, 0.1
_SUITE = """
[suite]
name = "harness_bench"
seeds = [0]
budget_epochs = {trials}
[tasks.bowl]
task = "functions"
options = {{ function = "bowl", steps_per_epoch = 1 }}
epochs_per_trial = 1
target = 1e-9
low = {low}
high = {high}
[[strategies]]
name = "random"
"""


def run_harness_bench(trials: int = 200, storage: str | None = None) -> dict[str, Any]:
    """Seconds per trial of lrbench's harness and of plain `study.optimize`, and their ratio.
    `storage`: a URL template with `{name}` for each side's storage (default: SQLite files in a
    temporary folder)."""
    if trials < 10:
        raise ValueError(f"trials must be at least 10 (a median of per-trial times), got {trials}")
    with tempfile.TemporaryDirectory(prefix="lrbench-harness-bench-") as tmp:
        folder = Path(tmp)
        url = storage or f"sqlite:///{folder}/{{name}}.db"
        lrbench_s = _lrbench_side(trials, folder, url.format(name="lrbench"))
        plain_s = _plain_side(trials, url.format(name="plain"))
        floor_s = _plain_side(trials, url.format(name="floor"), training=False)
    return {
        "trials": trials,
        "storage": url.split(":", 1)[0],
        "lrbench_s_per_trial": lrbench_s,
        "plain_s_per_trial": plain_s,
        "optuna_floor_s_per_trial": floor_s,
        "ratio": lrbench_s / plain_s,
    }


def _trial_span(trials: list[optuna.trial.FrozenTrial]) -> float:
    """Seconds from the first trial's start to the last one's end, per trial."""
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    return (max(ends) - min(starts)).total_seconds() / len(ends)


def _lrbench_side(trials: int, folder: Path, url: str) -> float:
    from lrbench.running import run_suite

    suite = folder / "harness_bench.toml"
    suite.write_text(_SUITE.format(trials=trials, low=LOW, high=HIGH))
    run_suite(suite, storage=url, device="cpu", progress=False)
    study = optuna.load_study(study_name="harness_bench/bowl/random/seed0", storage=url)
    return _trial_span(study.get_trials(deepcopy=False))


def _plain_side(trials: int, url: str, training: bool = True) -> float:
    """Plain `study.optimize`; without `training` the objective is a function of the rate alone
    (Optuna's floor: the sampler and the storage)."""
    from lrbench.tasks import get_task
    from lrbench.training import TrainConfig, train

    task = get_task("functions", function="bowl", steps_per_epoch=1)
    data = task.prepare(torch.device("cpu"))

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", LOW, HIGH, log=True)
        if not training:
            return (math.log10(lr) + 1.5) ** 2
        config = TrainConfig.for_task(task, lr, epochs=1, seed=trial.number)
        result = train(task, config, data=data)
        for record in result.history:
            trial.report(record.val, record.epoch)
        return math.inf if result.best_val is None else result.best_val

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial
    try:
        # The storage as a user opens it: Optuna's defaults, no heartbeat.
        study = optuna.create_study(storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(objective, n_trials=trials)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return _trial_span(study.get_trials(deepcopy=False))


def format_harness(row: dict[str, Any]) -> str:
    return (
        f"harness, {row['trials']} trials of a one-step bowl into {row['storage']}: "
        f"lrbench {row['lrbench_s_per_trial'] * 1e3:.1f} ms/trial, "
        f"plain study.optimize {row['plain_s_per_trial'] * 1e3:.1f} ms/trial: "
        f"lrbench x{row['ratio']:.2f} (its time per trial over plain Optuna's); "
        f"Optuna's floor (no training) {row['optuna_floor_s_per_trial'] * 1e3:.1f} ms/trial"
    )
