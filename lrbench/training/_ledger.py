"""One trial's ledger: everything that makes a trial one trial, whether it trains alone or as a
member of a population.

The ledger owns the trial's optimizer, schedule and evaluation weights, its data and noise
generators, and its running account: steps against the budget, the schedule's steps, the
optimizer reset, divergence, the best state, the callback (pruning), the end of training and
the result. The training loop (`lrbench.training._loop`) owns the model and the steps; it
asks the ledger what the trial's rules say.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch

from lrbench.tasks import Task
from lrbench.tools import BuiltSchedule, build_optimizer, build_schedule
from lrbench.training._config import EpochRecord, TrainConfig, TrainOptions, TrainResult
from lrbench.training._evaluation import EvaluationWeights


class TrialLedger:
    """A trial's optimizer, schedule, generators and running account."""

    def __init__(
        self,
        task: Task,
        config: TrainConfig,
        options: TrainOptions,
        device: torch.device,
        steps_per_epoch: int,
        noise_generator: torch.Generator | None,
    ) -> None:
        self.task, self.config, self.options = task, config, options
        self.spe = steps_per_epoch
        # The data order from the trial's seed.
        self.data_generator = torch.Generator(device=device).manual_seed(config.seed)
        # The loss's random numbers: None draws from torch's global generator (a lone trial);
        # a population member has its own, started where the global one stood after its
        # model was initialised, so its draws are a lone trial's.
        self.noise_generator = noise_generator
        # Batch-norm recalibration draws its batches from a stream of its own, so that training
        # sees the same data order with or without it.
        self.bn_generator = torch.Generator(device=device).manual_seed(config.seed + 2**31)
        self.optimizer: torch.optim.Optimizer
        self.schedule: BuiltSchedule
        self.weights: EvaluationWeights = EvaluationWeights()
        self.stepped_together = False  # a population step updates this trial's parameters
        self.history: list[EpochRecord] = []
        self.best_val: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.final_state: dict[str, torch.Tensor] | None = None
        self.final_optimizer_state: dict[str, Any] | None = None
        self.initial_val: float | None = None
        self.steps = 0
        self.diverged = self.cut = self.stopped = self.finished = False
        self.train_seconds = self.eval_seconds = 0.0

    # -- set-up --------------------------------------------------------------------------------
    def build(self, params: list[torch.Tensor]) -> None:
        """The trial's optimizer over `params` (with the given `initial_optimizer_state`, if
        any) and its schedule."""
        config = self.config
        self.optimizer = build_optimizer(
            config.optimizer, params, config.lr, **config.optimizer_kwargs
        )
        if self.options.initial_optimizer_state is not None:
            load_optimizer_state(self.optimizer, self.options.initial_optimizer_state)
        self.schedule = build_schedule(
            config.schedule,
            self.optimizer,
            lr=config.lr,
            epochs=config.epochs,
            steps_per_epoch=self.spe,
        )

    def rebind(self, old: list[torch.Tensor], new: list[torch.Tensor]) -> None:
        """Point the optimizer (parameters and per-parameter state) at new tensors, after a
        population's stacked tensors were compacted."""
        new_of = {id(o): n for o, n in zip(old, new)}
        for group in self.optimizer.param_groups:
            group["params"] = [new_of[id(p)] for p in group["params"]]
        state = self.optimizer.state
        for o, n in zip(old, new):
            if o in state:
                state[n] = state.pop(o)

    # -- within an epoch -----------------------------------------------------------------------
    def at_budget(self) -> bool:
        """Whether the trial's budget forbids another step (a batch is waiting: it is cut)."""
        max_steps = self.config.max_steps
        if max_steps is not None and self.steps >= max_steps:
            self.cut = True
            return True
        return False

    def step(self) -> None:
        """After the backward: the optimizer step (unless a population step updated the trial's
        parameters: `stepped_together`), the evaluation weights' hook and the per-batch
        schedule step."""
        if not self.stepped_together:
            self.optimizer.step()
            self.weights.after_step()
            self.schedule.after_step()
        elif self.steps == 0:
            _quietly(self.schedule.after_step)
        else:
            self.schedule.after_step()
        self.steps += 1

    # -- after an epoch ------------------------------------------------------------------------
    def end_epoch(self, mean_loss: float, max_loss: float, first: float, seconds: float) -> bool:
        """The end of an epoch's steps: the per-epoch schedule step (none after a budget cut),
        the optimizer reset if the trial asks for one, then divergence from the epoch's losses.
        Returns whether the optimizer was reset."""
        reset = False
        if not self.cut:
            if self.stepped_together:
                _quietly(self.schedule.after_epoch)
            else:
                self.schedule.after_epoch()
            if self.config.optimizer_reset == "epoch":
                # A fresh optimizer at the rate the schedule set: per-parameter state (moments,
                # step counts) gone, hyperparameters kept, as a newly built one would have them.
                self.optimizer.state.clear()
                reset = True
        self.train_seconds += seconds
        self.diverged = not (math.isfinite(mean_loss) and math.isfinite(max_loss)) or (
            max_loss > self.task.diverge_factor * max(first, 1e-12)
        )
        return reset

    def evaluated(self, epoch: int, val: float, state_of_model) -> None:
        """After a finite evaluation: keep the evaluated weights (`state_of_model()`, called
        only when needed) if `val` is the best so far."""
        if self.best_val is None or self.task.is_better(val, self.best_val):
            self.best_val, self.best_epoch = val, epoch
            self.best_state = state_of_model()

    def after_epoch(self, record: EpochRecord) -> None:
        """Report the epoch, ask the callback; set `finished` when training ends."""
        self.history.append(record)
        if self.options.progress is not None:
            self.options.progress(record)
        self.finished = self._ends_after(record)

    def _ends_after(self, record: EpochRecord) -> bool:
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
        return record.epoch >= self.config.epochs

    def keep_final_optimizer_state(self) -> None:
        """Copy the optimizer's state as it ends training (`keep_final_state`)."""
        self.final_optimizer_state = copy.deepcopy(self.optimizer.state_dict())

    def result(self, test: float | None) -> TrainResult:
        config = self.config
        return TrainResult(
            task=self.task.name,
            lr=config.lr,
            optimizer=config.optimizer,
            schedule=config.schedule.describe(),
            seed=config.seed,
            epochs=self.steps / self.spe,
            steps=self.steps,
            best_epoch=self.best_epoch,
            best_val=self.best_val,
            test=test,
            diverged=self.diverged,
            cut=self.cut,
            stopped=self.stopped,
            seconds=self.train_seconds,
            eval_seconds=self.eval_seconds,
            history=self.history,
            initial_val=self.initial_val,
            best_state=self.best_state if self.options.keep_best_state else None,
            final_state=self.final_state,
            final_optimizer_state=self.final_optimizer_state,
        )


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a stored `state_dict()` into a freshly built `optimizer`, keeping the rate it was
    built with: its per-parameter state carries on, the stored rates (and a previous schedule's
    `initial_lr`) are dropped, so the trial's schedule starts from the trial's own rate. The
    state is copied first: torch would share its tensors (the step count) with `state`, and
    one stored state may start several trials."""
    rates = [group["lr"] for group in optimizer.param_groups]
    optimizer.load_state_dict(copy.deepcopy(state))
    for group, lr in zip(optimizer.param_groups, rates):
        group["lr"] = lr
        group.pop("initial_lr", None)


def _quietly(schedule_step) -> None:
    """A schedule step of an optimizer that never steps itself (a population step updates its
    parameters), without torch's note that the optimizer has not stepped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        schedule_step()
