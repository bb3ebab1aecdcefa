"""Optimizers by name: thin aliases over `torch.optim` and the self-tuning optimizers'
packages, so configs and the CLI can name them.

The self-tuning ones: Schedule-Free AdamW / SGD (`schedulefree`), whose evaluation weights
differ from the trained ones, so they must be told train / eval (the engine does, see
`lrbench.engine.optimizer_has_modes`); Prodigy (`prodigyopt`) and D-Adaptation Adam / SGD
(`dadaptation`), which estimate their step size themselves: their `lr` multiplies that
estimate, and their authors recommend 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dadaptation
import prodigyopt
import schedulefree
import torch

from lrbench.errors import ConfigError

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
}

# The optimizers whose steps are SGD's (the rest scale steps per coordinate, as Adam does).
SGD_FAMILY = frozenset({"sgd", "momentum", "nesterov", "schedulefree_sgd", "dadapt_sgd"})


def is_sgd_family(name: str) -> bool:
    """Whether optimizer `name` takes SGD's steps; a self-tuning strategy picks its SGD variant
    for such tasks and its Adam variant otherwise."""
    return name in SGD_FAMILY


def build_optimizer(
    name: str, params: Iterable, lr: float, **kwargs: Any
) -> torch.optim.Optimizer:
    """Return `<cls>(params, lr=lr, **defaults, **kwargs)` for the optimizer called `name`."""
    try:
        cls, defaults = OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}"
        ) from None
    if not (lr > 0):
        raise ConfigError(f"learning rate must be positive, got {lr!r}")
    try:
        return cls(params, lr=lr, **{**defaults, **kwargs})
    except TypeError as e:  # an option the class does not take
        raise ConfigError(f"optimizer {name!r}: {e}") from None
