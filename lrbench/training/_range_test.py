"""A task's LR range test: `lrbench.tools.lr_range_test` on the task's freshly initialised
model, fed from the task's own training stream.

The range test is the one place where training steps run outside the training loop
(`lrbench.training._loop`), by design: it is the stand-alone tool users run on their own model,
optimizer and batches (equal to torch-lr-finder), which reads every step's loss back for its
stop rule and restores what it changed. Here it trains a trial's model as the loop would start
one (same initialisation, batches and loss), so its steps cost the same and are charged as
training by the strategies.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

from lrbench.interrupts import raise_if_interrupted
from lrbench.tasks import Task, TaskData
from lrbench.tools import RangeTestResult, build_optimizer, lr_range_test
from lrbench.training._config import TrainConfig
from lrbench.training._device import resolve_device
from lrbench.training._evaluation import fresh_model, set_training


def task_range_test(
    task: Task,
    data: TaskData,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    optimizer: str | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    step_mode: str = "exp",
    **kwargs: Any,
) -> RangeTestResult:
    """An LR range test of `task`'s model initialised from `seed`, with the task's optimizer
    (or `optimizer`) and batches; `kwargs` go to `lr_range_test`."""
    device = resolve_device(device)
    config = TrainConfig.for_task(task, start_lr, optimizer=optimizer, seed=seed)
    model = fresh_model(task, seed, device)
    opt = build_optimizer(
        config.optimizer, model.parameters(), config.lr, **config.optimizer_kwargs
    )
    set_training(model, opt, True)
    generator = torch.Generator(device=device).manual_seed(seed)
    batches = itertools.chain.from_iterable(
        task.train_batches(data, generator) for _ in itertools.count()
    )
    autocast = task.autocast(device)

    def loss_fn(m, batch):
        raise_if_interrupted()  # Ctrl-C stops here, between steps (lrbench.interrupts)
        with autocast:
            return task.loss(m, batch).float()

    return lr_range_test(
        model,
        opt,
        batches,
        loss_fn=loss_fn,
        start_lr=start_lr,
        end_lr=end_lr,
        num_iter=num_iter,
        step_mode=step_mode,
        **kwargs,
    )
