"""K copies of one convolutional net as one grouped net: the members folded into the channels.

`fold_models(models)` turns K independently initialised copies of a conv net into one module
with the same structure and the same parameter and buffer names, every tensor stacked to shape
(K, ...). Activations are laid out (B, K * C, H, W): member k owns channels [k*C, (k+1)*C) of
every feature map. Then

- a convolution is one grouped convolution (`groups` times K), each member's filters seeing
  only its own channels;
- batch norm over K * C channels normalises each member's channels over its own batch, and
  keeps each member's running statistics: its statistics are per channel, so a member's are
  exactly a lone net's (in float rounding);
- activations, pooling, residual sums and flattening need no change, so the net's own
  `forward` runs on the folded batch;
- a linear layer reads its input (B, K * in) as K members' (B, in) and writes (B, K * out).

Member k's numbers equal a lone net's up to float rounding (grouped and plain convolutions sum
in different orders). A module with parameters or buffers of another kind is refused; modules
without state (activations, pooling, containers, a residual sum) are trusted to treat channels
alike, which is what such modules do.
`lrbench.stacking._stacked` is the layout for nets of linear layers, (K, B, features).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from lrbench.errors import ConfigError
from lrbench.stacking._stacked import (
    replace_module,
    stacked_linear,
    stacked_parameter,
    stacked_weight_and_bias,
)


def fold_input(x: torch.Tensor) -> torch.Tensor:
    """Members' batches (K, B, C, H, W) as one folded batch (B, K * C, H, W)."""
    k, b = x.shape[:2]
    return x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])


def unfold_output(y: torch.Tensor, k: int) -> torch.Tensor:
    """A folded output (B, K * out) as the members' outputs (K, B, out)."""
    return y.reshape(y.shape[0], k, -1).transpose(0, 1)


class FoldedConv2d(nn.Module):
    """K `nn.Conv2d`: `weight` (K, out, in / groups, kh, kw), `bias` (K, out)."""

    def __init__(self, conv: nn.Conv2d, weight: nn.Parameter, bias: nn.Parameter | None) -> None:
        super().__init__()
        if conv.padding_mode != "zeros":
            raise ConfigError(f"population training: padding_mode {conv.padding_mode!r}")
        self.weight, self.bias = weight, bias
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.groups = conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[0]
        bias = None if self.bias is None else self.bias.flatten()
        return F.conv2d(
            x, self.weight.flatten(0, 1), bias, self.stride, self.padding, self.dilation,
            self.groups * k,
        )  # fmt: skip


class FoldedBatchNorm2d(nn.Module):
    """K `nn.BatchNorm2d` (affine, tracking running statistics): parameters and running
    statistics (K, C), the count of batches (K,)."""

    # Buffers (registered in __init__): declared so that they read as tensors, not as modules.
    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(self, bn: nn.BatchNorm2d, copies: Sequence[nn.BatchNorm2d]) -> None:
        super().__init__()
        if not (bn.affine and bn.track_running_stats):
            raise ConfigError(
                "population training: batch norm must be affine and track statistics"
            )
        self.eps, self.momentum = bn.eps, bn.momentum
        self.weight = stacked_parameter([c.weight for c in copies])
        self.bias = stacked_parameter([c.bias for c in copies])
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, torch.stack([getattr(c, name).detach() for c in copies]))
        # A host-side copy of the members' common batch count, so a step never reads the device.
        tracked = copies[0].num_batches_tracked
        assert tracked is not None  # it tracks running statistics (checked above)
        self._batches = int(tracked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training:
            self.num_batches_tracked.add_(1)
            self._batches += 1
            if self.momentum is None:  # a cumulative average, as torch's batch norm keeps it
                factor = 1.0 / self._batches
        return F.batch_norm(
            x, self.running_mean.view(-1), self.running_var.view(-1), self.weight.flatten(),
            self.bias.flatten(), self.training, factor, self.eps,
        )  # fmt: skip


class FoldedLinear(nn.Module):
    """K `nn.Linear`: input (B, K * in), output (B, K * out); one batched product."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None) -> None:
        super().__init__()
        self.weight, self.bias = weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[0]
        per_member = x.reshape(x.shape[0], k, -1).transpose(0, 1)  # (K, B, in)
        y = stacked_linear(per_member, self.weight, self.bias)  # (K, B, out)
        return y.transpose(0, 1).reshape(x.shape[0], -1)


def fold_models(models: list[nn.Module]) -> nn.Module:
    """One module computing `models` at once on folded batches (module docstring).

    A module type with a folded form of its own (e.g. a layer that fits itself to data) says so
    with a `fold(copies)` class method returning its folded replacement."""
    if not models:
        raise ValueError("fold_models needs at least one model")
    folded = copy.deepcopy(models[0])
    named = [dict(m.named_modules()) for m in models]
    done: list[str] = []
    for name, module in list(folded.named_modules()):
        if any(name.startswith(d + ".") for d in done):
            continue
        copies = [n[name] for n in named]
        new = _folded(module, copies)
        if new is not None:
            replace_module(folded, name, new)
            done.append(name)
        elif _has_state(module):
            raise ConfigError(
                f"population training does not support {type(module).__name__} ({name!r})"
            )
    return folded


def _folded(module: nn.Module, copies: list[nn.Module]) -> nn.Module | None:
    """The folded replacement of `module`, or None for a module kept as it is."""
    fold = getattr(type(module), "fold", None)  # a type's own folded form (docstring)
    if fold is not None:
        return fold(copies)
    # Below, every member's module at this name is of `module`'s type (copies of one model).
    if isinstance(module, nn.Conv2d):
        return FoldedConv2d(module, *stacked_weight_and_bias(cast("list[nn.Conv2d]", copies)))
    if isinstance(module, nn.BatchNorm2d):
        return FoldedBatchNorm2d(module, cast("list[nn.BatchNorm2d]", copies))
    if isinstance(module, nn.Linear):
        return FoldedLinear(*stacked_weight_and_bias(cast("list[nn.Linear]", copies)))
    return None


def _has_state(module: nn.Module) -> bool:
    own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
    return bool(own)
