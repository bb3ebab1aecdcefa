"""Suites: TOML files under `studies/` naming tasks x strategies x seeds, budgets and targets.

Validated completely on load, before anything runs or is written: an unknown key, a wrong
type, an unknown task or strategy, a non-positive budget, low >= high... is a `ConfigError`
naming the file, the key and what is wrong.

    [suite]
    description = "..."
    seeds = [0, 1]              # every task's seeds; a task may override them
    budget_epochs = 60          # per run; a task may override it

    [data]                      # data options for every task
    train_subset = 10000        # optional
    data_root = "/path"         # optional

    [tasks.digits]              # the table key is the task's label in the report
    task = "digits"             # registry name; defaults to the label
    target = 0.96               # overrides the task's default target
    target_procedure = "..."    # optional; how the target was set (lrbench calibrate --write)
    epochs_per_trial = 10
    low = 1e-4                  # the learning-rate search range
    high = 1.0
    budget_epochs = 60
    seeds = [0, 1, 2, 3]        # optional; every strategy of the task runs on these seeds
    optimizer = "adam"
    options = { hidden = 64 }   # task options

    [[strategies]]
    name = "tpe+hyperband"      # registry name
    label = "tpe-hb"            # optional; names the run and the report row
    tasks = ["digits"]          # optional; default every task
    optimizer = "sgd"           # optional; overrides the task's optimizer
    reference = { 50 = 235.11, 100 = 234.16 }  # optional; published best-so-far validation
                                # values at these cumulative epochs, shown beside the run's own
    n_startup_trials = 5        # any other key is a strategy option
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (a version check, not try/except, so that mypy checks the branch it runs)
    import tomli as tomllib

from lrbench.errors import ConfigError, LrbenchError
from lrbench.limits import MAX_EPOCHS, MAX_NAME, MAX_SEED, MAX_SEEDS, MAX_TRAIN_SUBSET
from lrbench.tasks import DataOptions, get_task
from lrbench.tools import OPTIMIZERS

STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"
_LABEL = re.compile(r"^[A-Za-z0-9_.+\-]+$")


@dataclass(frozen=True)
class TaskSpec:
    label: str
    name: str
    options: dict[str, Any]
    target: float
    epochs_per_trial: int
    low: float
    high: float
    budget_epochs: float
    optimizer: str | None
    # How the target was set (e.g. by `lrbench calibrate`), shown in the report.
    target_procedure: str | None = None
    # The task's own seeds (a cheap task can afford more paired seeds); None: the suite's.
    seeds: tuple[int, ...] | None = None


@dataclass(frozen=True)
class StrategySpec:
    label: str
    name: str
    options: dict[str, Any]
    tasks: tuple[str, ...] | None
    optimizer: str | None
    # Published best-so-far validation values at cumulative epochs (e.g. seed 002's table 6),
    # which the report sets beside this strategy's own.
    reference: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class RunSpec:
    suite: str
    task: TaskSpec
    strategy: StrategySpec
    seed: int
    control: str | None = None  # the suite's control strategy (label), stored with the run

    @property
    def study_name(self) -> str:
        return f"{self.suite}/{self.task.label}/{self.strategy.label}/seed{self.seed}"

    @property
    def optimizer(self) -> str | None:
        return self.strategy.optimizer or self.task.optimizer


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    seeds: tuple[int, ...]
    tasks: tuple[TaskSpec, ...]
    strategies: tuple[StrategySpec, ...]
    data: DataOptions = field(default_factory=DataOptions)
    control: str | None = None  # the planned comparisons' control strategy (a label)

    def runs(self, only: str | None = None) -> list[RunSpec]:
        """Every (task, strategy, seed), optionally filtered by `task/strategy` (either part may be `*`)."""
        want_task, _, want_strategy = (only or "*/*").partition("/")
        runs: list[RunSpec] = []
        for task in self.tasks:
            for strat in self.strategies:
                if strat.tasks is not None and task.label not in strat.tasks:
                    continue
                if want_task not in ("*", task.label) or (want_strategy or "*") not in (
                    "*",
                    strat.label,
                ):
                    continue
                runs.extend(
                    RunSpec(self.name, task, strat, seed, self.control)
                    for seed in task.seeds or self.seeds
                )
        if only and not runs:
            raise ConfigError(f"--only {only!r} matches no run of suite {self.name!r}")
        return runs


def resolve_suite_path(suite: str | Path) -> Path:
    """A TOML path, or a suite name: the stem of a file under `studies/`.

    `studies/` is looked up here, then in the package's checkout."""
    p = Path(suite)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: no such suite file")
        return p
    for folder in (Path.cwd() / "studies", STUDIES_DIR):
        candidate = folder / f"{suite}.toml"
        if candidate.exists():
            return candidate
    raise ConfigError(
        f"no suite named {suite!r}: looked for studies/{suite}.toml in {Path.cwd()} and {STUDIES_DIR.parent}"
    )


