"""`lrbench calibrate`: a task's target set by a stated procedure, before the runs it judges.

The procedure (design.md, "Targets are fixed before the runs"): train one reference
configuration (the task's default rate, optimizer and schedule, or one given) with n seeds
(default 5) for the suite's epochs per trial, and propose as the target the median of their
best validation values. A diverged seed counts as the worst value. The seeds default to 1000,
1001, ...: not the seeds the suites run (0, 1, ...), so the target is not fitted to the very
runs it is used to judge.

`write_target` records the target in the suite with the procedure beside it, as the task's
`target_procedure` key (stored with every run, and stated by the report).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from lrbench.errors import ConfigError
from lrbench.report import fmt
from lrbench.tools import ScheduleSpec

FIRST_SEED = 1000
N_SEEDS = 5
PROCEDURE_COMMENT = "# target procedure:"


@dataclass
class Calibration:
    """A proposed target: the median of `best_vals`, one per seed of the reference configuration."""

    label: str
    task: str
    metric: str
    direction: str
    lr: float
    optimizer: str
    schedule: str
    epochs: int
    seeds: list[int]
    best_vals: list[float]
    data: str = ""
    reference: str = "the task's default configuration"
    notes: list[str] = field(default_factory=list)

    @property
    def target(self) -> float:
        """The median of the seeds' best validation values, to 6 significant digits, rounded
        toward the easier side (up when lower is better), so the median seed still meets it."""
        median = Decimal(repr(float(statistics.median(self.best_vals))))
        if not median.is_finite() or median == 0:
            return float(median)
        unit = Decimal(1).scaleb(median.adjusted() - 5)
        rounding = ROUND_CEILING if self.direction == "minimize" else ROUND_FLOOR
        return float(median.quantize(unit, rounding=rounding))

    @property
    def procedure(self) -> str:
        """The procedure in one line, with the per-seed values (what the suite records)."""
        seeds = _seed_range(self.seeds)
        values = ", ".join(fmt(v) for v in self.best_vals)
        return (
            f"lrbench calibrate: median of the best validation {self.metric} of {self.reference} "
            f"({self.optimizer}, lr {self.lr:g}, {self.schedule}) over seeds {seeds}, "
            f"{self.epochs} epochs each{self.data}: {values}"
        )


def _seed_range(seeds: Sequence[int]) -> str:
    s = list(seeds)
    if len(s) > 2 and s == list(range(s[0], s[0] + len(s))):
        return f"{s[0]}-{s[-1]}"
    return ", ".join(map(str, s))


def calibrate_task(
    task: Any,
    *,
    label: str | None = None,
    epochs: int | None = None,
    seeds: Sequence[int] | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    schedule: ScheduleSpec | None = None,
    data_options: Any = None,
    device: str = "auto",
    on_seed: Callable[[int, float], None] | None = None,
) -> Calibration:
    """Train the reference configuration of `task` (a `Task`) once per seed and return the
    proposed target with its procedure. `on_seed(seed, best)` is called after each seed."""
    from lrbench.tasks import DataOptions
    from lrbench.training import TrainConfig, resolve_device, train

    seeds = list(seeds if seeds is not None else range(FIRST_SEED, FIRST_SEED + N_SEEDS))
    if not seeds:
        raise ConfigError("calibrate: give at least one seed")
    dev = resolve_device(device)
    data_options = data_options or DataOptions()
    data = task.prepare(dev, data_options)
    bests = []
    for seed in seeds:
        config = TrainConfig.for_task(
            task, lr, epochs=epochs, optimizer=optimizer, schedule=schedule, seed=seed
        )
        result = train(task, config, device=dev, data=data, evaluate_test=False)
        best = result.best_val if result.best_val is not None else task.worst_value()
        bests.append(float(best))
        if on_seed is not None:
            on_seed(seed, float(best))
    given = lr is not None or optimizer is not None or schedule is not None
    return Calibration(
        label=label or task.name,
        task=task.name,
        metric=task.metric,
        direction=task.direction,
        lr=config.lr,
        optimizer=config.optimizer,
        schedule=config.schedule.describe(),
        epochs=config.epochs,
        seeds=seeds,
        best_vals=bests,
        data=_data_words(task, data_options),
        reference="a given configuration" if given else "the task's default configuration",
    )


def _data_words(task: Any, data_options: Any) -> str:
    parts = []
    if getattr(data_options, "train_subset", None):
        parts.append(f"train_subset {data_options.train_subset}")
    if task.options.get("val_size") is not None:
        parts.append(f"val_size {task.options['val_size']}")
    return f" ({', '.join(parts)})" if parts else ""


# --------------------------------------------------------------------------------------------- #
# Recording the target in a suite
# --------------------------------------------------------------------------------------------- #
def write_target(path: str | Path, label: str, calibration: Calibration) -> str:
    """Set `target` of `[tasks.<label>]` in the suite file at `path` to the calibrated value,
    with the procedure beside it; return the new text (also written). The file is read back
    with `load_suite` before it is replaced, so a suite is never left unreadable."""
    from lrbench.running import load_suite

    path = Path(path)
    text = path.read_text()
    new = set_target_text(text, label, calibration.target, calibration.procedure)
    tmp = path.with_name(f".{path.name}.calibrate")
    tmp.write_text(new)
    try:
        suite = load_suite(tmp)
    except ConfigError:
        tmp.unlink()
        raise
    spec = next(t for t in suite.tasks if t.label == label)
    if spec.target != calibration.target:
        tmp.unlink()
        raise ConfigError(f"{path}: wrote target {calibration.target} but read {spec.target}")
    tmp.replace(path)
    return new


def set_target_text(text: str, label: str, target: float, procedure: str) -> str:
    """The suite's TOML text with `[tasks.<label>]`'s target set to `target` and the procedure
    recorded as its `target_procedure` key, replacing what an earlier calibration recorded
    there (a key, or the comment line older versions wrote)."""
    lines = text.splitlines()
    start, end = _table_span(lines, f"tasks.{label}")
    old = next((ln for ln in lines[start + 1 : end] if re.match(r"\s*target\s*=", ln)), "")
    comment = old[old.index("#") :] if "#" in old else ""
    body = [
        ln
        for ln in lines[start + 1 : end]
        if not ln.strip().startswith(PROCEDURE_COMMENT)
        and not re.match(r"\s*target_procedure\s*=", ln)
        and not re.match(r"\s*target\s*=", ln)
    ]
    procedure_line = f"target_procedure = {_toml_string(procedure)}"
    # After the `task = ...` line when there is one (the table reads task, then its target),
    # else after the table's leading comment.
    at = next((i + 1 for i, ln in enumerate(body) if re.match(r"\s*task\s*=", ln)), None)
    if at is None:
        at = next((i for i, ln in enumerate(body) if not ln.lstrip().startswith("#")), len(body))
    target_line = f"target = {target!r}"
    if comment:  # the old line's own comment (what the metric is) stays with it
        target_line = f"{target_line:<28} {comment}"
    body[at:at] = [procedure_line, target_line]
    out = [*lines[: start + 1], *body, *lines[end:]]
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _table_span(lines: list[str], table: str) -> tuple[int, int]:
    """(index of the `[table]` header, index of the next header or the end)."""
    header = re.compile(r"^\s*\[\s*" + re.escape(table) + r"\s*\]\s*(#.*)?$")
    start = next((i for i, ln in enumerate(lines) if header.match(ln)), None)
    if start is None:
        raise ConfigError(f"no [{table}] table in the suite")
    nxt = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^\s*\[", lines[i])), len(lines)
    )
    # Blank lines and comments just before the next header belong to what follows.
    while nxt - 1 > start and (
        not lines[nxt - 1].strip() or lines[nxt - 1].lstrip().startswith("#")
    ):
        nxt -= 1
    return start, nxt


def _toml_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------------------------- #
# The command
# --------------------------------------------------------------------------------------------- #
def calibrate_command(
    what: str,
    *,
    task_label: str | None = None,
    n_seeds: int = N_SEEDS,
    first_seed: int = FIRST_SEED,
    epochs: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    schedule: ScheduleSpec | None = None,
    device: str = "auto",
    write: bool = False,
    data_options: Any = None,
    task_options: dict[str, Any] | None = None,
    out: Callable[[str], None] = print,
) -> list[Calibration]:
    """`lrbench calibrate SUITE|TASK`: calibrate every task of a suite (or `task_label`), or one
    bare task by registry name; print the procedure and per-seed values; with `write`, record
    each target and its procedure in the suite."""
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {n_seeds}")
    seeds = list(range(first_seed, first_seed + n_seeds))
    jobs = _jobs(what, task_label, data_options, task_options)
    if write and jobs[0][0] is None:
        raise ConfigError("--write needs a suite: a bare task has no file to record its target in")
    results = []
    for path, label, task, per_trial, data in jobs:
        out(f"{label}: training {task.name} with seeds {_seed_range(seeds)} ...")

        def on_seed(s: int, v: float, m: str = task.metric) -> None:
            out(f"  seed {s}: best validation {m} {fmt(v)}")

        cal = calibrate_task(
            task,
            label=label,
            epochs=epochs or per_trial,
            seeds=seeds,
            lr=lr,
            optimizer=optimizer,
            schedule=schedule,
            data_options=data,
            device=device,
            on_seed=on_seed,
        )
        if not math.isfinite(cal.target):
            raise ConfigError(
                f"{label}: every seed of the reference diverged: no target to propose"
            )
        out(f"  procedure: {cal.procedure}")
        out(
            f"  proposed target: {fmt(cal.target)} ({'≤' if cal.direction == 'minimize' else '≥'})"
        )
        if write:
            assert path is not None  # checked above: the tasks are a suite's, all with its path
            write_target(path, label, cal)
            out(f"  written to {path} [tasks.{label}]")
        results.append(cal)
    return results


def _jobs(
    what: str, task_label: str | None, data_options: Any, task_options: dict[str, Any] | None
) -> list[tuple[Path | None, str, Any, int | None, Any]]:
    """(suite path or None, label, Task, epochs per trial, data options) per task to calibrate."""
    from lrbench.running import load_suite
    from lrbench.tasks import TASKS, get_task

    if what in TASKS and not Path(what).exists():
        if task_label:
            raise ConfigError("--task picks a task of a suite; give a suite, or the task alone")
        task = get_task(what, **(task_options or {}))
        return [(None, what, task, None, data_options)]
    suite = load_suite(what)
    tasks = [t for t in suite.tasks if task_label in (None, t.label)]
    if not tasks:
        labels = ", ".join(t.label for t in suite.tasks)
        raise ConfigError(
            f"suite {suite.name!r} has no task labelled {task_label!r}; it has {labels}"
        )
    return [
        (suite.path, t.label, get_task(t.name, **t.options), t.epochs_per_trial, suite.data)
        for t in tasks
    ]
