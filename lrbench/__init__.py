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

from lrbench._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "SignificantDigitSampler": "lrbench.tools",
    "SigDigitDelegationWarning": "lrbench.tools",
    "SigDigitSurplusWarning": "lrbench.tools",
    "lr_range_test": "lrbench.tools",
    "RangeTestResult": "lrbench.tools",
    "clr_bounds": "lrbench.tools",
    "ScheduleSpec": "lrbench.tools",
    "build_schedule": "lrbench.tools",
    "build_optimizer": "lrbench.tools",
    "train": "lrbench.training",
    "train_trials": "lrbench.training",
    "TrainConfig": "lrbench.training",
    "TrainOptions": "lrbench.training",
    "TrainResult": "lrbench.training",
    "EpochRecord": "lrbench.training",
    "TASKS": "lrbench.tasks",
    "get_task": "lrbench.tasks",
    "STRATEGIES": "lrbench.strategies",
    "get_strategy": "lrbench.strategies",
    "run_suite": "lrbench.running",
    "load_results": "lrbench.report",
    "load_trials": "lrbench.report",
    "make_report": "lrbench.report",
}

__all__ = sorted(_EXPORTS) + ["__version__"]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
