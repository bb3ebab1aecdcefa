"""`cifar10`: CIFAR-10 with a fast residual CNN (the ResNet-9 of Page's DAWNBench entry).

Written for the GPU: bf16 autocast and channels_last on CUDA, the whole dataset normalised once
on the device, flip + translate augmentation for a whole batch on the device, horizontal-flip
test-time augmentation at evaluation. `width` scales every layer (64 is the standard net;
tests use 8 so a CPU trains it in seconds). Validation: 5,000 of the 50,000 training images,
held out with seed 0.

Accuracies measured on the JPEG copy in ../shared/data run below those on the official files:
say "CIFAR-10 (JPEG copy)" beside them.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from lrbench.data import (
    TensorSplit,
    holdout_split,
    ordered_batches,
    read_cifar10,
    shuffled_batches,
)
from lrbench.schedules import ScheduleSpec
from lrbench.tasks.base import DataOptions, Task, TaskData, subset

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def flip_translate(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and random translation by up to `pad` pixels (reflect padding),
    a different one per image, as one batched gather on the device."""
    n, c, h, w = x.shape
    dev = x.device
    flip = torch.rand(n, device=dev, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), device=dev, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=dev, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    n_idx = torch.arange(n, device=dev)[:, None, None, None]
    c_idx = torch.arange(c, device=dev)[None, :, None, None]
    return padded[n_idx, c_idx, rows, cols]


def _conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c, c), _conv_bn(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    def __init__(self, width: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        w1, w2, w3, w4 = width, 2 * width, 4 * width, 8 * width
        self.net = nn.Sequential(
            _conv_bn(3, w1),
            _conv_bn(w1, w2, pool=True),
            Residual(w2),
            _conv_bn(w2, w3, pool=True),
            _conv_bn(w3, w4, pool=True),
            Residual(w4),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(w4, num_classes, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * 0.125  # Page's output scaling keeps early logits small


class Cifar10(Task):
    name = "cifar10"
    description = "CIFAR-10, ResNet-9 (bf16, channels_last on GPU), accuracy"
    metric = "accuracy"
    metric_unit = "fraction correct"
    direction = "maximize"
    default_target = 0.94
    default_optimizer = "nesterov"
    default_lr = 0.4
    default_epochs = 10
    batch_size = 512
    optimizer_kwargs = {"weight_decay": 5e-4}
    default_schedule = ScheduleSpec("one_cycle", {"pct_start": 0.25, "anneal_strategy": "linear"})
    option_defaults = {
        "width": 64,
        "batch_size": 512,
        "val_size": 5000,
        "label_smoothing": 0.2,
        "pad": 2,
        "tta": True,
        "compile": False,
    }

    def load(self, device: torch.device, data: DataOptions) -> TaskData:
        arrays = read_cifar10(data.data_root, download=data.download)
        mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=device).view(1, 3, 1, 1)

        def norm(a) -> torch.Tensor:
            x = (torch.as_tensor(a).to(device).float().div_(255.0) - mean) / std
            return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x

        x, y = arrays.train_x, torch.as_tensor(arrays.train_y)
        tr, va = self.holdout(len(x))
        train = subset(TensorSplit(norm(x[tr]), y[tr].to(device)), data.train_subset)
        val = TensorSplit(norm(x[va]), y[va].to(device))
        test = TensorSplit(norm(arrays.test_x), torch.as_tensor(arrays.test_y).to(device))
        return TaskData(train, val, test, self.steps_per_epoch_for(train))

    def holdout(self, n: int):
        # At most a fifth of the training set, so small real-format copies (tests) still train.
        return holdout_split(n, min(int(self.options["val_size"]), n // 5), seed=0)

    def train_batches(self, data: TaskData, generator: torch.Generator):
        pad = int(self.options["pad"])
        for x, y in shuffled_batches(data.train, self.batch_size, generator):
            yield flip_translate(x, pad, generator), y

    def build_model(self) -> nn.Module:
        return ResNet9(int(self.options["width"]))

    def prepare_model(self, model: nn.Module, device: torch.device) -> nn.Module:
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
            if self.options["compile"]:
                model = torch.compile(model)
        return model

    def autocast(self, device: torch.device):
        if device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y, label_smoothing=float(self.options["label_smoothing"]))

    def evaluate(self, model: nn.Module, split: TensorSplit) -> torch.Tensor:
        correct = torch.zeros((), device=split.x.device)
        for x, y in ordered_batches(split, 1000):
            logits = model(x)
            if self.options["tta"]:
                logits = logits + model(x.flip(3))
            correct += (logits.argmax(1) == y).sum()
        return correct / len(split)
