"""The population engine: K trials of one task trained in lockstep as one stacked computation.

Each member is one `TrainConfig` (its own rate, schedule, optimizer, seed, epochs and budget
cut) with its own `TrainOptions` (callback, progress ...), and gets the `engine.TrainResult` a
lone `engine.train` of that configuration returns, so it is recorded exactly as a single trial.

How (design.md, "Performance principles"):

- The K models live in one module built by the task (`Task.population_model`): linear nets
  stacked (`lrbench.stacking._stacked`: one batched matrix product per layer for all members), conv nets
  folded into the channels of one grouped net (`lrbench.stacking._folded`). Member k is initialised as
  a lone trial is (`torch.manual_seed(seed)` then the task's model), draws its data order from
  its own generator (batches gathered with a (K, B) index tensor) and its loss noise from its
  own copy of the global generator's state.
- Each member has its own torch optimizer and `torch.optim.lr_scheduler` schedule, over views of
  its slice of the stacked parameters; their gradients are views of the stacked gradients,
  zeroed in place each step. So every optimizer and schedule the engine supports works per
  member unchanged, with a lone trial's arithmetic.
- Losses, divergence statistics and budget masks stay on the device; the host reads back once
  per epoch. A member that diverges, is stopped by its callback (pruned), finishes its epochs
  or reaches its budget is dropped from the stacked tensors at the epoch's end (compaction), so
  it stops costing compute; within an epoch a member at its budget is masked (no more steps).
- Evaluation runs per member on one plain copy of the task's model loaded with that member's
  parameters: the task's own metric code, unchanged.

On a CPU a stacked member's numbers equal a lone trial's bit for bit (tests/test_population.py);
folded conv nets and GPUs sum in another order, so they agree within float tolerance
(tests/test_population_cifar10.py).
Training seconds are the member's share of the population's wall time (the epoch's seconds
divided by the members that trained in it), so a run's trial seconds add up to its wall time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from lrbench.errors import ConfigError
from lrbench.interrupts import raise_if_interrupted
from lrbench.stacking import StackedStep, keep_members
from lrbench.tasks import DataOptions, Task, TaskData
from lrbench.tools import OPTIMIZERS, build_optimizer
from lrbench.training._engine import (
    EpochRecord,
    TrainConfig,
    TrainOptions,
    TrainResult,
    optimizer_has_modes,
    resolve_device,
)
from lrbench.training._member import Member


def default_population(task: Task, device: torch.device | str) -> int:
    """The population size `lrbench run` uses unless told: 1 (off) on a CPU, where a population
    gains little because the cores are already busy; 32 on a GPU for tasks that support it."""
    device = resolve_device(device)
    if device.type == "cpu" or not task.population_ready:
        return 1
    return 32


def population_size(
    task: Task, device: torch.device | str, requested: int | None, optimizer: str | None = None
) -> int:
    """How many trials of `task` with `optimizer` (None: the task's) train at once: 1 where the
    task cannot batch or the optimizer keeps evaluation weights of its own (train / eval
    modes, e.g. Schedule-Free), else the size asked for, else `default_population`."""
    cls = OPTIMIZERS.get(optimizer or task.default_optimizer, (None,))[0]
    if not task.population_ready or (cls is not None and optimizer_has_modes(cls)):
        return 1
    return default_population(task, device) if requested is None else requested


def supports_population(task: Task) -> bool:
    return bool(task.population_ready)


def train_population(
    task: Task,
    configs: list[TrainConfig],
    *,
    device: torch.device | str = "cpu",
    data: TaskData | None = None,
    data_options: DataOptions | None = None,
    options: list[TrainOptions] | TrainOptions | None = None,
    stacked_step: bool | None = None,
) -> list[TrainResult]:
    """Train `configs` as one population; return each member's result, in order.

    `options` is one `TrainOptions` for every member or one per member. `stacked_step` updates
    all members with one stacked optimizer step (`lrbench.stacking._stacked_step`: Adam, AdamW, SGD;
    equal to lone trials within float rounding) instead of each member's own torch optimizer
    (bit-identical on one CPU thread); None chooses it on a GPU, where the arithmetic is not
    bit-identical anyway and kernel launches are the cost.
    """
    if not task.population_ready:
        raise ConfigError(f"task {task.name!r} does not support population training")
    if not configs:
        return []
    device = resolve_device(device)
    data = data if data is not None else task.prepare(device, data_options or DataOptions())
    if options is None or isinstance(options, TrainOptions):
        options = [options or TrainOptions()] * len(configs)
    if len(options) != len(configs):
        raise ValueError(f"{len(configs)} configs but {len(options)} options")
    if stacked_step is None:
        stacked_step = device.type == "cuda"
    return _Population(task, configs, options, device, data, stacked_step).run()


@dataclass
class _EpochStats:
    """One epoch's per-member training statistics, read back once."""

    mean: list[float]
    max: list[float]
    first: list[float]
    steps: list[int]
    seconds: float = 0.0


class _Population:
    """One call of `train_population`: the stacked model, the members, the running state."""

    def __init__(
        self,
        task: Task,
        configs: list[TrainConfig],
        options: list[TrainOptions],
        device: torch.device,
        data: TaskData,
        stacked_step: bool = False,
    ) -> None:
        self.task, self.device, self.data = task, device, data
        self.spe = data.steps_per_epoch
        models, noise_states = [], []
        for config, opts in zip(configs, options):
            torch.manual_seed(config.seed)
            model = task.prepare_model(task.build_model().to(device), device)
            if opts.initial_state is not None:
                model.load_state_dict(opts.initial_state)
            models.append(model)
            noise_states.append(_default_generator(device).get_state())
        self.template = models[0]  # a plain model: members are evaluated on it
        self.stacked = task.population_model(models)
        self.names = [name for name, _ in self.stacked.named_parameters()]
        self.buffer_names = [name for name, _ in self.stacked.named_buffers()]
        self.members = [
            Member(task, i, config, opts, device, noise_states[i], self.spe)
            for i, (config, opts) in enumerate(zip(configs, options))
        ]
        self.active = list(self.members)
        self._bind()
        for m in self.members:
            m.optimizer = build_optimizer(
                m.config.optimizer, m.params, m.config.lr, **m.config.optimizer_kwargs
            )
            if optimizer_has_modes(m.optimizer):
                # Its evaluation weights live in the optimizer (Schedule-Free): the population
                # evaluates a plain copy of the model, which would miss them.
                raise ConfigError(
                    f"population training does not support optimizer {m.config.optimizer!r}"
                    " (it has train / eval modes): train its trials one at a time (population 1)"
                )
            m.build_schedule()
        optimizers = [m.optimizer for m in self.members]
        self.fast = StackedStep.build(optimizers) if stacked_step else None
        for m in self.members:
            m.stepped_together = self.fast is not None
        self.first_loss: torch.Tensor | None = None

    # -- the stacked parameters and the members' views of them ---------------------------------
    def _bind(self) -> None:
        """(Re)point every active member's parameter, gradient and buffer views at its slice.

        A member's views carry what its optimizer reads off a lone model's parameters: a
        gradient only where the parameter trains, and its rate multiplier (`lr_scale`)."""
        params = list(self.stacked.parameters())
        buffers = list(self.stacked.buffers())
        for p in params:
            p.grad = torch.zeros_like(p) if p.requires_grad else None
        for k, m in enumerate(self.active):
            views = []
            for p in params:
                view = p.detach()[k]
                if p.grad is not None:
                    view.grad = p.grad[k]
                if hasattr(p, "lr_scale"):
                    view.lr_scale = p.lr_scale
                views.append(view)
            m.rebind(views, [b[k] for b in buffers])

    def _compact(self) -> None:
        """Drop the members that stopped: they cost no more compute."""
        survivors = [k for k, m in enumerate(self.active) if not m.finished]
        if len(survivors) == len(self.active):
            return
        keep = torch.tensor(survivors, device=self.device, dtype=torch.long)
        keep_members(self.stacked, keep)
        if self.fast is not None:
            self.fast.keep(keep)
        if self.first_loss is not None:
            self.first_loss = self.first_loss.index_select(0, keep)
        self.active = [self.active[k] for k in survivors]
        if self.active:
            self._bind()

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> list[TrainResult]:
        for m in self.members:
            if m.options.evaluate_initial:
                m.initial_val = self._evaluate(self._state(m), self.data.val)
            if m.config.max_steps is not None and m.config.max_steps <= 0:
                m.cut = m.finished = True
        self._compact()
        epoch = 0
        while self.active:
            epoch += 1
            stats = self._train_epoch()
            for k, m in enumerate(list(self.active)):
                self._after_epoch(m, k, epoch, stats)
            self._compact()
        return [self._result(m) for m in self.members]

    def _train_epoch(self) -> _EpochStats:
        """One epoch of steps for every active member (each cut at its own budget)."""
        self.stacked.train()
        t0 = time.perf_counter()
        k = len(self.active)
        zeros = torch.zeros(k, device=self.device)
        loss_sum, loss_max = zeros.clone(), zeros.clone()
        live: torch.Tensor | None = None  # set once some member reached its budget mid-epoch
        counts = [0] * k
        generators = [m.data_generator for m in self.active]
        for batch in self.task.population_batches(self.data, generators):
            raise_if_interrupted()  # Ctrl-C stops here, between steps (lrbench.interrupts)
            stepping = [i for i, m in enumerate(self.active) if not m.at_budget()]
            if not stepping:
                break
            if len(stepping) < k:
                live = _mask(stepping, k, self.device)
            losses = self._step(batch, stepping).detach().float()
            if self.first_loss is None:
                self.first_loss = losses.abs()
            if live is None:
                loss_sum += losses
                loss_max = torch.maximum(loss_max, losses)  # NaN survives to the check
            else:  # members at their budget take no more steps: nothing to add for them
                loss_sum += torch.where(live, losses, 0.0)
                loss_max = torch.maximum(loss_max, torch.where(live, losses, -math.inf))
            for i in stepping:
                counts[i] += 1
        return self._read_back(loss_sum, loss_max, counts, time.perf_counter() - t0)

    def _step(self, batch, stepping: list[int]) -> torch.Tensor:
        """One optimizer step of the members at indices `stepping` (all, unless some reached
        their budget): the stacked forward and backward, then each member's own step."""
        with self.task.autocast(self.device):
            noise = self.task.population_noise(batch, [m.noise_generator for m in self.active])
            losses = self.task.population_loss(self.stacked, batch, noise)
        for p in self.stacked.parameters():
            if p.grad is not None:
                p.grad.zero_()
        losses.sum().backward()
        if self.fast is None:
            for i in stepping:
                self.active[i].step()
            return losses
        self._stacked_step(stepping)
        for i in stepping:
            self.active[i].step()
        return losses

    def _stacked_step(self, stepping: list[int]) -> None:
        """All members' update at once; members at their budget are put back as they were."""
        params = list(self.stacked.parameters())
        held = [i for i in range(len(self.active)) if i not in stepping]
        saved = [p.detach()[held].clone() for p in params] if held else []
        self.fast.step(params, [m.optimizer.param_groups[0] for m in self.active])
        with torch.no_grad():
            for p, s in zip(params, saved):
                p[held] = s

    def _read_back(self, loss_sum, loss_max, counts: list[int], seconds: float) -> _EpochStats:
        # Each member's mean as the single-trial engine divides it (0-d tensor by an int).
        means = torch.stack([loss_sum[i] / max(c, 1) for i, c in enumerate(counts)])
        first = (
            self.first_loss if self.first_loss is not None else torch.full_like(means, math.nan)
        )
        mean, mx, fst = torch.stack([means, loss_max, first]).tolist()  # one sync
        return _EpochStats(mean, mx, fst, counts, seconds)

    def _after_epoch(self, m: Member, k: int, epoch: int, stats: _EpochStats) -> None:
        """Member `m` (row `k`): schedule, divergence, evaluation, record and its hooks."""
        if stats.steps[k] == 0:  # its budget ended exactly at the previous epoch's end
            m.finished = True
            return
        share = stats.seconds / len(self.active)
        m.end_epoch(stats.mean[k], stats.max[k], stats.first[k], share)
        t1 = time.perf_counter()
        val, extras = float("nan"), {}
        if not m.diverged:
            val, extras = self._evaluate_with_extras(m)
        ev = time.perf_counter() - t1
        m.eval_seconds += ev
        lr = m.optimizer.param_groups[0]["lr"]
        record = EpochRecord(
            epoch, stats.mean[k], val, lr, m.steps, m.steps / self.spe, share, ev, extras
        )
        m.after_epoch(record, self._state(m))

    # -- evaluation on the plain template model ------------------------------------------------
    def _state(self, m: Member) -> dict[str, torch.Tensor]:
        """Member `m`'s parameters and buffers by the lone model's names (views, not copies)."""
        return {**dict(zip(self.names, m.params)), **dict(zip(self.buffer_names, m.buffers))}

    def _evaluate(self, state: dict[str, torch.Tensor], split) -> float:
        self.template.load_state_dict(state)
        self.template.eval()
        with torch.no_grad(), self.task.autocast(self.device):
            return float(self.task.evaluate(self.template, split))

    def _evaluate_with_extras(self, m: Member) -> tuple[float, dict[str, float]]:
        val = self._evaluate(self._state(m), self.data.val)
        if not math.isfinite(val):
            m.diverged = True
            return val, {}
        with torch.no_grad(), self.task.autocast(self.device):
            extras = self.task.extra_metrics(self.template, self.data.val)
        if not extras:
            return val, {}
        values = torch.stack([v.detach().float().reshape(()) for v in extras.values()]).tolist()
        return val, dict(zip(extras, values))

    def _result(self, m: Member) -> TrainResult:
        test = None
        if m.options.evaluate_test and m.best_state is not None:
            test = self._evaluate(m.best_state, self.data.test)
        return m.result(test)


def _default_generator(device: torch.device) -> torch.Generator:
    """The generator `torch.randn(..., device=device)` draws from when given none."""
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index or torch.cuda.current_device()]
    return torch.default_generator


def _mask(indices: list[int], k: int, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(k, dtype=torch.bool)
    mask[indices] = True
    return mask.to(device)
