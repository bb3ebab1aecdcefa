"""One member of a population: a trial's own optimizer, schedule, generators and running state.

The population engine (`lrbench.training._population`) owns the stacked model and the shared loop; a
member owns everything that makes it one trial, and applies the single-trial engine's rules to
itself: the schedule steps, divergence, the best state, the callback (pruning) and the budget.
"""

from __future__ import annotations

import math
import warnings

import torch

from lrbench.tasks import Task
from lrbench.tools import BuiltSchedule, build_schedule
from lrbench.training._engine import EpochRecord, TrainConfig, TrainOptions, TrainResult, result_of


class Member:
    """A trial inside a population; `params` are views of its slice of the stacked parameters."""

    def __init__(
        self,
        task: Task,
        index: int,
        config: TrainConfig,
        options: TrainOptions,
        device: torch.device,
        noise_state: torch.Tensor,
        steps_per_epoch: int,
    ) -> None:
        self.task, self.index, self.config, self.options = task, index, config, options
        self.spe = steps_per_epoch
        # The data order from the trial's seed, as `engine.train` draws it.
        self.data_generator = torch.Generator(device=device).manual_seed(config.seed)
        # The loss's random numbers: the global generator's state after building the model.
        self.noise_generator = torch.Generator(device=device)
        self.noise_generator.set_state(noise_state)
        self.optimizer: torch.optim.Optimizer | None = None
        self.stepped_together = False  # the population steps all members' parameters at once
        self.schedule: BuiltSchedule | None = None
        self.params: list[torch.Tensor] = []
        self.buffers: list[torch.Tensor] = []
        self.history: list[EpochRecord] = []
        self.best_val: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.initial_val: float | None = None
        self.steps = 0
        self.diverged = self.cut = self.stopped = self.finished = False
        self.train_seconds = self.eval_seconds = 0.0

    def build_schedule(self) -> None:
        self.schedule = build_schedule(
            self.config.schedule,
            self.optimizer,
            lr=self.config.lr,
            epochs=self.config.epochs,
            steps_per_epoch=self.spe,
        )

    def rebind(self, views: list[torch.Tensor], buffers: list[torch.Tensor]) -> None:
        """Point the optimizer (parameters and per-parameter state) at new views, after the
        population's stacked tensors were compacted."""
        old, self.params, self.buffers = self.params, views, buffers
        if self.optimizer is None:
            return
        new_of = {id(o): n for o, n in zip(old, views)}
        for group in self.optimizer.param_groups:
            group["params"] = [new_of[id(p)] for p in group["params"]]
        state = self.optimizer.state
        for o, n in zip(old, views):
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
        """After the population's backward: the member's optimizer step (unless the population
        stepped all members at once: `stepped_together`) and its per-batch schedule step."""
        if not self.stepped_together:
            self.optimizer.step()
            self.schedule.after_step()
        elif self.steps == 0:
            self._quietly(self.schedule.after_step)
        else:
            self.schedule.after_step()
        self.steps += 1

    @staticmethod
    def _quietly(schedule_step) -> None:
        """A schedule step of an optimizer that never steps itself (the population updates its
        parameters), without torch's note that the optimizer has not stepped."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            schedule_step()

    # -- after an epoch ------------------------------------------------------------------------
    def end_epoch(self, mean_loss: float, max_loss: float, first: float, seconds: float) -> None:
        """The single-trial engine's end of an epoch: the per-epoch schedule step (none after a
        budget cut), then divergence from the epoch's losses."""
        if not self.cut:
            if self.stepped_together:
                self._quietly(self.schedule.after_epoch)
            else:
                self.schedule.after_epoch()
        self.train_seconds += seconds
        self.diverged = not (math.isfinite(mean_loss) and math.isfinite(max_loss)) or (
            max_loss > self.task.diverge_factor * max(first, 1e-12)
        )

    def after_epoch(self, record: EpochRecord, state: dict[str, torch.Tensor]) -> None:
        """Keep the best state (`state`: the member's parameters and buffers by name), report,
        ask the callback; set `finished` when training ends."""
        if not self.diverged and (
            self.best_val is None or self.task.is_better(record.val, self.best_val)
        ):
            self.best_val, self.best_epoch = record.val, record.epoch
            self.best_state = {n: t.detach().clone() for n, t in state.items()}
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
            self.cut = self.config.epochs * self.spe > self.steps
            return True
        return record.epoch >= self.config.epochs

    def result(self, test: float | None) -> TrainResult:
        return result_of(self, self.initial_val, test)
