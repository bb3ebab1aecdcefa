"""The training engine: one loop that trains any task with any optimizer and schedule.

Hot-loop rules (design.md, Performance): batches are slices of an on-device permutation, the loss
is accumulated on the device, and divergence is tracked on the device; the host reads back
once per epoch. Evaluation is timed apart from training because it is not training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from lrbench.errors import ConfigError
from lrbench.optimizers import build_optimizer
from lrbench.schedules import ScheduleSpec, build_schedule
from lrbench.tasks.base import DataOptions, Task, TaskData


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without it is a clear error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here (try --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda") from None


@dataclass
class TrainConfig:
    """One trial's configuration. `max_steps` cuts the trial at a budget (mid-epoch if need be)."""

    lr: float
    epochs: int
    optimizer: str
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    seed: int = 0
    max_steps: int | None = None

    @classmethod
    def for_task(
        cls,
        task: Task,
        lr: float | None = None,
        *,
        epochs: int | None = None,
        optimizer: str | None = None,
        schedule: ScheduleSpec | None = None,
        seed: int = 0,
        max_steps: int | None = None,
        **optimizer_kwargs: Any,
    ) -> TrainConfig:
        """Task defaults, overridden by whatever is given."""
        opt = optimizer or task.default_optimizer
        # The task's optimizer options (e.g. weight decay) only apply to the task's own optimizer.
        kwargs = dict(task.optimizer_kwargs) if opt == task.default_optimizer else {}
        kwargs.update(optimizer_kwargs)
        if epochs is not None and epochs <= 0:
            raise ConfigError(f"epochs must be positive, got {epochs}")
        if (
            lr is not None and not lr > 0
        ):  # checked here so the CLI fails before it starts anything
            raise ConfigError(f"learning rate must be positive, got {lr!r}")
        return cls(
            lr=task.default_lr if lr is None else lr,
            epochs=epochs or task.default_epochs,
            optimizer=opt,
            optimizer_kwargs=kwargs,
            schedule=task.default_schedule if schedule is None else schedule,
            seed=seed,
            max_steps=max_steps,
        )


@dataclass
class EpochRecord:
    epoch: int  # 1-based; a budget-cut last epoch is still one record
    train_loss: float  # mean training loss over the epoch's steps
    val: float  # validation metric after the epoch (nan when diverged)
    lr: float  # learning rate at the end of the epoch
    steps: int  # optimizer steps so far in this trial
    epochs_done: float  # steps / steps_per_epoch: the cost accounting unit
    seconds: float  # training wall seconds of this epoch
    eval_seconds: float


@dataclass
class TrainResult:
    task: str
    lr: float
    optimizer: str
    schedule: str
    seed: int
    epochs: float  # epochs trained (steps / steps_per_epoch)
    steps: int
    best_epoch: int | None
    best_val: float | None
    test: float | None  # test metric of the best state (None if not evaluated)
    diverged: bool
    cut: bool  # stopped by max_steps (the run's budget)
    stopped: bool  # stopped by the callback (e.g. pruned)
    seconds: float  # training seconds (evaluation excluded)
    eval_seconds: float
    history: list[EpochRecord]
    initial_val: float | None = (
        None  # the metric before any training (a diverged trial is no better)
    )
    # The best weights, kept in memory only when asked (`keep_best_state`); never serialised.
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("best_state")
        return d


EpochCallback = Callable[[EpochRecord], bool | None]


