"""`digits`: scikit-learn's bundled 8x8 digits, a small MLP. Seconds per trial on a CPU: the
task for fast tests on real data and for CPU-sized suites."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrbench.tasks._base import DataOptions, Task, TaskData, subset
from lrbench.tasks._data import TensorSplit, read_digits


class Digits(Task):
    name = "digits"
    description = "scikit-learn 8x8 digits, MLP 64-hidden-10, accuracy"
    metric = "accuracy"
    metric_unit = "fraction correct"
    direction = "maximize"
    default_target = 0.95
    default_optimizer = "adam"
    default_lr = 1e-2
    default_epochs = 20
    batch_size = 64
    option_defaults = {"hidden": 64, "val_size": 300, "batch_size": 64}
    population_form = "stacked"

    def load(self, device: torch.device, data: DataOptions) -> TaskData:
        arrays = read_digits()
        x = torch.as_tensor(arrays.train_x / 16.0, dtype=torch.float32)
        y = torch.as_tensor(arrays.train_y)
        tr, va = self.holdout(len(x))
        train = subset(TensorSplit(x[tr].to(device), y[tr].to(device)), data.train_subset)
        val = TensorSplit(x[va].to(device), y[va].to(device))
        test = TensorSplit(
            torch.as_tensor(arrays.test_x / 16.0, dtype=torch.float32).to(device),
            torch.as_tensor(np.asarray(arrays.test_y)).to(device),
        )
        return TaskData(train, val, test, self.steps_per_epoch_for(train))

    def build_model(self) -> nn.Module:
        h = int(self.options["hidden"])
        return nn.Sequential(nn.Linear(64, h), nn.ReLU(), nn.Linear(h, 10))

    def example_losses(self, model: nn.Module, batch, noise) -> torch.Tensor:
        x, y = batch  # (B, 64), (B,) or, stacked, (K, B, 64), (K, B)
        logits = model(x)
        return F.cross_entropy(logits.flatten(0, -2), y.flatten(), reduction="none").view(y.shape)

    def evaluate(self, model: nn.Module, split: TensorSplit) -> torch.Tensor:
        return (model(split.x).argmax(1) == split.y).float().mean()
