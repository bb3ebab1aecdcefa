"""`cifar10`: CIFAR-10 in the airbench94 class (default), or Page's ResNet-9 (`arch=resnet9`).

The default recipe is built from the techniques Keller Jordan published for airbench94 (94.0%
in about 3.8 s on an A100): the net of `cifar10_net.AirNet` (patch-whitening first layer,
frozen batch-norm scales, batch-norm biases at 64x the rate), Nesterov SGD at momentum 0.85,
batch 1024, a linear warm-up over the first 23% of steps from 0.2x the peak and a linear decay
to 0.07x (torch's OneCycleLR with linear annealing), Lookahead every 5 steps
(`lrbench.tools._optimizers.Lookahead`), label smoothing 0.2, alternating flips and random 2-pixel
translation on the device, and six-view test-time augmentation (mirror and 1-pixel
translations; the metric is the accuracy of the mean logits). Its rates are those of the
reference converted to a mean (not summed) batch loss: peak 1.5 per 1024 images, weight decay
0.0153 / 11.5 (the reference's decay per rate), scaled linearly with `batch_size`.

On a GPU: bf16 autocast and channels_last (options `precision` and `memory_format`, "auto" by
default: on CUDA, not elsewhere; "bf16" / "float32" and "channels_last" / "contiguous" choose
on any device, which is how the CPU tests exercise the GPU's code paths); `compile=true` adds
`torch.compile`. `width` scales the net (64 is the standard; tests use 4-8 so a CPU trains it
in seconds). Validation: 5,000
of the 50,000 training images, held out with seed 0, so training sees 45,000.

Accuracies measured on the JPEG copy in ../shared/data run below those on the official files:
say "CIFAR-10 (JPEG copy)" beside them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from lrbench.errors import ConfigError
from lrbench.tasks._augment import AlternatingFlips, flip, translate, tta_logits
from lrbench.tasks._base import DataOptions, Task, TaskData, subset
from lrbench.tasks._data import (
    TensorSplit,
    holdout_split,
    ordered_batches,
    read_cifar10,
    steps_per_epoch,
)
from lrbench.tools import ScheduleSpec

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Recipe:
    """An architecture's defaults: what `train` uses when no rate, schedule or epochs are given."""

    lr_per_1024: float  # the peak rate, scaled linearly with the batch size
    batch_size: int
    epochs: int
    optimizer_kwargs: dict[str, Any]
    schedule: ScheduleSpec
    width: int = 64
    lr_scales_with_batch: bool = True


RECIPES: dict[str, Recipe] = {
    "airbench": Recipe(
        lr_per_1024=1.5,
        batch_size=1024,
        epochs=10,
        optimizer_kwargs={"momentum": 0.85, "weight_decay": 0.0153 / 11.5, "lookahead_k": 5},
        schedule=ScheduleSpec(
            "one_cycle",
            {
                "pct_start": 0.23,
                "anneal_strategy": "linear",
                "div_factor": 5.0,  # start at 0.2x the peak
                "final_div_factor": 1 / (5.0 * 0.07),  # end at 0.07x the peak
                "cycle_momentum": False,
            },
        ),
    ),
    # The task's earlier recipe, kept for comparison: peak 0.4 at batch 512, not rescaled.
    "resnet9": Recipe(
        lr_per_1024=0.4,
        batch_size=512,
        epochs=10,
        optimizer_kwargs={"weight_decay": 5e-4},
        schedule=ScheduleSpec("one_cycle", {"pct_start": 0.25, "anneal_strategy": "linear"}),
        lr_scales_with_batch=False,
    ),
}


