"""Optimizers by name: thin aliases over `torch.optim`, so configs and the CLI can name them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
}


def build_optimizer(
    name: str, params: Iterable, lr: float, **kwargs: Any
) -> torch.optim.Optimizer:
    """Return `torch.optim.<cls>(params, lr=lr, **defaults, **kwargs)` for the optimizer called `name`."""
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
