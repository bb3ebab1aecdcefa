"""Learning-rate schedules by name, built from `torch.optim.lr_scheduler` (never re-implemented).

Each schedule declares whether it is stepped after every optimizer step ("step") or after every
epoch ("epoch"). Options are given in epochs where a user thinks in epochs (`step_size_epochs`)
and converted to optimizer steps here, because the engine steps per-batch schedules per batch.
The warm-up and decay schedules (`warmup_cosine`, `wsd`, `constant_cooldown`) take an `interval`
option instead, and count their phases in that unit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch.optim import lr_scheduler

from lrbench.errors import ConfigError
from lrbench.tools._optimizers import build_optimizer


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule's name and options, as written in a suite or on the command line."""

    name: str = "constant"
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, words: list[str] | None) -> ScheduleSpec:
        """`["cyclic", "mode=triangular2", "base_lr=1e-4"]` -> ScheduleSpec.

        Values are parsed as numbers when they are numbers."""
        if not words:
            return cls()
        return cls(words[0], parse_key_values(words[1:], "schedule"))

    def describe(self) -> str:
        return " ".join([self.name, *(f"{k}={v}" for k, v in self.options.items())])


def parse_key_values(
    words: list[str] | tuple[str, ...] | None, what: str = "option"
) -> dict[str, Any]:
    """`["mode=triangular2", "base_lr=1e-4"]` -> {"mode": "triangular2", "base_lr": 0.0001}: numbers and
    true/false parsed, anything else kept as a string (command-line schedule and task options)."""
    opts: dict[str, Any] = {}
    for w in words or ():
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} option {w!r} is not KEY=VALUE")
        opts[key] = _number_or_str(value)
    return opts


def _number_or_str(value: str) -> Any:
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


@dataclass
class BuiltSchedule:
    scheduler: lr_scheduler.LRScheduler | None
    interval: str  # "step" or "epoch"

    def after_step(self) -> None:
        if self.scheduler is not None and self.interval == "step":
            self.scheduler.step()

    def after_epoch(self) -> None:
        if self.scheduler is not None and self.interval == "epoch":
            self.scheduler.step()


@dataclass(frozen=True)
class _Ctx:
    lr: float
    epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return max(1, self.epochs * self.steps_per_epoch)


def _has_momentum(opt: torch.optim.Optimizer) -> bool:
    # Cycling momentum on plain SGD (momentum=0) would silently turn it into momentum SGD.
    return opt.defaults.get("momentum", 0) > 0 or "betas" in opt.defaults


def _rest(o: dict[str, Any]) -> dict[str, Any]:
    """The options no builder consumed, handed on to torch (which rejects unknown ones); empties `o`."""
    rest = dict(o)
    o.clear()
    return rest


