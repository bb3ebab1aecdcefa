"""Image augmentation for whole batches on the device, and test-time augmentation.

Everything here works on (N, C, H, W) batches with per-image random choices drawn at once from
a torch generator on the batch's device: no per-sample Python, no host synchronisation.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn


def flip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The images of `x` mirrored left-right where the boolean `mask` (N,) is true."""
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def translate(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int) -> torch.Tensor:
    """Each image shifted by its own (dy, dx), integers in [-pad, pad], reflecting at the
    borders: output pixel (i, j) is the input's (i - dy, j - dx), mirrored back inside."""
    if pad == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = (pad - dy)[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = (pad - dx)[:, None] + torch.arange(w, device=x.device)  # (N, W)
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


class AlternatingFlips:
    """airbench's alternating flip: in a trial's first epoch each training image is mirrored
    with probability ½; in every later epoch exactly the images not mirrored in the epoch
    before are. Over any two consecutive epochs each image is seen once each way.

    The state of a trial (its images' first-epoch coin flips and its epoch count) is keyed by
    the trial's data-order generator, which the training loop creates once per trial; it is
    dropped when the generator is."""

    def __init__(self) -> None:
        self._trials: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def epoch_mask(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """The boolean mask (n,) of the images to mirror in this trial's next epoch."""
        state = self._trials.get(generator)
        if state is None or len(state[0]) != n:
            coins = torch.rand(n, device=device, generator=generator) < 0.5
            state = self._trials[generator] = [coins, 0]
        coins, epoch = state
        state[1] = epoch + 1
        return coins if epoch % 2 == 0 else ~coins


def tta_views(x: torch.Tensor, level: int) -> list[torch.Tensor]:
    """The test-time views of a batch: level 0 the images; 1 adds their mirror images; 2 adds
    both of those shifted by one pixel up-left and down-right (six views)."""
    views = [x]
    if level >= 1:
        views.append(x.flip(3))
    if level >= 2:
        n = len(x)
        for s in (-1, 1):
            shift = torch.full((n,), s, device=x.device)
            moved = translate(x, shift, shift, 1)
            views += [moved, moved.flip(3)]
    return views


def tta_logits(model: nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
    """The mean of the model's logits over the views of `tta_views(x, level)`."""
    views = tta_views(x, level)
    total = model(views[0]).float()
    for v in views[1:]:
        total = total + model(v).float()
    return total / len(views)
