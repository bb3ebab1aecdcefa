"""The one training path: trial configurations in, their results out."""

from lrbench.training._engine import (
    EpochRecord,
    EvaluationWeights,
    TrainConfig,
    TrainOptions,
    TrainResult,
    final_metrics,
    optimizer_has_modes,
    resolve_device,
    task_range_test,
    test_metric,
    train,
)
from lrbench.training._population import (
    default_population,
    population_size,
    supports_population,
    train_population,
)

__all__ = [
    "EpochRecord",
    "EvaluationWeights",
    "TrainConfig",
    "TrainOptions",
    "TrainResult",
    "default_population",
    "final_metrics",
    "optimizer_has_modes",
    "population_size",
    "resolve_device",
    "supports_population",
    "task_range_test",
    "test_metric",
    "train",
    "train_population",
]
