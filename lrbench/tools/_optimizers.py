"""Optimizers by name: thin aliases over `torch.optim` and the self-tuning optimizers'
packages, so configs and the CLI can name them.

The self-tuning ones: Schedule-Free AdamW / SGD (`schedulefree`), whose evaluation weights
differ from the trained ones, so they must be told train / eval (the engine does, see
`lrbench.training._engine.optimizer_has_modes`); Prodigy (`prodigyopt`) and D-Adaptation Adam / SGD
(`dadaptation`), and DoG / layer-wise LDoG (`dog-optimizer`), which estimate their step size
themselves: their `lr` multiplies that estimate, and their authors recommend 1. DoG's authors
also ask for iterate averaging, which is not the optimizer's but the trial's evaluation
weights (`lrbench.strategies.dog`).

Two additions a model can ask for without the training loop knowing:

- **Per-parameter rate multipliers.** A parameter carrying an attribute `lr_scale` (set by the
  model, e.g. `bn.bias.lr_scale = 64.0`) is put in a parameter group of its own whose learning
  rate is `lr * lr_scale` and whose weight decay is divided by the same factor, so the scale
  speeds the gradient step only and the per-step decay `lr * weight_decay` stays that of the
  other parameters. Schedulers scale every group's rate by the same factor, so the ratio holds.
  Group 0 always holds the unscaled parameters: its rate is the trial's nominal rate.
- **Lookahead** (Zhang et al., 2019), as a step hook on the ordinary torch optimizer
  (`lookahead_k=K` among the optimizer's options): every K steps the slow weights move towards
  the fast ones and the fast weights restart from them. See `Lookahead` for the averaging
  strength, which follows the learning-rate schedule's annealing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import dadaptation
import dog
import prodigyopt
import schedulefree
import torch

from lrbench.errors import ConfigError


class LrScaled(Protocol):
    """A parameter (or a view of one) carrying its rate multiplier `lr_scale` (module docstring):
    for typing where a model sets the attribute, which torch's Parameter does not declare."""

    lr_scale: float


# name -> (torch.optim class, default keyword arguments)
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {}),
    "adadelta": (torch.optim.Adadelta, {}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "schedulefree_adamw": (schedulefree.AdamWScheduleFree, {}),
    "schedulefree_sgd": (schedulefree.SGDScheduleFree, {}),
    "prodigy": (prodigyopt.Prodigy, {}),
    "dadapt_adam": (dadaptation.DAdaptAdam, {}),
    "dadapt_sgd": (dadaptation.DAdaptSGD, {}),
    "dog": (dog.DoG, {}),
    "ldog": (dog.LDoG, {}),
}

# The optimizers whose steps are SGD's (the rest scale steps per coordinate, as Adam does);
# DoG's step size is one number per parameter group, LDoG's one per tensor.
SGD_FAMILY = frozenset(
    {"sgd", "momentum", "nesterov", "schedulefree_sgd", "dadapt_sgd", "dog", "ldog"}
)


def is_sgd_family(name: str) -> bool:
    """Whether optimizer `name` takes SGD's steps; a self-tuning strategy picks its SGD variant
    for such tasks and its Adam variant otherwise."""
    return name in SGD_FAMILY


def build_optimizer(
    name: str, params: Iterable, lr: float, **kwargs: Any
) -> torch.optim.Optimizer:
    """Return `torch.optim.<cls>(params, lr=lr, **defaults, **kwargs)` for the optimizer called `name`.

    Parameters with an `lr_scale` attribute get their own group (module docstring);
    `lookahead_k` and `lookahead_decay` attach a `Lookahead` hook and are not passed to torch.
    """
    try:
        cls, defaults = OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}"
        ) from None
    if not (lr > 0):
        raise ConfigError(f"learning rate must be positive, got {lr!r}")
    options = {**defaults, **kwargs}
    k = int(options.pop("lookahead_k", 0))
    decay = float(options.pop("lookahead_decay", Lookahead.default_decay))
    if k < 0 or not 0 <= decay < 1:
        raise ConfigError(
            f"optimizer {name!r}: need lookahead_k >= 0 and 0 <= lookahead_decay < 1,"
            f" got {k} and {decay}"
        )
    groups = scaled_groups(params, lr, options.get("weight_decay"))
    if cls in FUSED and not {"fused", "foreach", "capturable", "differentiable"} & set(options):
        if _fusable(groups):
            options["fused"] = True
    # Every class here takes `lr=` (the base class's own __init__, (params, defaults), does not).
    make: Callable[..., torch.optim.Optimizer] = cls
    try:
        opt = make(groups, lr=lr, **options)
    except TypeError as e:  # an option the class does not take
        raise ConfigError(f"optimizer {name!r}: {e}") from None
    if k:
        Lookahead(opt, k, decay)  # attaches itself to the optimizer's step hooks
    return opt