def _count(o: dict[str, Any], key: str, default: Any) -> Any:
    """Pop a whole number of steps or epochs, at least 1 (torch divides by it mid-trial)."""
    value = o.pop(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{key} must be a whole number at least 1, got {value!r}")
    return value


def _factor(o: dict[str, Any], key: str, default: float) -> float:
    """Pop a positive, finite multiplier (a word failed at the first epoch's end)."""
    value = o.pop(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{key} must be a positive, finite number, got {value!r}")
    return float(value)


def _constant(opt, ctx, o):
    return None, "epoch"


def _step(opt, ctx, o):
    step = _count(o, "step_size", max(1, ctx.epochs // 3))
    return lr_scheduler.StepLR(opt, step_size=step, gamma=_factor(o, "gamma", 0.1)), "epoch"


def _exponential(opt, ctx, o):
    return lr_scheduler.ExponentialLR(opt, gamma=_factor(o, "gamma", 0.9)), "epoch"


def _cyclic(opt, ctx, o, mode=None):
    # `lr` is the peak (max_lr); Smith's rule of thumb puts base_lr at max_lr/3 to /4.
    step_up = _count(o, "step_size_up", None)
    step_epochs = o.pop("step_size_epochs", 2)
    if step_up is None:
        step_up = max(1, round(step_epochs * ctx.steps_per_epoch))
    mode = o.pop("mode", mode or "triangular")
    return lr_scheduler.CyclicLR(
        opt,
        base_lr=_per_group(opt, o.pop("base_lr", ctx.lr / 4)),
        max_lr=_per_group(opt, o.pop("max_lr", ctx.lr)),
        step_size_up=step_up,
        mode=mode,
        gamma=_factor(o, "gamma", 1.0),
        cycle_momentum=o.pop("cycle_momentum", False) and _has_momentum(opt),
        **_rest(o),
    ), "step"


def _one_cycle(opt, ctx, o):
    # The engine steps the scheduler after every optimizer step (torch's convention), so after a
    # trial's last step OneCycleLR stands at step `total_steps`, one past its final point (the
    # minimum rate, at step total_steps - 1): linear annealing extrapolates there to a negative
    # rate and cosine annealing climbs back up, and that is the rate the last epoch's record
    # shows. One extra step makes the trial end exactly on the final point.
    return lr_scheduler.OneCycleLR(
        opt,
        max_lr=_per_group(opt, o.pop("max_lr", ctx.lr)),
        total_steps=_count(o, "total_steps", ctx.total_steps + 1),
        cycle_momentum=o.pop("cycle_momentum", True) and _has_momentum(opt),
        **_rest(o),
    ), "step"


def _cosine(opt, ctx, o):
    t_max, epochs = _count(o, "T_max", None), o.pop("epochs", ctx.epochs)
    t_max = t_max or max(1, round(epochs * ctx.steps_per_epoch))
    return lr_scheduler.CosineAnnealingLR(opt, T_max=t_max, eta_min=o.pop("eta_min", 0.0)), "step"


def _cosine_warm_restarts(opt, ctx, o):
    t0, t0_epochs = _count(o, "T_0", None), o.pop("t0_epochs", 1)
    t0 = t0 or max(1, round(t0_epochs * ctx.steps_per_epoch))
    return lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=t0, T_mult=_count(o, "T_mult", 2), eta_min=o.pop("eta_min", 0.0)
    ), "step"


# -- warm-up, stable, decay: compositions of torch's schedulers ----------------------------------

SCHEDULE_INTERVALS = ("step", "epoch")
WARMUP_FRACTION = 0.05  # the warm-up's share of the trial when no length is given
WSD_DECAYS = ("linear", "cosine", "1-sqrt")
COOLDOWNS = ("1-sqrt", "linear")
# A phase of a composed schedule: its length in the schedule's unit, and its torch scheduler
# for an optimizer, built only when the phase is used.
Phase = tuple[int, Callable[[torch.optim.Optimizer], lr_scheduler.LRScheduler]]


def _interval_length(ctx: _Ctx, o: dict[str, Any]) -> tuple[str, int]:
    """The `interval` option and the trial's length in its unit: steps or epochs."""
    interval = o.pop("interval", "step")
    if interval not in SCHEDULE_INTERVALS:
        raise ValueError(
            f"interval must be one of {', '.join(SCHEDULE_INTERVALS)}, got {interval!r}"
        )
    return interval, ctx.total_steps if interval == "step" else max(1, ctx.epochs)


def _warmup_length(o: dict[str, Any], total: int) -> int:
    """The warm-up's length in the schedule's unit: `warmup` as a count, or `warmup_fraction`
    of the trial (default `WARMUP_FRACTION`) rounded down, so that fractions of a trial that add
    up to at most 1 always fit in it (the decay's share is rounded to nearest)."""
    if "warmup" in o and "warmup_fraction" in o:
        raise ValueError("give warmup (a count) or warmup_fraction, not both")
    if "warmup" in o:
        warmup = o.pop("warmup")
        if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
            raise ValueError(f"warmup must be a whole number of steps or epochs, got {warmup!r}")
        return warmup
    fraction = o.pop("warmup_fraction", WARMUP_FRACTION)
    if not 0 <= fraction < 1:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {fraction!r}")
    return math.floor(fraction * total + 1e-9)  # 0.29 * 100 is 28.999999999999996


def _decay_length(fraction: float, total: int, key: str) -> int:
    """The last `fraction` of the trial, rounded, at least one step or epoch."""
    if not 0 < fraction <= 1:
        raise ValueError(f"{key} must be in (0, 1], got {fraction!r}")
    return max(1, round(fraction * total))


def _linear_warmup(warmup: int, start_factor: float | None) -> Phase:
    # Equal increments of peak/(warmup+1) by default: no unit spent at ~0 and none at the peak
    # twice (the next phase starts there). LinearLR refuses a start factor of 0.
    start = 1.0 / (warmup + 1) if start_factor is None else start_factor
    return warmup, partial(
        lr_scheduler.LinearLR, start_factor=start, end_factor=1.0, total_iters=warmup
    )


def _one_minus_sqrt(i: int, *, length: int) -> float:
    """Hägele et al. 2024's cooldown factor, 1 - sqrt(i / length), held at 0 after the end."""
    return 1.0 - math.sqrt(min(i, length) / length)


def _decay(kind: str, length: int) -> Phase:
    """The decay phase, from the peak to 0 over `length` units. Torch has no class for 1-sqrt:
    its factor goes to LambdaLR."""
    if kind == "linear":
        return length, partial(
            lr_scheduler.LinearLR, start_factor=1.0, end_factor=0.0, total_iters=length
        )
    if kind == "cosine":
        return length, partial(lr_scheduler.CosineAnnealingLR, T_max=length, eta_min=0.0)
    if kind == "1-sqrt":
        return length, partial(
            lr_scheduler.LambdaLR, lr_lambda=partial(_one_minus_sqrt, length=length)
        )
    raise ValueError(f"decay must be one of {', '.join(WSD_DECAYS)}, got {kind!r}")


def _in_sequence(opt: torch.optim.Optimizer, phases: list[Phase]) -> lr_scheduler.LRScheduler:
    """The phases one after another: SequentialLR switches at each one's end. Only phases of
    some length are built (each torch scheduler sets the rate when built; SequentialLR sets it
    back), and a single phase is its scheduler alone."""
    phases = [(n, make) for n, make in phases if n > 0]
    schedulers = [make(opt) for _, make in phases]
    if len(schedulers) == 1:
        return schedulers[0]
    ends = [sum(n for n, _ in phases[: i + 1]) for i in range(len(phases) - 1)]
    return lr_scheduler.SequentialLR(opt, schedulers, milestones=ends)


def _stable_between(warmup: int, decay: Phase, total: int) -> Phase:
    """The constant phase: what the warm-up and the decay leave of the trial."""
    stable = total - warmup - decay[0]
    if stable < 0:
        raise ValueError(
            f"warm-up ({warmup}) and decay ({decay[0]}) are longer than the trial ({total})"
        )
    return stable, partial(lr_scheduler.ConstantLR, factor=1.0, total_iters=stable)


def _warmup_cosine(opt, ctx, o):
    interval, total = _interval_length(ctx, o)
    warmup = _warmup_length(o, total)
    if warmup >= total:
        raise ValueError(f"warm-up ({warmup}) leaves nothing of the trial ({total}) to anneal")
    cosine = partial(
        lr_scheduler.CosineAnnealingLR, T_max=total - warmup, eta_min=o.pop("eta_min", 0.0)
    )
    phases = [_linear_warmup(warmup, o.pop("start_factor", None)), (total - warmup, cosine)]
    return _in_sequence(opt, phases), interval


def _wsd(opt, ctx, o):
    interval, total = _interval_length(ctx, o)
    warmup = _warmup_length(o, total)
    length = _decay_length(o.pop("decay_fraction", 0.1), total, "decay_fraction")
    decay = _decay(o.pop("decay", "1-sqrt"), length)
    warm = _linear_warmup(warmup, o.pop("start_factor", None))
    return _in_sequence(opt, [warm, _stable_between(warmup, decay, total), decay]), interval


def _constant_cooldown(opt, ctx, o):
    interval, total = _interval_length(ctx, o)
    length = _decay_length(o.pop("cooldown_fraction", 0.2), total, "cooldown_fraction")
    kind = o.pop("cooldown", "1-sqrt")
    if kind not in COOLDOWNS:
        raise ValueError(f"cooldown must be one of {', '.join(COOLDOWNS)}, got {kind!r}")
    cooldown = _decay(kind, length)
    return _in_sequence(opt, [_stable_between(0, cooldown, total), cooldown]), interval


# -- seed 002's cosine recipe -----------------------------------------------------------------


def _seed002_cosine_factor(epoch: int, *, epochs: int, warmup: int) -> float:
    """The factor of the peak rate in epoch `epoch` (from 0) of seed 002's cosine recipe
    (`CosineScheduler` in its author's `cosine_annealing_*.py`): a cosine over the epochs after
    the warm-up, at full height during it, multiplied by the warm-up's min(1, (epoch+1)/warmup)."""
    progress = min(max((epoch - warmup) / (epochs - warmup), 0.0), 1.0)
    factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor * min(1.0, (epoch + 1) / warmup) if warmup else factor


def _seed002_cosine(opt, ctx, o):
    # The seed sets the rate once per epoch; its fresh Adam per epoch is the training option
    # `optimizer_reset`, not the schedule's.
    epochs, warmup = o.pop("epochs", ctx.epochs), o.pop("warmup", 5)
    if not 0 <= warmup < epochs:
        raise ValueError(f"warmup must be at least 0 and below epochs={epochs}, got {warmup!r}")
    factor = partial(_seed002_cosine_factor, epochs=epochs, warmup=warmup)
    return lr_scheduler.LambdaLR(opt, factor), "epoch"


_BUILDERS: dict[str, tuple[Callable, str]] = {
    "constant": (_constant, "fixed learning rate"),
    "step": (_step, "StepLR: x gamma every step_size epochs"),
    "exponential": (_exponential, "ExponentialLR: x gamma every epoch"),
    "cyclic": (
        _cyclic,
        "CyclicLR (mode triangular|triangular2|exp_range), lr is max_lr, per batch",
    ),
    "triangular": (lambda o_, c, o: _cyclic(o_, c, o, "triangular"), "CyclicLR mode=triangular"),
    "triangular2": (
        lambda o_, c, o: _cyclic(o_, c, o, "triangular2"),
        "CyclicLR mode=triangular2",
    ),
    "exp_range": (lambda o_, c, o: _cyclic(o_, c, o, "exp_range"), "CyclicLR mode=exp_range"),
    "one_cycle": (_one_cycle, "OneCycleLR over the whole trial, lr is max_lr, per batch"),
    "cosine": (_cosine, "CosineAnnealingLR over the trial's epochs, per batch"),
    "cosine_warm_restarts": (
        _cosine_warm_restarts,
        "CosineAnnealingWarmRestarts (SGDR), T_0 in epochs",
    ),
    "warmup_cosine": (
        _warmup_cosine,
        "LinearLR warm-up, then CosineAnnealingLR to eta_min; interval step|epoch",
    ),
    "wsd": (
        _wsd,
        "LinearLR warm-up, ConstantLR, decay linear|cosine|1-sqrt over decay_fraction; "
        "interval step|epoch",
    ),
    "constant_cooldown": (
        _constant_cooldown,
        "ConstantLR, then cooldown 1-sqrt|linear over cooldown_fraction; interval step|epoch",
    ),
    "seed002_cosine": (
        _seed002_cosine,
        "seed 002's LambdaLR: cosine after a warm-up, times min(1, (e+1)/warmup), per epoch",
    ),
}
SCHEDULES: dict[str, str] = {name: doc for name, (_, doc) in _BUILDERS.items()}


def build_schedule(
    spec: ScheduleSpec,
    optimizer: torch.optim.Optimizer,
    *,
    lr: float,
    epochs: int,
    steps_per_epoch: int,
) -> BuiltSchedule:
    """Build the torch scheduler named by `spec` for a trial of `epochs` x `steps_per_epoch` steps.

    The returned schedule's `after_step` / `after_epoch` step the scheduler at its interval.
    Seed 002's cosine recipe over 50 epochs: a 5-epoch warm-up at full cosine height, set once
    per epoch:

    >>> import torch, lrbench
    >>> optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    >>> schedule = lrbench.build_schedule(lrbench.ScheduleSpec("seed002_cosine"), optimizer,
    ...                                   lr=1e-3, epochs=50, steps_per_epoch=469)
    >>> schedule.interval, type(schedule.scheduler).__name__
    ('epoch', 'LambdaLR')
    >>> rates = []
    >>> for epoch in range(7):
    ...     rates.append(optimizer.param_groups[0]["lr"])
    ...     optimizer.step()
    ...     schedule.after_epoch()
    >>> [f"{r:.6g}" for r in rates]
    ['0.0002', '0.0004', '0.0006', '0.0008', '0.001', '0.001', '0.000998782']
    """
    try:
        builder, _ = _BUILDERS[spec.name]
    except KeyError:
        raise ConfigError(
            f"unknown schedule {spec.name!r}; choose one of {', '.join(_BUILDERS)}"
        ) from None
    try:
        options = dict(spec.options)
        sched, interval = builder(optimizer, _Ctx(lr, epochs, steps_per_epoch), options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"schedule {spec.describe()!r}: {e}") from None
    if options:  # builders pop what they use: anything left is a misspelt or foreign option
        raise ConfigError(
            f"schedule {spec.name!r}: unknown option(s) {', '.join(sorted(options))}"
        )
    return BuiltSchedule(sched, interval)


def replay_schedule(
    spec: ScheduleSpec,
    lr: float,
    *,
    epochs: int,
    steps_per_epoch: int,
    steps: int | None = None,
    optimizer: str = "sgd",
) -> list[float]:
    """The rate every optimizer step of a trial used, rebuilt from its schedule alone.

    `build_schedule` on a throwaway optimizer, stepped as the engine steps it: `after_step()`
    after every optimizer step, `after_epoch()` after every full epoch (none after a budget-cut
    partial epoch). `steps` defaults to the whole trial, `epochs` x `steps_per_epoch`. Returns
    `steps` + 1 rates: the one each step used, then the one after the last step (the rate the
    engine records at the end of the trial's last epoch).
    """
    steps = epochs * steps_per_epoch if steps is None else steps
    param = torch.zeros(1, requires_grad=True)
    opt = build_optimizer(optimizer, [param], lr)
    built = build_schedule(spec, opt, lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. torch's notes on the scheduler's step order
        for i in range(steps):
            rates.append(float(opt.param_groups[0]["lr"]))
            opt.step()  # no gradient: parameters untouched, but the scheduler sees a step
            built.after_step()
            if (i + 1) % steps_per_epoch == 0:
                built.after_epoch()
    rates.append(float(opt.param_groups[0]["lr"]))
    return rates


def _per_group(opt: torch.optim.Optimizer, rate: float) -> float | list[float]:
    """A rate given for the optimizer's first parameter group, as one rate per group that
    keeps the groups' ratios (a model's per-parameter `lr_scale`, see `lrbench.tools._optimizers`):
    the schedules that take absolute rates (CyclicLR, OneCycleLR) would otherwise give every
    group the same one."""
    groups = opt.param_groups
    if len(groups) == 1 or isinstance(rate, (list, tuple)):
        return rate
    return [rate * g["lr"] / groups[0]["lr"] for g in groups]