class _Reader:
    """Typed access to one TOML table, with errors naming the file and the dotted key."""

    def __init__(self, path: Path, table: dict[str, Any], where: str) -> None:
        self.path, self.table, self.where = path, table, where
        self.used: set[str] = set()

    def error(self, key: str, what: str) -> ConfigError:
        dotted = f"{self.where}.{key}" if self.where else key
        return ConfigError(f"{self.path}: {dotted}: {what}")

    def get(
        self, key: str, types: type | tuple[type, ...], default: Any = None, required: bool = False
    ) -> Any:
        self.used.add(key)
        if key not in self.table:
            if required:
                raise self.error(key, "missing (required)")
            return default
        value = self.table[key]
        if isinstance(value, bool) and bool not in (
            types if isinstance(types, tuple) else (types,)
        ):
            raise self.error(key, f"expected {_type_names(types)}, got a boolean")
        if not isinstance(value, types):
            raise self.error(
                key, f"expected {_type_names(types)}, got {type(value).__name__} {value!r}"
            )
        return value

    def positive(
        self,
        key: str,
        default: Any = None,
        required: bool = False,
        integer: bool = False,
        maximum: int | None = None,
    ) -> Any:
        value = self.get(key, int if integer else (int, float), default, required)
        if value is not None and not value > 0:
            raise self.error(key, f"must be positive, got {value!r}")
        if value is not None and not math.isfinite(value):
            raise self.error(key, f"must be finite, got {value!r}")
        if value is not None and maximum is not None and value > maximum:
            raise self.error(key, f"must be at most {maximum}, got {value!r}")
        return value

    def number(self, key: str, default: Any = None) -> Any:
        """A finite number (NaN or infinity would compare false with every value)."""
        value = self.get(key, (int, float), default)
        if value is not None and not math.isfinite(value):
            raise self.error(key, f"must be a finite number, got {value!r}")
        return value

    def rest(self) -> dict[str, Any]:
        return {k: v for k, v in self.table.items() if k not in self.used}

    def reject_unknown(self, allowed_hint: str) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], f"unknown key; allowed: {allowed_hint}")


def _type_names(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
        bool: "true/false",
    }
    return " or ".join(names.get(t, t.__name__) for t in types)


def load_suite(suite: str | Path) -> Suite:
    """Read and validate a suite: a path to a TOML file or the name of one under `studies/`."""
    path = resolve_suite_path(suite)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None

    top = _Reader(path, doc, "")
    head = _Reader(path, top.get("suite", dict, {}), "suite")
    name = head.get("name", str, path.stem)
    problem = _label_problem(name)
    if problem:
        raise head.error("name", problem)
    description = head.get("description", str, "")
    seeds_raw = _seeds(head, [0])
    default_budget = head.positive("budget_epochs", required=True, maximum=MAX_EPOCHS)
    # The strategy every other is tested against, fixed before the runs (the report's planned
    # comparisons); None: the task's fixed default rate, the strategy labelled `fixed`.
    control = head.get("control", str)
    head.reject_unknown("name, description, seeds, budget_epochs, control")

    data_r = _Reader(path, top.get("data", dict, {}), "data")
    data = DataOptions(
        data_root=data_r.get("data_root", str),
        train_subset=data_r.positive("train_subset", integer=True, maximum=MAX_TRAIN_SUBSET),
        download=data_r.get("download", bool, False),
    )
    data_r.reject_unknown("data_root, train_subset, download")

    tasks_table = top.get("tasks", dict, required=True)
    if not tasks_table:
        raise top.error("tasks", "no task given")
    tasks = tuple(
        _task_spec(path, label, table, default_budget) for label, table in tasks_table.items()
    )

    strategies = _strategy_specs(
        path, top.get("strategies", list, required=True), {t.label for t in tasks}
    )
    top.reject_unknown("suite, data, tasks, strategies")
    if control is not None and control not in {st.label for st in strategies}:
        raise head.error(
            "control",
            f"{control!r} is no strategy's label; the suite's strategies are "
            f"{', '.join(st.label for st in strategies)}",
        )
    return Suite(name, path, description, tuple(seeds_raw), tasks, strategies, data, control)


def _label_problem(label: str) -> str | None:
    """What is wrong with a name that becomes part of study and file names, or None."""
    if len(label) > MAX_NAME:
        return (
            f"{_short(label)!r} is too long ({len(label)} characters, at most {MAX_NAME}): "
            "it becomes part of file names"
        )
    if not _LABEL.match(label):
        return f"{label!r} may hold only letters, digits and _ . + -"
    return None


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:20] + "..."


