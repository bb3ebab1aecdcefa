"""The training engine: one loop that trains any task with any optimizer and schedule.

Hot-loop rules (design.md, Performance): batches are slices of an on-device permutation, the loss
is accumulated on the device, and divergence is tracked on the device; the host reads back
once per epoch. Evaluation is timed apart from training because it is not training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from lrbench.errors import ConfigError
from lrbench.interrupts import raise_if_interrupted
from lrbench.tasks import DataOptions, Task, TaskData, TensorSplit
from lrbench.tools import ScheduleSpec, build_optimizer, build_schedule


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
    # Extra validation metrics by name (`Task.extra_metrics`); empty when the task has none.
    extras: dict[str, float] = field(default_factory=dict)


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
    # The weights at the end of training, likewise only when asked (`keep_final_state`).
    final_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        weights = ("best_state", "final_state")
        d = asdict(dataclasses.replace(self, best_state=None, final_state=None))
        for key in weights:
            d.pop(key)
        return d


EpochCallback = Callable[[EpochRecord], bool | None]


class EvaluationWeights:
    """Which weights the engine evaluates and keeps as the best state: by default, the trained
    ones as they are (this class does nothing).

    The engine enters the object (`with weights:`) around every evaluation, with the model in
    evaluation mode and the optimizer in its evaluation mode (see `optimizer_has_modes`), and
    keeps the best state while inside, so the kept state is the evaluated one. A subclass swaps
    other weights in on `__enter__` and the trained ones back on `__exit__`, e.g. an exponential
    moving average of the weights, updated in `after_step`, which the engine calls after every
    optimizer step. `recalibrate_bn = True` says the evaluated weights differ from the trained
    ones, so batch-norm running statistics are recomputed with them before evaluating.
    """

    recalibrate_bn: bool = False

    def after_step(self) -> None:
        """Called after every optimizer step (e.g. to update an average of the weights)."""

    def __enter__(self) -> EvaluationWeights:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


# Builds a trial's evaluation weights from its model and optimizer.
EvaluationWeightsFactory = Callable[[nn.Module, torch.optim.Optimizer], EvaluationWeights]


def optimizer_has_modes(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer must be told train / eval, as the model is (e.g. Schedule-Free's,
    whose evaluation weights are an average of its iterates): duck-typed, callable `train` and
    `eval` methods."""
    return callable(getattr(optimizer, "train", None)) and callable(
        getattr(optimizer, "eval", None)
    )


def set_training(model: nn.Module, optimizer: torch.optim.Optimizer, training: bool) -> None:
    """Switch the model and, if it has modes, the optimizer to training or evaluation."""
    model.train(training)
    if optimizer_has_modes(optimizer):
        optimizer.train() if training else optimizer.eval()


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@dataclass(frozen=True)
class TrainOptions:
    """How `train` runs a configuration, apart from the configuration itself.

    `callback(record)` runs after every epoch that did not diverge or hit the budget; returning
    True stops the trial (pruning). `progress(record)` sees every epoch. `initial_state` starts
    from given weights instead of a fresh initialisation (the significant-digit exploit phase
    continues from the weights the previous rate ended with); `keep_best_state` returns the best
    weights, `keep_final_state` the weights at the end of training.

    `evaluation_weights(model, optimizer)` builds the `EvaluationWeights` evaluated instead of
    the trained ones (default: the task's `evaluation_weights`, else the trained weights).
    `recalibrate_bn` forces (True) or forbids (False) recomputing batch-norm statistics before
    every evaluation; None (the default) recomputes them when the evaluated weights differ from
    the trained ones: an optimizer with modes, or evaluation weights that ask for it. Only
    models with batch-norm layers are ever recalibrated.
    """

    callback: EpochCallback | None = None
    progress: Callable[[EpochRecord], None] | None = None
    evaluate_test: bool = True
    evaluate_initial: bool = False
    initial_state: dict[str, torch.Tensor] | None = None
    keep_best_state: bool = False
    keep_final_state: bool = False
    evaluation_weights: EvaluationWeightsFactory | None = None
    recalibrate_bn: bool | None = None


def train(
    task: Task,
    config: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    data: TaskData | None = None,
    data_options: DataOptions | None = None,
    options: TrainOptions | None = None,
    **option_fields: Any,
) -> TrainResult:
    """Train one configuration of `task`; return its per-epoch history and best/test metrics.

    `options` (or its fields as keywords, e.g. `evaluate_test=False`) say how: see
    `TrainOptions`. A diverged trial (non-finite loss, or a step loss above
    `task.diverge_factor` x the first) ends after the epoch in which it diverged, with
    `diverged=True` and its epochs counted.
    """
    try:
        options = dataclasses.replace(options or TrainOptions(), **option_fields)
    except TypeError as e:
        raise TypeError(f"train: {e}") from None
    device = resolve_device(device)
    data = data if data is not None else task.prepare(device, data_options or DataOptions())
    return _Trainer(task, config, device, data, options).run()


