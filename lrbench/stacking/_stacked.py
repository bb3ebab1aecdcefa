"""K copies of one model as one module whose parameters carry a leading member dimension.

`stack_models(models)` turns K independently initialised copies of a task's model into one
module with the same structure and the same parameter names, every parameter stacked to shape
(K, ...). Each `nn.Linear` becomes a `StackedLinear`, which maps inputs of shape (K, B, in) to
(K, B, out) with one batched matrix product (`torch.baddbmm`), so the model's own code (its
activations, its loss terms on the last dimension) runs on K members at once. Other modules
with parameters of their own keep their code with stacked parameters: the task's population
loss must know how to use them (e.g. the `functions` task's point). Models with buffers (batch
norm) are refused here: `lrbench.stacking._folded` is the form for convolutional nets with batch norm.

On a CPU with one thread, `baddbmm` over (K, B, in) and the backward's `bmm`s compute each
member's products with the same kernel and summation order as `nn.Linear` on (B, in) (the
backward is written out so that its products have `nn.Linear`'s layout), so a member's
arithmetic is bit-identical to a lone model's; with several threads `bmm` and `mm` may split
their sums differently (float rounding). `torch.func.vmap` over `functional_call` reorders
the products even on one thread.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from lrbench.errors import ConfigError

if TYPE_CHECKING:
    from lrbench.tools._optimizers import LrScaled


class _StackedLinearFn(torch.autograd.Function):
    """x (K, B, in) @ weight (K, out, in)^T + bias (K, out), with the backward products laid
    out as `nn.Linear`'s backward lays them out (grad_weight = grad^T @ x per member), so that
    each member's gradients are computed as a lone layer's are."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        wt = weight.transpose(1, 2)
        return torch.bmm(x, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), x, wt)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def stacked_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """x (K, B, in) through K linear layers, weight (K, out, in), bias (K, out): (K, B, out)."""
    return _StackedLinearFn.apply(x, weight, bias)


class StackedLinear(nn.Module):
    """K `nn.Linear` layers: `weight` (K, out, in), `bias` (K, out); input (K, ..., in)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        # Parameters stay as given (`stacked_parameter` keeps requires_grad and lr_scale).
        self.weight = weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight)
        self.bias = bias if bias is None or isinstance(bias, nn.Parameter) else nn.Parameter(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-1])  # (K, B, in): extra batch dims folded into B
        out = stacked_linear(flat, self.weight, self.bias)
        return out.reshape(*shape[:-1], out.shape[-1])


def stack_models(models: list[nn.Module]) -> nn.Module:
    """One module holding `models`' parameters stacked on a new leading dimension."""
    if not models:
        raise ValueError("stack_models needs at least one model")
    template = models[0]
    if any(True for _ in template.buffers()):
        raise ConfigError(
            f"population training does not support {type(template).__name__}: it has buffers"
        )
    if isinstance(template, nn.Linear):
        # The stacked copy of a Sequential template is a Sequential.
        return cast(nn.Sequential, stack_models([nn.Sequential(m) for m in models]))[0]
    stacked = copy.deepcopy(template)
    named = [dict(m.named_modules()) for m in models]
    for name, module in list(stacked.named_modules()):
        copies = [n[name] for n in named]
        if isinstance(module, nn.Linear):
            # Every member's module at this name is a Linear too (copies of one model).
            linears = cast("list[nn.Linear]", copies)
            replace_module(stacked, name, StackedLinear(*stacked_weight_and_bias(linears)))
            continue
        for pname, _ in list(module.named_parameters(recurse=False)):
            setattr(module, pname, stacked_parameter([getattr(c, pname) for c in copies]))
    return stacked


def stacked_parameter(params: Sequence[torch.Tensor]) -> nn.Parameter:
    """The members' copies of one parameter stacked on a new leading dimension, keeping what the
    optimizer reads off a parameter: whether it trains, and its rate multiplier (`lr_scale`)."""
    first = params[0]
    stacked = nn.Parameter(
        torch.stack([p.detach() for p in params]), requires_grad=first.requires_grad
    )
    if hasattr(first, "lr_scale"):
        cast("LrScaled", stacked).lr_scale = first.lr_scale
    return stacked


def stacked_weight_and_bias(
    copies: Sequence[nn.Linear | nn.Conv2d],
) -> tuple[nn.Parameter, nn.Parameter | None]:
    """The members' `weight` and `bias` (None where the layer has none), each stacked."""
    weight = stacked_parameter([c.weight for c in copies])
    if copies[0].bias is None:
        return weight, None
    # The members' layers are copies of one layer: all have a bias when the first has.
    return weight, stacked_parameter([cast(torch.Tensor, c.bias) for c in copies])


def replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def keep_members(stacked: nn.Module, keep: torch.Tensor) -> None:
    """Keep only the members at indices `keep` (compaction): every parameter and buffer
    re-stacked in place (the Parameter objects stay, their data and gradients are new tensors)."""
    with torch.no_grad():
        for p in stacked.parameters():
            p.data = p.data.index_select(0, keep)
            p.grad = None
        for module in stacked.modules():
            for name, b in list(module.named_buffers(recurse=False)):
                setattr(module, name, b.index_select(0, keep))
