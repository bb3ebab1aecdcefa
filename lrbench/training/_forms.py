"""How the trials of one call of the training path sit in one computation: the form.

`LoneForm` is one trial on the task's own model: its parameters are the model's, so every
optimizer, schedule and evaluation rule applies as in any PyTorch loop (optimizers with train /
eval modes, evaluation weights, batch-norm recalibration). `StackedForm` is K trials as one
module (`lrbench.stacking`): nets of linear layers stacked on a leading member dimension, conv
nets folded into the channels of one grouped net, as the task's `population_form` says. Each
member's optimizer works on views of its slice of the stacked parameters; members are evaluated
on one plain copy of the task's model loaded with their parameters.

Both forms give the loop the same things: batches, the trials' losses (one per trial, from the
task's one per-example loss), the step, the evaluated model of a trial, and compaction (a
stopped member is dropped so it costs no compute).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from lrbench.errors import ConfigError
from lrbench.stacking import (
    StackedStep,
    fold_input,
    fold_models,
    keep_members,
    stack_models,
    unfold_output,
)
from lrbench.tasks import Task, TaskData
from lrbench.tools import OPTIMIZERS
from lrbench.training._config import TrainConfig, TrainOptions
from lrbench.training._evaluation import (
    fresh_model,
    has_batch_norm,
    optimizer_has_modes,
    set_training,
    state_copy,
)
from lrbench.training._ledger import TrialLedger

if TYPE_CHECKING:
    from lrbench.tools._optimizers import LrScaled


def can_stack(task: Task, configs: list[TrainConfig], options: list[TrainOptions]) -> bool:
    """Whether these trials can train as one stacked computation: the task has a population
    form, and no trial evaluates weights other than the ones it trains (an optimizer with
    train / eval modes keeps its evaluation weights to itself; evaluation weights and forced
    batch-norm recalibration need the trial's own model)."""
    if (
        task.population_form is None
        or type(task).evaluation_weights is not Task.evaluation_weights
    ):
        return False
    for config, opts in zip(configs, options):
        cls = OPTIMIZERS.get(config.optimizer, (None,))[0]
        if cls is not None and optimizer_has_modes(cls):
            return False
        if opts.evaluation_weights is not None or opts.recalibrate_bn:
            return False
    return True


class LoneForm:
    """One trial on the task's own model."""

    def __init__(
        self, task: Task, config: TrainConfig, options: TrainOptions, device, data: TaskData
    ) -> None:
        self.task, self.device, self.data = task, device, data
        self.model = fresh_model(task, config.seed, device)
        if options.initial_state is not None:
            self.model.load_state_dict(options.initial_state)
        ledger = TrialLedger(task, config, options, device, data.steps_per_epoch, None)
        ledger.build(list(self.model.parameters()))
        factory = options.evaluation_weights or task.evaluation_weights
        weights = factory(self.model, ledger.optimizer)
        if weights is not None:
            ledger.weights = weights
        self.ledger = ledger
        self.active = [ledger]
        self.recalibrate = self._needs_recalibration(options)
        self.autocast = task.autocast(device)

    def _needs_recalibration(self, options: TrainOptions) -> bool:
        if not has_batch_norm(self.model):
            return False
        if options.recalibrate_bn is not None:
            return options.recalibrate_bn
        return optimizer_has_modes(self.ledger.optimizer) or bool(
            self.ledger.weights.recalibrate_bn
        )

    # -- training ------------------------------------------------------------------------------
    def train_mode(self) -> None:
        set_training(self.model, self.ledger.optimizer, True)

    def batches(self) -> Iterator[Any]:
        return self.task.train_batches(self.data, self.ledger.data_generator)

    def step(self, batch: Any, stepping: list[int]) -> torch.Tensor:
        """One optimizer step of the trial; its loss, shape (1,)."""
        task = self.task
        with self.autocast:
            # Noise from torch's global generator, as a plain loop draws it.
            loss = task.example_losses(self.model, batch, task.loss_noise(batch, None)).mean(-1)
        self.ledger.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.ledger.step()
        return loss.reshape(1)

    def reset_optimizers(self) -> None:
        """The trial's optimizer state was cleared (`optimizer_reset`): nothing stacked to clear."""

    # -- evaluation ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def evaluated(self, k: int) -> Iterator[nn.Module]:
        """The model holding the trial's evaluated weights: model and optimizer in evaluation
        mode, other weights swapped in, batch-norm statistics recomputed with them when they
        need it."""
        set_training(self.model, self.ledger.optimizer, False)
        with self.ledger.weights:
            if self.recalibrate:
                batches = self.task.recalibration_batches(self.data, self.ledger.bn_generator)
                with torch.no_grad(), self.autocast:
                    update_bn(batches, self.model)
            yield self.model

    def trained_state(self, k: int) -> dict[str, torch.Tensor]:
        return state_copy(self.model)

    def with_state(self, state: dict[str, torch.Tensor]) -> nn.Module:
        """The model holding `state` (evaluated weights) for a final measurement: the optimizer
        goes to its evaluation mode first, so switching modes cannot move the loaded weights."""
        set_training(self.model, self.ledger.optimizer, False)
        self.model.load_state_dict(state)
        return self.model

    def keep(self, survivors: list[int]) -> None:
        self.active = [self.active[k] for k in survivors]


class FoldedNet(nn.Module):
    """Folded conv nets (`lrbench.stacking.fold_models`) seen as a population form: members'
    batches (K, B, C, H, W) in, members' outputs (K, B, ...) out."""

    def __init__(self, folded: nn.Module) -> None:
        super().__init__()
        self.folded = folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[0]
        z = fold_input(x)
        if z.is_cuda:
            z = z.contiguous(memory_format=torch.channels_last)
        return unfold_output(self.folded(z), k)


def population_model(task: Task, models: list[nn.Module]) -> nn.Module:
    """K prepared copies of the task's model as one module, in the task's population form."""
    if task.population_form == "stacked":
        return stack_models(models)
    if task.population_form == "folded":
        return FoldedNet(fold_models(models))
    raise ConfigError(f"task {task.name!r} does not batch into populations")


class StackedForm:
    """K trials as one stacked (or folded) module."""

    def __init__(
        self,
        task: Task,
        configs: list[TrainConfig],
        options: list[TrainOptions],
        device: torch.device,
        data: TaskData,
        stacked_step: bool,
    ) -> None:
        self.task, self.device, self.data = task, device, data
        models, noise = [], []
        for config, opts in zip(configs, options):
            model = fresh_model(task, config.seed, device)
            if opts.initial_state is not None:
                model.load_state_dict(opts.initial_state)
            models.append(model)
            generator = torch.Generator(device=device)
            generator.set_state(_default_generator(device).get_state())
            noise.append(generator)
        self.template = models[0]  # a plain model: members are evaluated on it
        self.model = population_model(task, models)
        # Member views carry the lone model's names (a folded form may nest the modules).
        self.names = [name for name, _ in self.template.named_parameters()]
        self.buffer_names = [name for name, _ in self.template.named_buffers()]
        spe = data.steps_per_epoch
        self.ledgers = [
            TrialLedger(task, c, o, device, spe, g) for c, o, g in zip(configs, options, noise)
        ]
        self.active = list(self.ledgers)
        self.params: list[list[torch.Tensor]] = []
        self.buffers: list[list[torch.Tensor]] = []
        self._bind()
        for ledger, params in zip(self.active, self.params):
            ledger.build(params)
        optimizers = [m.optimizer for m in self.ledgers]
        # The stacked step keeps its own state: members whose optimizer state is loaded or
        # returned step with their own optimizers.
        own_state = any(
            o.initial_optimizer_state is not None or o.keep_final_state for o in options
        )
        self.fast = (
            StackedStep.build(optimizers)
            if stacked_step and _same_resets(configs) and not own_state
            else None
        )
        for m in self.ledgers:
            m.stepped_together = self.fast is not None
        self._noise_free: bool | None = None  # known after the first step
        self.autocast = task.autocast(device)

    # -- the stacked parameters and the members' views of them ---------------------------------
    def _bind(self) -> None:
        """(Re)point every active member's parameter, gradient and buffer views at its slice.

        A member's views carry what its optimizer reads off a lone model's parameters: a
        gradient only where the parameter trains, and its rate multiplier (`lr_scale`)."""
        params = list(self.model.parameters())
        buffers = list(self.model.buffers())
        if len(params) != len(self.names) or len(buffers) != len(self.buffer_names):
            raise ConfigError(f"task {self.task.name!r}: its population form lost tensors")
        for p in params:
            p.grad = torch.zeros_like(p) if p.requires_grad else None
        old = self.params
        self.params, self.buffers = [], []
        for k, ledger in enumerate(self.active):
            views = []
            for p in params:
                view = p.detach()[k]
                if p.grad is not None:
                    view.grad = p.grad[k]
                if hasattr(p, "lr_scale"):
                    cast("LrScaled", view).lr_scale = p.lr_scale
                views.append(view)
            self.params.append(views)
            self.buffers.append([b[k] for b in buffers])
            if old:
                ledger.rebind(old[k], views)

    def keep(self, survivors: list[int]) -> None:
        """Keep only the members at positions `survivors` (the rest stopped)."""
        keep = torch.tensor(survivors, device=self.device, dtype=torch.long)
        keep_members(self.model, keep)
        if self.fast is not None:
            self.fast.keep(keep)
        self.active = [self.active[k] for k in survivors]
        self.params = [self.params[k] for k in survivors]
        if self.active:
            self._bind()

    # -- training ------------------------------------------------------------------------------
    def train_mode(self) -> None:
        self.model.train()

    def batches(self) -> Iterator[Any]:
        return self.task.population_batches(self.data, [m.data_generator for m in self.active])

    def _noise(self, batch: Any) -> Any:
        """Each member's loss noise, drawn from its own generator as a lone trial draws it from
        the global one, stacked; None for a task whose loss draws none."""
        if self._noise_free:
            return None
        draws = [
            self.task.loss_noise(_member_batch(batch, k), m.noise_generator)
            for k, m in enumerate(self.active)
        ]
        self._noise_free = draws[0] is None
        # A task draws noise for every member or for none (the first says which).
        return None if self._noise_free else torch.stack(cast("list[torch.Tensor]", draws))

    def step(self, batch: Any, stepping: list[int]) -> torch.Tensor:
        """One optimizer step of the members at positions `stepping` (all, unless some reached
        their budget): the stacked forward and backward, then each member's own step (or one
        stacked step for all); the members' losses, shape (K,)."""
        with self.autocast:
            losses = self.task.example_losses(self.model, batch, self._noise(batch)).mean(-1)
        for p in self.model.parameters():
            if p.grad is not None:
                p.grad.zero_()
        losses.sum().backward()
        if self.fast is not None:
            self._stacked_step(stepping)
        for i in stepping:
            self.active[i].step()
        return losses

    def _stacked_step(self, stepping: list[int]) -> None:
        """All members' update at once; members at their budget are put back as they were."""
        params = list(self.model.parameters())
        held = [i for i in range(len(self.active)) if i not in stepping]
        saved = [p.detach()[held].clone() for p in params] if held else []
        assert self.fast is not None
        self.fast.step(params, [m.optimizer.param_groups[0] for m in self.active])
        with torch.no_grad():
            for p, s in zip(params, saved):
                p[held] = s

    def reset_optimizers(self) -> None:
        """The members' optimizer state was cleared (`optimizer_reset`): so is the stacked one."""
        if self.fast is not None:
            self.fast.reset()

    # -- evaluation on the plain template model ------------------------------------------------
    def _state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's parameters and buffers by the lone model's names (views, not copies)."""
        return {
            **dict(zip(self.names, self.params[k])),
            **dict(zip(self.buffer_names, self.buffers[k])),
        }

    @contextlib.contextmanager
    def evaluated(self, k: int) -> Iterator[nn.Module]:
        yield self.with_state(self._state(k))

    def trained_state(self, k: int) -> dict[str, torch.Tensor]:
        return {n: t.detach().clone() for n, t in self._state(k).items()}

    def with_state(self, state: dict[str, torch.Tensor]) -> nn.Module:
        """The template model holding `state`, in evaluation mode."""
        self.template.load_state_dict(state)
        self.template.eval()
        return self.template


class Form(Protocol):
    """What the loop asks of a form (`LoneForm`, `StackedForm`): the trials it trains, their
    batches and step, and each trial's evaluated model. Member index `k` counts the active
    trials, so it changes when `keep` drops the stopped ones."""

    active: list[TrialLedger]  # the trials still training, in member order

    def train_mode(self) -> None: ...

    def batches(self) -> Iterator[Any]: ...

    def step(self, batch: Any, stepping: list[int]) -> torch.Tensor:
        """One optimizer step of the members in `stepping`; every active member's loss."""
        ...

    def reset_optimizers(self) -> None:
        """The trials' optimizer states were cleared (`optimizer_reset`)."""
        ...

    def evaluated(self, k: int) -> contextlib.AbstractContextManager[nn.Module]:
        """Member k's model with its evaluated weights, in evaluation mode, while in use."""
        ...

    def trained_state(self, k: int) -> dict[str, torch.Tensor]: ...

    def with_state(self, state: dict[str, torch.Tensor]) -> nn.Module:
        """A model holding `state`, in evaluation mode, for a final measurement."""
        ...

    def keep(self, survivors: list[int]) -> None:
        """Drop every member not in `survivors` (active indices)."""
        ...


def _member_batch(batch: Any, k: int) -> Any:
    """Member k's part of a stacked batch (tensors indexed on their member dimension)."""
    if isinstance(batch, torch.Tensor):
        return batch[k]
    if isinstance(batch, (tuple, list)):
        return type(batch)(_member_batch(b, k) for b in batch)
    return batch


def _same_resets(configs: list[TrainConfig]) -> bool:
    """A stacked step keeps one state for all members: they must reset it together."""
    return len({c.optimizer_reset for c in configs}) == 1


def _default_generator(device: torch.device) -> torch.Generator:
    """The generator `torch.randn(..., device=device)` draws from when given none."""
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index or torch.cuda.current_device()]
    return torch.default_generator


__all__ = ["Form", "LoneForm", "StackedForm", "can_stack", "population_model"]