class Cifar10(Task):
    name = "cifar10"
    description = "CIFAR-10, airbench94-class net (or arch=resnet9), bf16 on GPU, accuracy"
    metric = "accuracy"
    metric_unit = "fraction correct"
    direction = "maximize"
    default_target = 0.94
    default_optimizer = "nesterov"
    # Class-level values describe the default architecture; __init__ sets the chosen one's.
    default_lr = RECIPES["airbench"].lr_per_1024
    default_epochs = RECIPES["airbench"].epochs
    batch_size = RECIPES["airbench"].batch_size
    optimizer_kwargs = RECIPES["airbench"].optimizer_kwargs
    default_schedule = RECIPES["airbench"].schedule
    option_defaults = {
        "width": None,  # None: the architecture's (64)
        "arch": "airbench",  # or "resnet9"
        "batch_size": None,  # None: the architecture's (airbench 1024, resnet9 512)
        "val_size": 5000,
        "label_smoothing": 0.2,
        "pad": 2,  # random translation by up to this many pixels
        "flip": "alternating",  # or "random", "none"
        "tta": 2,  # 0 none, 1 mirror, 2 mirror and translations
        "bias_lr_scale": 64.0,  # airbench: batch-norm biases' rate multiplier
        "compile": False,
        "precision": "auto",  # "bf16" autocast on CUDA, float32 elsewhere; or "bf16", "float32"
        "memory_format": "auto",  # channels_last on CUDA; or "channels_last", "contiguous"
    }

    def __init__(self, **options: Any) -> None:
        arch = options.get("arch", self.option_defaults["arch"])
        if arch not in RECIPES:
            raise ConfigError(
                f"task 'cifar10': unknown arch {arch!r}; known: {', '.join(RECIPES)}"
            )
        recipe = RECIPES[arch]
        if options.get("width") is None:
            options["width"] = recipe.width
        if options.get("batch_size") is None:
            options["batch_size"] = recipe.batch_size
        super().__init__(**options)
        self._check_choice("precision", ("auto", "bf16", "float32"))
        self._check_choice("memory_format", ("auto", "channels_last", "contiguous"))
        self._check_choice("flip", ("alternating", "random", "none"))
        scale = self.batch_size / 1024 if recipe.lr_scales_with_batch else 1.0
        self.default_lr = recipe.lr_per_1024 * scale
        self.default_epochs = recipe.epochs
        self.optimizer_kwargs = dict(recipe.optimizer_kwargs)
        self.default_schedule = recipe.schedule
        self._flips = AlternatingFlips()

    def _check_choice(self, key: str, choices: tuple[str, ...]) -> None:
        if self.options[key] not in choices:
            raise ConfigError(
                f"task 'cifar10': {key} must be {', '.join(choices[:-1])} or {choices[-1]}, "
                f"got {self.options[key]!r}"
            )

    # -- data ---------------------------------------------------------------------------------
    def load(self, device: torch.device, data: DataOptions) -> TaskData:
        arrays = read_cifar10(data.data_root, download=data.download)
        mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=device).view(1, 3, 1, 1)

        def norm(a) -> torch.Tensor:
            x = (torch.as_tensor(a).to(device).float().div_(255.0) - mean) / std
            return x.contiguous(memory_format=torch.channels_last) if self._nhwc(device) else x

        x, y = arrays.train_x, torch.as_tensor(arrays.train_y)
        tr, va = self.holdout(len(x))
        train = subset(TensorSplit(norm(x[tr]), y[tr].to(device)), data.train_subset)
        val = TensorSplit(norm(x[va]), y[va].to(device))
        test = TensorSplit(norm(arrays.test_x), torch.as_tensor(arrays.test_y).to(device))
        return TaskData(train, val, test, self.steps_per_epoch_for(train))

    def holdout(self, n: int):
        # At most a fifth of the training set, so small real-format copies (tests) still train.
        return holdout_split(n, min(int(self.options["val_size"]), n // 5), seed=0)

    def train_batches(self, data: TaskData, generator: torch.Generator):
        """One epoch: slices of an on-device permutation, flipped and translated on the device."""
        split, b = data.train, self.batch_size
        assert split.y is not None  # CIFAR-10's splits are labelled (load)
        perm, flips, shifts = self._epoch_draws(len(split), generator, split.x.device)
        for i in range(steps_per_epoch(len(split), b)):
            at = slice(i * b, (i + 1) * b)
            x = self._augment(split.x[perm[at]], flips, shifts, at)
            yield x, split.y[perm[at]]

    def population_batches(self, data: TaskData, generators: list[torch.Generator]):
        """K members' batches (K, B, ...): member k's slice is exactly its `train_batches` batch
        (the same draws from its own generator), augmented for all members at once."""
        split, b = data.train, self.batch_size
        assert split.y is not None  # CIFAR-10's splits are labelled (load)
        draws = [self._epoch_draws(len(split), g, split.x.device) for g in generators]
        perm, flips, shifts = (None if d[0] is None else torch.stack(d) for d in zip(*draws))
        assert perm is not None  # every epoch has an order; only flips and shifts may be absent
        for i in range(steps_per_epoch(len(split), b)):
            at = slice(i * b, (i + 1) * b)
            idx = perm[:, at]  # (K, B)
            x = split.x[idx.flatten()]  # members' images one after another: (K * B, C, H, W)
            flat_flips = None if flips is None else flips[:, at].flatten()
            flat_shifts = None if shifts is None else shifts[:, :, at].transpose(0, 1).flatten(1)
            x = self._augment(x, flat_flips, flat_shifts, slice(None))
            yield x.view(*idx.shape, *x.shape[1:]), split.y[idx]

    def _epoch_draws(self, n: int, generator: torch.Generator, device: torch.device):
        """A trial's random choices for one epoch, drawn at once from its generator: the order
        of the images, which positions are mirrored (None: no flips) and each position's
        translation (2, n) (None: no translation)."""
        mode, pad = self.options["flip"], int(self.options["pad"])
        mirror = self._flips.epoch_mask(n, generator, device) if mode == "alternating" else None
        perm = torch.randperm(n, generator=generator, device=device)
        flips = None
        if mode == "alternating":
            assert mirror is not None  # drawn above for this mode
            flips = mirror[perm]
        elif mode == "random":
            flips = torch.rand(n, device=device, generator=generator) < 0.5
        shifts = None
        if pad:
            shifts = torch.randint(-pad, pad + 1, (2, n), device=device, generator=generator)
        return perm, flips, shifts

    def _augment(self, x: torch.Tensor, flips, shifts, at: slice) -> torch.Tensor:
        """Images `x` at epoch positions `at`, mirrored and translated as drawn."""
        if flips is not None:
            x = flip(x, flips[at])
        if shifts is not None:
            x = translate(x, shifts[0, at], shifts[1, at], int(self.options["pad"]))
        return x

    # -- model --------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        # Imported here: the nets' module imports torch._dynamo (`torch.compiler.disable`),
        # seconds that commands which train nothing (report, list, --help) need not pay; a
        # training process pays them anyway, at its first optimizer (torch.optim imports it).
        from lrbench.tasks._cifar10_net import AirNet, ResNet9

        width = int(self.options["width"])
        if self.options["arch"] == "resnet9":
            return ResNet9(width)
        return AirNet(width, bias_lr_scale=float(self.options["bias_lr_scale"]))

    def _nhwc(self, device: torch.device) -> bool:
        """Whether images and weights are kept channels_last (NHWC) on `device`."""
        setting = self.options["memory_format"]
        return device.type == "cuda" if setting == "auto" else setting == "channels_last"

    def prepare_model(self, model: nn.Module, device: torch.device) -> nn.Module:
        if self._nhwc(device):
            model = model.to(memory_format=torch.channels_last)
        if self.options["compile"]:
            model = cast(nn.Module, torch.compile(model))  # of a Module: an OptimizedModule
        return model

    def autocast(self, device: torch.device):
        precision = self.options["precision"]
        if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def example_losses(self, model: nn.Module, batch, noise) -> torch.Tensor:
        x, y = batch  # (B, 3, H, W), (B,) or, folded members, (K, B, 3, H, W), (K, B)
        logits = model(x)
        return F.cross_entropy(
            logits.flatten(0, -2),
            y.flatten(),
            label_smoothing=float(self.options["label_smoothing"]),
            reduction="none",
        ).view(y.shape)

    # -- population training: the members folded into the channels (lrbench.stacking) ---------
    @property
    def population_form(self) -> str | None:  # type: ignore[override]
        return None if self.options["compile"] else "folded"  # a compiled net has no folded form

    def evaluate(self, model: nn.Module, split: TensorSplit) -> torch.Tensor:
        """Accuracy of the mean logits over the test-time views (`augment.tta_views`)."""
        correct = torch.zeros((), device=split.x.device)
        for x, y in ordered_batches(split, 1000):
            assert y is not None  # CIFAR-10's splits are labelled (load)
            logits = tta_logits(model, x, int(self.options["tta"]))
            correct += (logits.argmax(1) == y).sum()
        return correct / len(split)
