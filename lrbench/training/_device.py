"""The training device by name."""

from __future__ import annotations

import torch

from lrbench.errors import ConfigError


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
