"""The one training loop: trial configurations in, their results out.

A lone trial is a population of one. `train_trials` puts the trials in one form
(`lrbench.training._forms`: the task's own model for one trial, one stacked or folded module for
several) and runs one loop over it: every epoch, each trial's steps (cut at its own budget),
each trial's end of epoch, evaluation and hooks by its ledger (`lrbench.training._ledger`), and
the trials that stopped dropped from the computation. Trials the task cannot stack train one
after another through the same loop.

Hot-loop rules (design.md, Performance): batches are slices of an on-device permutation, the
losses are accumulated on the device and divergence is tracked there; the host reads back once
per epoch. Evaluation is timed apart from training because it is not training. On a CPU a
stacked member's numbers equal a lone trial's bit for bit (tests/test_population.py); folded
conv nets and GPUs sum in another order, so they agree within float tolerance.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from lrbench.interrupts import raise_if_interrupted
from lrbench.tasks import DataOptions, Task, TaskData
from lrbench.training._config import EpochRecord, TrainConfig, TrainOptions, TrainResult
from lrbench.training._device import resolve_device
from lrbench.training._evaluation import measure, state_copy, validate
from lrbench.training._forms import Form, LoneForm, StackedForm, can_stack
from lrbench.training._ledger import TrialLedger


def train_trials(
    task: Task,
    configs: list[TrainConfig],
    *,
    device: torch.device | str = "cpu",
    data: TaskData | None = None,
    data_options: DataOptions | None = None,
    options: list[TrainOptions] | TrainOptions | None = None,
    stacked_step: bool | None = None,
) -> list[TrainResult]:
    """Train `configs` of `task`; return each trial's result, in order.

    Several trials train at once as one population when the task can stack them (its
    `population_form`), else one after another; either way each gets the result it gets alone
    (bit for bit on one CPU thread). `options` is one `TrainOptions` for every trial or one per
    trial. `stacked_step` updates all members with one stacked optimizer step
    (`lrbench.stacking.StackedStep`: Adam, AdamW, SGD; equal to lone trials within float
    rounding) instead of each member's own torch optimizer; None chooses it on a GPU, where the
    arithmetic is not bit-identical anyway and kernel launches are the cost.

    A trial that diverges (non-finite loss, or a step loss above `task.diverge_factor` x the
    first) ends after the epoch in which it diverged, with `diverged=True` and its epochs
    counted.

    Two rates of SGD on the bowl f = 20x² + 2y² from (2, 2), 3 epochs of 10 steps, as one
    population:

    >>> import lrbench
    >>> task = lrbench.get_task("functions", function="bowl")
    >>> configs = [lrbench.TrainConfig.for_task(task, lr, epochs=3) for lr in (0.01, 0.02)]
    >>> [round(r.best_val, 3) for r in lrbench.train_trials(task, configs)]
    [0.691, 0.054]
    """
    if not configs:
        return []
    device = resolve_device(device)
    data = data if data is not None else task.prepare(device, data_options or DataOptions())
    if options is None or isinstance(options, TrainOptions):
        options = [options or TrainOptions()] * len(configs)
    if len(options) != len(configs):
        raise ValueError(f"{len(configs)} configs but {len(options)} options")
    if len(configs) > 1 and can_stack(task, configs, options):
        if stacked_step is None:
            stacked_step = device.type == "cuda"
        form = StackedForm(task, configs, options, device, data, stacked_step)
        return _Training(task, form, form.ledgers, device, data).run()
    results = []
    for config, opts in zip(configs, options):
        lone = LoneForm(task, config, opts, device, data)
        results += _Training(task, lone, [lone.ledger], device, data).run()
    return results


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
    """Train one configuration of `task` (`train_trials` of one); `options`, or its fields as
    keywords (e.g. `evaluate_test=False`), say how: see `TrainOptions`.

    >>> import lrbench
    >>> task = lrbench.get_task("functions", function="bowl")
    >>> result = lrbench.train(task, lrbench.TrainConfig.for_task(task, 0.02, epochs=3))
    >>> result.steps, result.best_epoch, round(result.best_val, 3)
    (30, 3, 0.054)
    """
    try:
        options = dataclasses.replace(options or TrainOptions(), **option_fields)
    except TypeError as e:
        raise TypeError(f"train: {e}") from None
    return train_trials(
        task, [config], device=device, data=data, data_options=data_options, options=options
    )[0]


@dataclass
class _EpochStats:
    """One epoch's per-trial training statistics, read back once."""

    mean: list[float]
    max: list[float]
    first: list[float]
    steps: list[int]
    seconds: float = 0.0


