"""lrbench: measure which way of choosing a learning rate reaches a target with the least training."""
from lrbench.engine import EpochRecord, TrainConfig, TrainResult, train
from lrbench.tasks import TASKS, get_task

__version__ = "0.1.0"

__all__ = ["TASKS", "EpochRecord", "TrainConfig", "TrainResult", "get_task", "train", "__version__"]