class _Trainer:
    """One call of `train`: the model, optimizer and schedule, and the running best."""

    def __init__(
        self,
        task: Task,
        config: TrainConfig,
        device: torch.device,
        data: TaskData,
        options: TrainOptions,
    ) -> None:
        self.task, self.config, self.device, self.data, self.options = (
            task,
            config,
            device,
            data,
            options,
        )
        self.spe = data.steps_per_epoch
        self.model, self.optimizer = _fresh_model_and_optimizer(task, config, device)
        if options.initial_state is not None:
            self.model.load_state_dict(options.initial_state)
        self.schedule = build_schedule(
            config.schedule,
            self.optimizer,
            lr=config.lr,
            epochs=config.epochs,
            steps_per_epoch=self.spe,
        )
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        self.autocast = task.autocast(device)
        self.weights = self.evaluation_weights()
        self.after_step = getattr(self.weights, "after_step", None)
        self.recalibrate = self.needs_recalibration()
        # Recalibration batches have their own stream, so training sees the same data order.
        self.bn_generator = torch.Generator(device=device).manual_seed(config.seed + 2**31)
        self.history: list[EpochRecord] = []
        self.best_val: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.steps = 0
        self.diverged = self.cut = self.stopped = False
        self.train_seconds = self.eval_seconds = 0.0
        self.first_loss: torch.Tensor | None = None

    def evaluation_weights(self) -> EvaluationWeights:
        factory = self.options.evaluation_weights or self.task.evaluation_weights
        weights = factory(self.model, self.optimizer)
        return EvaluationWeights() if weights is None else weights

    def needs_recalibration(self) -> bool:
        if not has_batch_norm(self.model):
            return False
        if self.options.recalibrate_bn is not None:
            return self.options.recalibrate_bn
        return optimizer_has_modes(self.optimizer) or bool(
            getattr(self.weights, "recalibrate_bn", False)
        )

    @contextlib.contextmanager
    def evaluation(self) -> Iterator[None]:
        """The evaluated weights in place: the model and optimizer in evaluation mode, other
        weights swapped in, batch-norm statistics recomputed with them when they need it."""
        set_training(self.model, self.optimizer, False)
        with self.weights:
            if self.recalibrate:
                self.recalibrate_bn()
            yield

    def recalibrate_bn(self) -> None:
        """Batch-norm running statistics recomputed from scratch with the current weights, over
        the task's recalibration batches (`torch.optim.swa_utils.update_bn`)."""
        batches = self.task.recalibration_batches(self.data, self.bn_generator)
        with torch.no_grad(), self.autocast:
            update_bn(batches, self.model)

    def measure(self, split: TensorSplit) -> float:
        """The task's metric on `split` with the model as it is, no gradients."""
        with torch.no_grad(), self.autocast:
            return float(self.task.evaluate(self.model, split))

    def evaluate(self, split: TensorSplit) -> float:
        """The task's metric on `split` with the evaluated weights (see `evaluation`)."""
        with self.evaluation():
            return self.measure(split)

    def evaluate_extras(self) -> dict[str, float]:
        """The task's extra validation metrics (one read-back for all of them)."""
        with torch.no_grad(), self.autocast:
            extras = self.task.extra_metrics(self.model, self.data.val)
        if not extras:
            return {}
        values = torch.stack([v.detach().float().reshape(()) for v in extras.values()]).tolist()
        return dict(zip(extras, values))

    def run(self) -> TrainResult:
        initial_val = self.evaluate(self.data.val) if self.options.evaluate_initial else None
        for epoch in range(1, self.config.epochs + 1):
            record = self.train_epoch(epoch)
            if record is None or self.after_epoch(record):
                break
        final_state = _state_copy(self.model) if self.options.keep_final_state else None
        test = None
        if self.options.evaluate_test and self.best_state is not None:
            # The best state holds the evaluated weights already: the optimizer is put in its
            # evaluation mode before they are loaded, so switching modes cannot move them.
            set_training(self.model, self.optimizer, False)
            self.model.load_state_dict(self.best_state)
            test = self.measure(self.data.test)
        return dataclasses.replace(self.result(initial_val, test), final_state=final_state)

    def train_epoch(self, epoch: int) -> EpochRecord | None:
        """One epoch of steps (cut at the budget), then its evaluation; None if no step ran."""
        t0 = time.perf_counter()
        mean_loss, max_loss, first, n = self.run_steps()
        if n == 0:  # budget was exhausted exactly at the previous epoch's end
            return None
        if not self.cut:
            self.schedule.after_epoch()
        seconds = time.perf_counter() - t0
        self.train_seconds += seconds
        self.diverged = not (math.isfinite(mean_loss) and math.isfinite(max_loss)) or (
            max_loss > self.task.diverge_factor * max(first, 1e-12)
        )
        t1 = time.perf_counter()
        val, extras = float("nan"), {}
        if not self.diverged:
            with self.evaluation():
                val = self.measure(self.data.val)
                self.diverged = not math.isfinite(val)
                if not self.diverged:
                    extras = self.evaluate_extras()
                    self.keep_if_best(epoch, val)
        ev = time.perf_counter() - t1
        self.eval_seconds += ev
        lr = self.optimizer.param_groups[0]["lr"]
        steps = self.steps
        return EpochRecord(epoch, mean_loss, val, lr, steps, steps / self.spe, seconds, ev, extras)

    def run_steps(self) -> tuple[float, float, float, int]:
        """The epoch's optimizer steps: (mean loss, max loss, first step's loss, steps), read
        back once."""
        set_training(self.model, self.optimizer, True)
        zero = torch.zeros((), device=self.device)
        loss_sum, loss_max, n = zero.clone(), zero.clone(), 0
        max_steps = self.config.max_steps
        for batch in self.task.train_batches(self.data, self.generator):
            raise_if_interrupted()  # Ctrl-C stops here, between steps (lrbench.interrupts)
            if max_steps is not None and self.steps >= max_steps:
                self.cut = True
                break
            with self.autocast:
                loss = self.task.loss(self.model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.after_step is not None:
                self.after_step()
            self.schedule.after_step()
            loss = loss.detach().float()
            if self.first_loss is None:
                self.first_loss = loss.abs()
            loss_sum += loss
            # torch.maximum propagates NaN, so a NaN anywhere in the epoch survives to the check.
            loss_max = torch.maximum(loss_max, loss)
            self.steps += 1
            n += 1
        if n == 0:
            return math.nan, math.nan, math.nan, 0
        mean_loss, max_loss, first = torch.stack(
            [loss_sum / n, loss_max, self.first_loss]
        ).tolist()  # one sync
        return mean_loss, max_loss, first, n

    def keep_if_best(self, epoch: int, val: float) -> None:
        """Keep the evaluated weights if `val` is the best so far (called inside `evaluation`)."""
        if self.best_val is None or self.task.is_better(val, self.best_val):
            self.best_val, self.best_epoch = val, epoch
            self.best_state = _state_copy(self.model)

    def after_epoch(self, record: EpochRecord) -> bool:
        """The per-epoch hook: report, ask the callback; True ends training."""
        self.history.append(record)
        if self.options.progress is not None:
            self.options.progress(record)
        if self.diverged or self.cut:
            return True
        if self.options.callback is not None and self.options.callback(record):
            self.stopped = True
            return True
        max_steps = self.config.max_steps
        if max_steps is not None and self.steps >= max_steps:
            # The budget, not the trial's own length, ended it.
            self.cut = self.config.epochs * self.spe > self.steps
            return True
        return False

    def result(self, initial_val: float | None, test: float | None) -> TrainResult:
        return result_of(self, initial_val, test)


def result_of(run: Any, initial_val: float | None, test: float | None) -> TrainResult:
    """The `TrainResult` of a finished trial's bookkeeping: the single-trial engine's or a
    population member's (both keep the same attributes: task, config, steps, spe, history ...)."""
    config = run.config
    return TrainResult(
        task=run.task.name,
        lr=config.lr,
        optimizer=config.optimizer,
        schedule=config.schedule.describe(),
        seed=config.seed,
        epochs=run.steps / run.spe,
        steps=run.steps,
        best_epoch=run.best_epoch,
        best_val=run.best_val,
        test=test,
        diverged=run.diverged,
        cut=run.cut,
        stopped=run.stopped,
        seconds=run.train_seconds,
        eval_seconds=run.eval_seconds,
        history=run.history,
        initial_val=initial_val,
        best_state=run.best_state if run.options.keep_best_state else None,
    )


def final_metrics(
    task: Task, data: TaskData, state: dict[str, torch.Tensor], device: torch.device | str
) -> dict[str, float]:
    """The task's final metrics (`Task.final_metrics`) of weights `state` on the test split."""
    device = resolve_device(device)
    model = _model_with_state(task, state, device)
    with torch.no_grad(), task.autocast(device):
        metrics = task.final_metrics(model, data.test)
    if not metrics:
        return {}
    values = torch.stack([v.detach().float().reshape(()) for v in metrics.values()]).tolist()
    return dict(zip(metrics, values))


def test_metric(
    task: Task, data: TaskData, state: dict[str, torch.Tensor], device: torch.device | str
) -> float:
    """The task's metric of weights `state` on the test split (what `TrainResult.test` holds)."""
    device = resolve_device(device)
    model = _model_with_state(task, state, device)
    with torch.no_grad(), task.autocast(device):
        return float(task.evaluate(model, data.test))


def _model_with_state(
    task: Task, state: dict[str, torch.Tensor], device: torch.device
) -> torch.nn.Module:
    """The task's model holding `state` (evaluated weights), in evaluation mode."""
    model = task.prepare_model(task.build_model().to(device), device)
    model.load_state_dict(state)
    model.eval()
    return model


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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
    from lrbench.tools import lr_range_test

    device = resolve_device(device)
    model, opt = _fresh_model_and_optimizer(
        task, TrainConfig.for_task(task, start_lr, optimizer=optimizer, seed=seed), device
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