# Torch optimizers with a fused implementation on the CPU and CUDA: one kernel per parameter
# for the whole update instead of a dozen elementwise ops (measured on the homework VAE, one CPU
# thread: Adam's epoch 0.79 -> 0.46 s, the same losses). Torch defaults to the per-tensor
# loop on the CPU; lrbench asks for the fused one unless an option says otherwise.
FUSED = frozenset({torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD})


def _fusable(groups: list) -> bool:
    """Whether every parameter is a floating tensor on a CPU or CUDA device (what torch's fused
    implementations take)."""
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    return bool(tensors) and all(
        isinstance(p, torch.Tensor) and p.is_floating_point() and p.device.type in ("cpu", "cuda")
        for p in tensors
    )


def scaled_groups(params: Iterable, lr: float, weight_decay: float | None) -> list:
    """`params` split into parameter groups by their `lr_scale` attribute (1 when absent).

    Already-formed groups (dicts) and plain parameters without scales pass through unchanged.
    """
    params = list(params)
    if not params or isinstance(params[0], dict):
        return params
    by_scale: dict[float, list[torch.Tensor]] = {}
    for p in params:
        by_scale.setdefault(float(getattr(p, "lr_scale", 1.0)), []).append(p)
    if list(by_scale) == [1.0]:
        return params
    groups: list[dict[str, Any]] = [{"params": by_scale.pop(1.0, [])}]
    for scale, ps in by_scale.items():
        if not scale > 0:
            raise ConfigError(f"lr_scale must be positive, got {scale}")
        group: dict[str, Any] = {"params": ps, "lr": lr * scale}
        if weight_decay:
            group["weight_decay"] = weight_decay / scale
        groups.append(group)
    return groups


class Lookahead:
    """Lookahead as hooks on a torch optimizer's step: every `k` steps, for each trained parameter,
    `slow <- slow + (1 - d) * (fast - slow)` and then `fast <- slow`.

    The decay `d` is `decay * (1 - lr / peak_lr) ** 3`, with `peak_lr` the group's highest rate
    so far: no averaging while the rate climbs or holds (so a constant-rate trial trains as
    plain SGD and is not annealed behind its back), and averaging that strengthens as the
    schedule anneals, up to `decay` when the rate reaches zero. The cubic ramp and the default
    `0.95 ** 5` (an exponential moving average with a 20-step horizon, updated every 5 steps)
    are those Keller Jordan's airbench uses over training progress; here progress is read off
    the rate so the optimizer needs no knowledge of the trial's length.
    """

    default_decay = 0.95**5

    def __init__(self, optimizer: torch.optim.Optimizer, k: int, decay: float) -> None:
        self.k, self.decay, self.steps = k, decay, 0
        self.peak = [0.0] * len(optimizer.param_groups)
        # Per group, the positions of the trained parameters (those with a gradient at the
        # first step: frozen ones never move) and their slow copies, taken just before that
        # step, so weights loaded after the optimizer was built are the ones averaged. The fast
        # weights are read from the groups at every sync: a population may re-point a member's
        # groups at new tensors (`lrbench.training._member.Member.rebind`).
        self.trained: list[list[int]] | None = None
        self.slow: list[list[torch.Tensor]] = []
        optimizer.lookahead = self  # type: ignore[attr-defined]  # tells a stacked population step to leave this one alone
        optimizer.register_step_pre_hook(self._start)
        optimizer.register_step_post_hook(self._after_step)

    def _start(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        if self.trained is None:
            groups = optimizer.param_groups
            self.trained = [
                [j for j, p in enumerate(g["params"]) if p.grad is not None] for g in groups
            ]
            self.slow = [
                [g["params"][j].detach().clone() for j in idx]
                for g, idx in zip(groups, self.trained)
            ]

    def _after_step(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        self.steps += 1
        for i, group in enumerate(optimizer.param_groups):
            self.peak[i] = max(self.peak[i], float(group["lr"]))
        if self.steps % self.k:
            return
        with torch.no_grad():
            for i, group in enumerate(optimizer.param_groups):
                peak = self.peak[i]
                d = self.decay * (1.0 - float(group["lr"]) / peak) ** 3 if peak > 0 else 0.0
                fast_weights = [group["params"][j] for j in self.trained[i]]  # type: ignore[index]
                for fast, slow in zip(fast_weights, self.slow[i]):
                    if d > 0:
                        slow.lerp_(fast, 1.0 - d)
                        fast.copy_(slow)
                    else:
                        slow.copy_(fast)
