"""One optimizer step for a whole population: Adam, AdamW and SGD (momentum, Nesterov) on the
stacked parameters, with each member's own learning rate (and momentum or betas).

The members' own torch optimizers stay the source of their hyperparameters (their schedules
change `lr`, and `momentum` or `betas` when they cycle it); this step reads them every step and
updates all members with a few large operations instead of a few small ones per member and
parameter. It follows torch's single-tensor arithmetic, but a per-member rate is a tensor
factor where torch uses a scalar (and a fused multiply-add where torch's kernel has one), so
members agree with lone trials to float rounding, not bit for bit. Where launching kernels is
the cost (a GPU, or a small model on a CPU) it is much faster; `build` returns None for what it
does not cover (another optimizer, amsgrad, maximize, several parameter groups, Lookahead ...),
and the population then steps each member's own optimizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

_SUPPORTED = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)
# `fused` is not among them: the stacked step does the update itself, for every member at once.
_UNSUPPORTED_FLAGS = ("amsgrad", "maximize", "capturable", "differentiable")
_SHARED = {
    "adam": ("eps", "weight_decay", "decoupled_weight_decay"),
    "sgd": ("dampening", "nesterov", "weight_decay"),
}


class StackedStep:
    """The stacked update of every member's parameters, state stacked like the parameters."""

    def __init__(self, kind: str, shared: dict[str, Any]) -> None:
        self.kind, self.shared = kind, shared
        self.state: dict[int, dict[str, torch.Tensor]] = {}
        self.steps = 0
        self._cache: dict[tuple, torch.Tensor] = {}

    @classmethod
    def build(cls, optimizers: list[torch.optim.Optimizer]) -> StackedStep | None:
        """A stacked step equivalent to stepping `optimizers` (one per member), or None."""
        types = {type(o) for o in optimizers}
        if len(types) != 1 or types.pop() not in _SUPPORTED:
            return None
        # Parameter groups of their own (rate multipliers) and step hooks (Lookahead) are the
        # members' own optimizers' business.
        if any(len(o.param_groups) != 1 or hasattr(o, "lookahead") for o in optimizers):
            return None
        groups = [o.param_groups[0] for o in optimizers]
        if any(g.get(flag) for g in groups for flag in _UNSUPPORTED_FLAGS):
            return None
        kind = "sgd" if isinstance(optimizers[0], torch.optim.SGD) else "adam"
        shared = {key: groups[0].get(key) for key in _SHARED[kind]}
        if any(g.get(key) != value for g in groups for key, value in shared.items()):
            return None
        return cls(kind, shared)

    def keep(self, keep: torch.Tensor) -> None:
        """Keep the state of the members at indices `keep` (the population was compacted)."""
        for state in self.state.values():
            for name, t in state.items():
                state[name] = t.index_select(0, keep)
        self._cache.clear()

    def reset(self) -> None:
        """Start afresh, as newly built members' optimizers would (state and step count gone)."""
        self.state.clear()
        self.steps = 0

    @torch.no_grad()
    def step(self, params: Sequence[torch.Tensor], groups: list[dict[str, Any]]) -> None:
        """One step of every member: `params` stacked (K, ...), `groups` the members' param
        groups, in member order."""
        self.steps += 1
        for i, p in enumerate(params):
            if p.grad is None:  # frozen
                continue
            state = self.state.setdefault(i, {})
            if self.kind == "adam":
                self._adam(p, p.grad, state, groups)
            else:
                self._sgd(p, p.grad, state, groups)

    def _per_member(self, values: list[float], like: torch.Tensor) -> float | torch.Tensor:
        """A hyperparameter: a plain number when all members share it, else a (K, 1, ...) tensor
        that broadcasts over each member's slice."""
        if all(v == values[0] for v in values):
            return values[0]
        key = (tuple(values), like.dim(), like.dtype, like.device)
        t = self._cache.get(key)
        if t is None:
            if len(self._cache) > 64:
                self._cache.clear()
            t = torch.tensor(values, dtype=like.dtype).view(-1, *[1] * (like.dim() - 1))
            t = self._cache[key] = t.to(like.device, non_blocking=True)
        return t

    def _adam(self, p, g, state, groups) -> None:
        lrs = [grp["lr"] for grp in groups]
        beta1s = [grp["betas"][0] for grp in groups]
        beta2s = [grp["betas"][1] for grp in groups]
        wd, eps = self.shared["weight_decay"], self.shared["eps"]
        if wd != 0:
            if self.shared["decoupled_weight_decay"]:
                p.mul_(self._per_member([1 - lr * wd for lr in lrs], p))
            else:
                g = g.add(p, alpha=wd)
        if not state:
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(g, self._per_member([1 - b for b in beta1s], p))
        beta2 = self._per_member(beta2s, p)
        if not torch.is_tensor(beta2):
            exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        else:
            exp_avg_sq.mul_(beta2).add_(self._per_member([1 - b for b in beta2s], p) * g * g)
        n = self.steps
        bc2_sqrt = self._per_member([(1 - b**n) ** 0.5 for b in beta2s], p)
        neg_step = self._per_member([-lr / (1 - b**n) for lr, b in zip(lrs, beta1s)], p)
        denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
        if not torch.is_tensor(neg_step):
            p.addcdiv_(exp_avg, denom, value=neg_step)
        else:
            p.add_(neg_step * exp_avg / denom)

    def _sgd(self, p, g, state, groups) -> None:
        lrs = [grp["lr"] for grp in groups]
        momenta = [grp["momentum"] for grp in groups]
        wd = self.shared["weight_decay"]
        if wd != 0:
            g = g.add(p, alpha=wd)
        if any(m != 0 for m in momenta):
            momentum = self._per_member(momenta, p)
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.detach().clone()
            else:
                buf.mul_(momentum).add_(g, alpha=1 - self.shared["dampening"])
            if self.shared["nesterov"]:
                g = (
                    g.add(buf * momentum)
                    if torch.is_tensor(momentum)
                    else g.add(buf, alpha=momentum)
                )
            else:
                g = buf
        neg_lr = self._per_member([-lr for lr in lrs], p)
        if not torch.is_tensor(neg_lr):
            p.add_(g, alpha=neg_lr)
        else:
            p.add_(neg_lr * g)