class _Training:
    """One run of the loop over one form: the trials, their epochs, their results."""

    def __init__(
        self,
        task: Task,
        form: Form,
        ledgers: list[TrialLedger],
        device: torch.device,
        data: TaskData,
    ) -> None:
        self.task, self.form, self.ledgers, self.device, self.data = (
            task,
            form,
            ledgers,
            device,
            data,
        )
        self.spe = data.steps_per_epoch
        self.first_loss: torch.Tensor | None = None  # each trial's first step's loss, on device

    def run(self) -> list[TrainResult]:
        for k, m in enumerate(self.form.active):
            if m.options.evaluate_initial:
                with self.form.evaluated(k) as model:
                    m.initial_val = measure(self.task, model, self.data.val, self.device)
            if m.config.max_steps is not None and m.config.max_steps <= 0:
                m.cut = True
                self._finish(m, k)
        self._compact()
        epoch = 0
        while self.form.active:
            epoch += 1
            stats = self._train_epoch()
            for k, m in enumerate(list(self.form.active)):
                self._after_epoch(m, k, epoch, stats)
            self._compact()
        return [self._result(m) for m in self.ledgers]

    def _compact(self) -> None:
        """Drop the trials that stopped: they cost no more compute."""
        active = self.form.active
        survivors = [k for k, m in enumerate(active) if not m.finished]
        if len(survivors) == len(active):
            return
        if self.first_loss is not None:
            keep = torch.tensor(survivors, device=self.device, dtype=torch.long)
            self.first_loss = self.first_loss.index_select(0, keep)
        self.form.keep(survivors)

    def _train_epoch(self) -> _EpochStats:
        """One epoch of steps for every active trial (each cut at its own budget)."""
        form = self.form
        form.train_mode()
        t0 = time.perf_counter()
        k = len(form.active)
        zeros = torch.zeros(k, device=self.device)
        loss_sum, loss_max = zeros.clone(), zeros.clone()
        live: torch.Tensor | None = None  # set once some trial reached its budget mid-epoch
        counts = [0] * k
        for batch in form.batches():
            raise_if_interrupted()  # Ctrl-C stops here, between steps (lrbench.interrupts)
            stepping = [i for i, m in enumerate(form.active) if not m.at_budget()]
            if not stepping:
                break
            if len(stepping) < k:
                live = _mask(stepping, k, self.device)
            losses = form.step(batch, stepping).detach().float()
            if self.first_loss is None:
                self.first_loss = losses.abs()
            if live is None:
                loss_sum += losses
                loss_max = torch.maximum(loss_max, losses)  # NaN survives to the check
            else:  # trials at their budget take no more steps: nothing to add for them
                loss_sum += torch.where(live, losses, 0.0)
                loss_max = torch.maximum(loss_max, torch.where(live, losses, -math.inf))
            for i in stepping:
                counts[i] += 1
        return self._read_back(loss_sum, loss_max, counts, time.perf_counter() - t0)

    def _read_back(self, loss_sum, loss_max, counts: list[int], seconds: float) -> _EpochStats:
        # Each trial's mean as a plain loop divides it (0-d tensor by an int).
        means = torch.stack([loss_sum[i] / max(c, 1) for i, c in enumerate(counts)])
        first = (
            self.first_loss if self.first_loss is not None else torch.full_like(means, math.nan)
        )
        mean, mx, fst = torch.stack([means, loss_max, first]).tolist()  # one sync
        return _EpochStats(mean, mx, fst, counts, seconds)

    def _after_epoch(self, m: TrialLedger, k: int, epoch: int, stats: _EpochStats) -> None:
        """Trial `m` (position `k`): its end of epoch, evaluation, record and hooks."""
        if stats.steps[k] == 0:  # its budget ended exactly at the previous epoch's end
            self._finish(m, k)
            return
        share = stats.seconds / len(self.form.active)
        if m.end_epoch(stats.mean[k], stats.max[k], stats.first[k], share):
            self.form.reset_optimizers()
        t1 = time.perf_counter()
        val, extras = float("nan"), dict[str, float]()
        if not m.diverged:
            with self.form.evaluated(k) as model:
                val, extras = validate(self.task, model, self.data.val, self.device)
                m.diverged = not math.isfinite(val)
                if not m.diverged:
                    m.evaluated(epoch, val, lambda: state_copy(model))
        ev = time.perf_counter() - t1
        m.eval_seconds += ev
        lr = m.optimizer.param_groups[0]["lr"]
        steps = m.steps
        record = EpochRecord(
            epoch, stats.mean[k], val, lr, steps, steps / self.spe, share, ev, extras
        )
        m.after_epoch(record)
        if m.finished:
            self._finish(m, k)

    def _finish(self, m: TrialLedger, k: int) -> None:
        """Trial `m` (position `k`) trains no more: keep its final weights if it asks."""
        m.finished = True
        if m.options.keep_final_state:
            m.final_state = self.form.trained_state(k)
            m.keep_final_optimizer_state()

    def _result(self, m: TrialLedger) -> TrainResult:
        test = None
        if m.options.evaluate_test and m.best_state is not None:
            model = self.form.with_state(m.best_state)
            test = measure(self.task, model, self.data.test, self.device)
        return m.result(test)


def _mask(indices: list[int], k: int, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(k, dtype=torch.bool)
    mask[indices] = True
    return mask.to(device)
