"""lrbench: measure which way of choosing a learning rate reaches a target with the least training.

The parts users import into their own work:

- `SignificantDigitSampler`: the coarse-to-fine significant-digit search as an Optuna sampler.
- `lr_range_test`: the LR range test on any PyTorch model, optimizer and batches.
- `build_schedule` / `ScheduleSpec`: named `torch.optim.lr_scheduler` schedules.
- `run_suite`, `load_results`, `make_report`: the benchmark harness, as `lrbench run/report`.

Names are imported on first use, so `import lrbench` for the sampler alone does not pay for
torch, pandas or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SignificantDigitSampler": "lrbench.sigdigit_sampler",
    "lr_range_test": "lrbench.range_test",
    "RangeTestResult": "lrbench.range_test",
    "clr_bounds": "lrbench.range_test",
    "ScheduleSpec": "lrbench.schedules",
    "build_schedule": "lrbench.schedules",
    "train": "lrbench.engine",
    "TrainConfig": "lrbench.engine",
    "TrainResult": "lrbench.engine",
    "EpochRecord": "lrbench.engine",
    "TASKS": "lrbench.tasks",
    "get_task": "lrbench.tasks",
    "STRATEGIES": "lrbench.strategies",
    "get_strategy": "lrbench.strategies",
    "run_suite": "lrbench.harness",
    "load_results": "lrbench.results",
    "load_trials": "lrbench.results",
    "make_report": "lrbench.report",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lrbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