def train(
    task: Task,
    config: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    data: TaskData | None = None,
    data_options: DataOptions | None = None,
    callback: EpochCallback | None = None,
    evaluate_test: bool = True,
    progress: Callable[[EpochRecord], None] | None = None,
    evaluate_initial: bool = False,
    initial_state: dict[str, torch.Tensor] | None = None,
    keep_best_state: bool = False,
) -> TrainResult:
    """Train one configuration of `task`; return its per-epoch history and best/test metrics.

    `callback(record)` runs after every epoch; returning True stops the trial (pruning).
    A diverged trial (non-finite loss, or a step loss above `task.diverge_factor` x the first)
    ends after the epoch in which it diverged, with `diverged=True` and its epochs counted.
    `initial_state` starts from given weights instead of a fresh initialisation (the
    significant-digit exploit phase continues from the previous rate's best state).
    """
    device = resolve_device(device)
    data = data if data is not None else task.prepare(device, data_options or DataOptions())
    spe = data.steps_per_epoch
    model, optimizer = _fresh_model_and_optimizer(task, config, device)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    schedule = build_schedule(
        config.schedule, optimizer, lr=config.lr, epochs=config.epochs, steps_per_epoch=spe
    )
    generator = torch.Generator(device=device).manual_seed(config.seed)
    autocast = task.autocast(device)

    history: list[EpochRecord] = []
    best_val: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    steps = 0
    diverged = cut = stopped = False
    train_seconds = eval_seconds = 0.0
    first_loss: torch.Tensor | None = None
    zero = torch.zeros((), device=device)
    initial_val = None
    if evaluate_initial:
        model.eval()
        with torch.no_grad(), autocast:
            initial_val = float(task.evaluate(model, data.val))

    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum, loss_max, n = zero.clone(), zero.clone(), 0
        for batch in task.train_batches(data, generator):
            if config.max_steps is not None and steps >= config.max_steps:
                cut = True
                break
            with autocast:
                loss = task.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.after_step()
            loss = loss.detach().float()
            if first_loss is None:
                first_loss = loss.abs()
            loss_sum += loss
            # torch.maximum propagates NaN, so a NaN anywhere in the epoch survives to the check.
            loss_max = torch.maximum(loss_max, loss)
            steps += 1
            n += 1
        if n == 0:  # budget was exhausted exactly at the previous epoch's end
            break
        if not cut:
            schedule.after_epoch()
        mean_loss, max_loss, first = torch.stack(
            [loss_sum / n, loss_max, first_loss]
        ).tolist()  # one sync
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        diverged = not (math.isfinite(mean_loss) and math.isfinite(max_loss)) or (
            max_loss > task.diverge_factor * max(first, 1e-12)
        )

        t1 = time.perf_counter()
        if diverged:
            val = float("nan")
        else:
            model.eval()
            with torch.no_grad(), autocast:
                val = float(task.evaluate(model, data.val))
            diverged = not math.isfinite(val)
        ev = time.perf_counter() - t1
        eval_seconds += ev
        if not diverged and (best_val is None or task.is_better(val, best_val)):
            best_val, best_epoch = val, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

        record = EpochRecord(
            epoch, mean_loss, val, optimizer.param_groups[0]["lr"], steps, steps / spe, seconds, ev
        )
        history.append(record)
        if progress is not None:
            progress(record)
        if diverged or cut:
            break
        if callback is not None and callback(record):
            stopped = True
            break
        if config.max_steps is not None and steps >= config.max_steps:
            cut = config.epochs * spe > steps  # the budget, not the trial's own length, ended it
            break

    test = None
    if evaluate_test and best_state is not None:
        model.load_state_dict(best_state)
        model.eval()
        with torch.no_grad(), autocast:
            test = float(task.evaluate(model, data.test))

    return TrainResult(
        task=task.name,
        lr=config.lr,
        optimizer=config.optimizer,
        schedule=config.schedule.describe(),
        seed=config.seed,
        epochs=steps / spe,
        steps=steps,
        best_epoch=best_epoch,
        best_val=best_val,
        test=test,
        diverged=diverged,
        cut=cut,
        stopped=stopped,
        seconds=train_seconds,
        eval_seconds=eval_seconds,
        history=history,
        initial_val=initial_val,
        best_state=best_state if keep_best_state else None,
    )


def _fresh_model_and_optimizer(
    task: Task, config: TrainConfig, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The task's model initialised from the config's seed, on the device, and its optimizer."""
    torch.manual_seed(config.seed)
    model = task.prepare_model(task.build_model().to(device), device)
    return model, build_optimizer(
        config.optimizer, model.parameters(), config.lr, **config.optimizer_kwargs
    )


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
):
    """An LR range test of a task's freshly initialised model (`lrbench.lr_range_test` underneath).

    Batches come from the task's own on-device training stream, so the range test costs the
    same per step as training and is charged as training by the strategies.
    """
    import itertools

    from lrbench.range_test import lr_range_test

    device = resolve_device(device)
    model, opt = _fresh_model_and_optimizer(
        task, TrainConfig.for_task(task, start_lr, optimizer=optimizer, seed=seed), device
    )
    generator = torch.Generator(device=device).manual_seed(seed)
    batches = itertools.chain.from_iterable(
        task.train_batches(data, generator) for _ in itertools.count()
    )
    autocast = task.autocast(device)

    def loss_fn(m, batch):
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
