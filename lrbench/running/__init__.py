"""Running suites: suite files, each run as one Optuna study driven by a worker that claims it
through the storage, local worker processes, progress, and what a budget holds of each
strategy's design."""

from lrbench.running._budget_fit import budget_warnings, run_fit, suite_fits
from lrbench.running._harness import WorkerOptions, run_suite, stored_summary, work
from lrbench.running._run import ClaimLost, RunOptions, run_group, run_one
from lrbench.running._suite import (
    STUDIES_DIR,
    RunSpec,
    StrategySpec,
    Suite,
    TaskSpec,
    load_suite,
    resolve_suite_path,
)

__all__ = [
    "STUDIES_DIR",
    "ClaimLost",
    "RunOptions",
    "RunSpec",
    "StrategySpec",
    "Suite",
    "TaskSpec",
    "WorkerOptions",
    "budget_warnings",
    "load_suite",
    "resolve_suite_path",
    "run_fit",
    "run_group",
    "run_one",
    "run_suite",
    "stored_summary",
    "suite_fits",
    "work",
]
