"""The `cifar10` task's networks: an airbench94-shaped VGG-like net, and Page's ResNet-9.

`AirNet` follows the shape Keller Jordan published for airbench94 (written here from the
description, not copied): a frozen 2x2 convolution whose filters whiten image patches, GELU,
then three groups of [3x3 conv, 2x2 max pool, batch norm, GELU, 3x3 conv, batch norm, GELU]
(widths 64/256/256 at `width=64`), a global max pool and a bias-free linear head whose output
is scaled by 1/9. Batch norm scales are frozen at 1; their biases carry `lr_scale` (64 by
default), which `lrbench.tools._optimizers.build_optimizer` turns into a parameter group of its own.
Each 3x3 convolution starts from the identity on its first input-many filters.

The whitening filters need image statistics, which a model builder does not see: the layer
fits itself to the first training batch it is given (about half a million 2x2 patches at the
default batch size) and remembers that it did in its state, so loading a state never refits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from lrbench.stacking import FoldedConv2d, stacked_weight_and_bias

if TYPE_CHECKING:
    from lrbench.tools._optimizers import LrScaled

    # The mixin below goes before a Module class in its layers' bases; for mypy it is one.
    _LayerBase = nn.Module
else:
    _LayerBase = object

WHITEN_EPS = 5e-4


def patches(x: torch.Tensor, size: int) -> torch.Tensor:
    """Every `size` x `size` patch of a batch (stride 1), one row each, flattened in the
    (channel, row, column) order of a convolution filter: (N * H' * W', C * size * size)."""
    n, c = x.shape[:2]
    p = x.unfold(2, size, 1).unfold(3, size, 1)  # (N, C, H', W', size, size)
    return p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * size * size)


def whitening_filters(x: torch.Tensor, size: int = 2, eps: float = WHITEN_EPS) -> torch.Tensor:
    """Convolution filters that whiten the `size` x `size` patches of the images `x`.

    With Σ the patches' second-moment matrix (the data are normalised, so it is close to their
    covariance) and Σ = V Λ Vᵀ, filter i is v_i / sqrt(λ_i + eps), largest eigenvalue first;
    the negated filters follow, so a GELU after the layer passes both signs of each component.
    Returns (2 * C * size², C, size, size) float32 filters.
    """
    c = x.shape[1]
    p = patches(x.float(), size)
    cov = p.T @ p / len(p)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    w = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).flip(0)
    w = w.reshape(-1, c, size, size)
    return torch.cat([w, -w])


class _FitsOnFirstTrainingBatch(_LayerBase):
    """A layer that fits itself (`_fit_to`) to the first batch it sees in training mode, once,
    and keeps a `fitted` flag in its state (and a host-side copy, so forward never reads the
    device)."""

    fitted: torch.Tensor  # a buffer, registered by each layer
    _fitted: bool

    def _fit_to(self, x: torch.Tensor) -> None:
        raise NotImplementedError  # each layer fits its own way

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self._fitted:
            self.fit(x)
        return super().forward(x)

    @torch.compiler.disable
    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        with torch.autocast(x.device.type, enabled=False):
            self._fit_to(x)
        self.fitted.fill_(True)
        self._fitted = True


class Whiten(_FitsOnFirstTrainingBatch, nn.Conv2d):
    """A frozen patch-whitening convolution (no padding) with a trainable bias, fitted to the
    first batch it sees in training mode (`fit` can also be called directly)."""

    def __init__(self, in_channels: int = 3, size: int = 2, eps: float = WHITEN_EPS) -> None:
        super().__init__(in_channels, 2 * in_channels * size * size, size, bias=True)
        self.eps = eps
        self.weight.requires_grad_(False)
        assert self.bias is not None  # made with bias=True
        nn.init.zeros_(self.bias)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self._fitted = False

    def _fit_to(self, x: torch.Tensor) -> None:
        self.weight.copy_(whitening_filters(x, self.kernel_size[0], self.eps))

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._fitted = bool(self.fitted)

    @classmethod
    def fold(cls, copies: list[Whiten]) -> FoldedWhiten:
        """K copies as one layer of a folded population (`lrbench.stacking._folded`)."""
        return FoldedWhiten(copies)


class FoldedWhiten(_FitsOnFirstTrainingBatch, FoldedConv2d):
    """K `Whiten` layers on folded channels: each member fits its filters to its own first
    training batch, as a lone layer does."""

    def __init__(self, copies: list[Whiten]) -> None:
        first = copies[0]
        super().__init__(first, *stacked_weight_and_bias(copies))
        self.size, self.eps = first.kernel_size[0], first.eps
        self.register_buffer("fitted", torch.stack([c.fitted for c in copies]))
        self._fitted = bool(self.fitted.all())

    def _fit_to(self, x: torch.Tensor) -> None:
        c = x.shape[1] // self.weight.shape[0]
        for i in (~self.fitted).nonzero().flatten().tolist():
            member = x[:, i * c : (i + 1) * c]
            self.weight[i].copy_(whitening_filters(member, self.size, self.eps))


def batch_norm(channels: int, bias_lr_scale: float, momentum: float = 0.4) -> nn.BatchNorm2d:
    """Batch norm with its scale frozen at 1 and a bias learning `bias_lr_scale` times faster.

    `momentum=0.4` (torch's convention: the weight of the newest batch) keeps the running
    statistics close to the fast-moving weights of a short, high-rate run."""
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=momentum)
    bn.weight.requires_grad_(False)
    cast("LrScaled", bn.bias).lr_scale = bias_lr_scale
    return bn


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """A bias-free 3x3 convolution whose first min(cin, cout) filters start as the identity."""
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:cin])
    return conv


class ConvGroup(nn.Sequential):
    def __init__(self, cin: int, cout: int, bias_lr_scale: float) -> None:
        super().__init__(
            conv3x3(cin, cout),
            nn.MaxPool2d(2),
            batch_norm(cout, bias_lr_scale),
            nn.GELU(),
            conv3x3(cout, cout),
            batch_norm(cout, bias_lr_scale),
            nn.GELU(),
        )


class AirNet(nn.Module):
    """The airbench94-shaped net; `width` is the first group's width (the others are 4x)."""

    def __init__(
        self,
        width: int = 64,
        num_classes: int = 10,
        bias_lr_scale: float = 64.0,
        output_scale: float = 1 / 9,
    ) -> None:
        super().__init__()
        widths = (width, 4 * width, 4 * width)
        self.whiten = Whiten(3)
        self.act = nn.GELU()
        groups, cin = [], self.whiten.out_channels
        for w in widths:
            groups.append(ConvGroup(cin, w, bias_lr_scale))
            cin = w
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.output_scale = output_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(self.act(self.whiten(x)))
        return self.head(self.pool(x).flatten(1)) * self.output_scale


# -- ResNet-9 (Page's DAWNBench entry) ------------------------------------------------------------


def _conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c, c), _conv_bn(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    def __init__(self, width: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        w1, w2, w3, w4 = width, 2 * width, 4 * width, 8 * width
        self.net = nn.Sequential(
            _conv_bn(3, w1),
            _conv_bn(w1, w2, pool=True),
            Residual(w2),
            _conv_bn(w2, w3, pool=True),
            _conv_bn(w3, w4, pool=True),
            Residual(w4),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(w4, num_classes, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * 0.125  # Page's output scaling keeps early logits small
