"""The one training path: trial configurations in, their results out (`train_trials`).

A lone trial is a population of one: every trial, alone or one of K trained at once as one
stacked computation, goes through one loop (`_loop`), with one ledger per trial (`_ledger`:
budget, schedule, optimizer reset, divergence, best state, result) and one form holding the
trials' models (`_forms`: the task's own model, or K of them stacked or folded). `train` is
`train_trials` of one. A task's LR range test (`task_range_test`) is the tool users run on
their own models, fed from the task's batches.
"""

from lrbench.training._config import (
    OPTIMIZER_RESETS,
    EpochCallback,
    EpochRecord,
    TrainConfig,
    TrainOptions,
    TrainResult,
)
from lrbench.training._device import resolve_device
from lrbench.training._evaluation import (
    EvaluationWeights,
    EvaluationWeightsFactory,
    final_metrics,
    optimizer_has_modes,
    set_training,
    test_metric,
)
from lrbench.training._loop import train, train_trials
from lrbench.training._population_size import default_population, population_size
from lrbench.training._range_test import task_range_test

__all__ = [
    "OPTIMIZER_RESETS",
    "EpochCallback",
    "EpochRecord",
    "EvaluationWeights",
    "EvaluationWeightsFactory",
    "TrainConfig",
    "TrainOptions",
    "TrainResult",
    "default_population",
    "final_metrics",
    "optimizer_has_modes",
    "population_size",
    "resolve_device",
    "set_training",
    "task_range_test",
    "test_metric",
    "train",
    "train_trials",
]