def _seeds(head: _Reader, default: list[int] | None = None) -> list[int]:
    """`seeds` of the suite or a task: distinct integers from 0 to MAX_SEED, at most MAX_SEEDS."""
    seeds = head.get("seeds", list, default)
    if seeds is None:
        return []
    if len(seeds) > MAX_SEEDS:  # checked first: the message must not print them all
        raise head.error("seeds", f"{len(seeds)} seeds: at most {MAX_SEEDS} seeds per suite")
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise head.error("seeds", f"expected a non-empty list of integers, got {seeds!r}")
    bad = next((s for s in seeds if not 0 <= s <= MAX_SEED), None)
    if bad is not None:
        raise head.error(
            "seeds", f"seed {bad} is out of range: seeds are from 0 to at most {MAX_SEED}"
        )
    if len(set(seeds)) != len(seeds):
        raise head.error("seeds", f"repeated seed in {seeds!r}")
    return seeds


def _task_spec(path: Path, label: str, table: Any, default_budget: float) -> TaskSpec:
    where = f"tasks.{_short(label)}"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {where}: expected a table")
    problem = _label_problem(label)
    if problem:
        raise ConfigError(f"{path}: {where}: label {problem}")
    r = _Reader(path, table, where)
    name = r.get("task", str, label)
    options = r.get("options", dict, {})
    try:
        task = get_task(name, **options)
    except LrbenchError as e:
        raise r.error("task" if "unknown task" in str(e) else "options", str(e)) from None
    target = r.number("target", task.default_target)
    if target is None:
        raise r.error("target", f"task {name!r} has no default target: set one")
    epochs = r.positive("epochs_per_trial", task.default_epochs, integer=True, maximum=MAX_EPOCHS)
    low = r.positive("low", 1e-5)
    high = r.positive("high", 1.0)
    if low >= high:
        raise r.error("low", f"low ({low}) must be below high ({high})")
    budget = r.positive("budget_epochs", default_budget, maximum=MAX_EPOCHS)
    optimizer = r.get("optimizer", str)
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise r.error(
            "optimizer", f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    procedure = r.get("target_procedure", str)
    seeds = _seeds(r)
    r.reject_unknown(
        "task, target, target_procedure, epochs_per_trial, low, high, budget_epochs, seeds, "
        "optimizer, options"
    )
    return TaskSpec(
        label,
        name,
        dict(options),
        float(target),
        int(epochs),
        float(low),
        float(high),
        float(budget),
        optimizer,
        procedure,
        tuple(seeds) or None,
    )


def _strategy_specs(path: Path, entries: list, task_labels: set[str]) -> tuple[StrategySpec, ...]:
    from lrbench.strategies import REGISTRY, get_strategy

    specs: list[StrategySpec] = []
    if not entries:
        raise ConfigError(f"{path}: strategies: no strategy given")
    for i, entry in enumerate(entries):
        where = f"strategies[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: {where}: expected a table ([[strategies]])")
        r = _Reader(path, entry, where)
        name = r.get("name", str, required=True)
        if name not in REGISTRY:
            raise r.error(
                "name", f"unknown strategy {name!r}; choose one of {', '.join(REGISTRY)}"
            )
        label = r.get("label", str, name)
        problem = _label_problem(label)
        if problem:
            raise r.error("label", problem)
        tasks = r.get("tasks", list)
        if tasks == []:  # a strategy for no task is a mistake, not a way to switch it off
            raise r.error(
                "tasks", "empty list: name the task labels, or drop the key for every task"
            )
        if tasks is not None:
            bad = [t for t in tasks if t not in task_labels]
            if bad:
                raise r.error(
                    "tasks",
                    f"unknown task label(s) {bad}; the suite's tasks are {sorted(task_labels)}",
                )
        optimizer = r.get("optimizer", str)
        if optimizer is not None and optimizer not in OPTIMIZERS:
            raise r.error(
                "optimizer",
                f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}",
            )
        reference = _reference(r)
        options = r.rest()
        try:
            get_strategy(name, **options)  # validates option names and values it checks eagerly
        except LrbenchError as e:
            raise ConfigError(f"{path}: {where}: {e}") from None
        if any(s.label == label for s in specs):
            raise r.error("label", f"label {label!r} used twice: give one of them another label")
        specs.append(
            StrategySpec(
                label, name, options, None if tasks is None else tuple(tasks), optimizer, reference
            )
        )
    return tuple(specs)


def _reference(r: _Reader) -> tuple[tuple[int, float], ...]:
    """`reference = { 50 = 235.11, 100 = 234.16 }`: epochs (positive integers) -> values."""
    table = r.get("reference", dict, {})
    out = []
    for key, value in table.items():
        if not (key.isdigit() and int(key) > 0):
            raise r.error("reference", f"{key!r} is not an epoch count (a positive integer)")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise r.error(f"reference.{key}", f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise r.error(f"reference.{key}", f"must be a finite number, got {value!r}")
        out.append((int(key), float(value)))
    return tuple(sorted(out))
