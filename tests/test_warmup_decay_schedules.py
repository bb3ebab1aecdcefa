"""The warm-up and decay schedules practitioners use (`warmup_cosine`, `wsd`,
`constant_cooldown`): torch's schedulers composed, every step's rate against the closed form
evaluated here, in float64 (Python floats).

Rates come from `replay_schedule`, which steps a schedule as the engine does (its test compares
it to the engine's recorded rates). Torch's LinearLR and CosineAnnealingLR compute each rate from
the previous one, so their rounding error grows by a few ulps a step: a few hundred steps stay
far inside a relative 1e-12 (and, near a decay's zero, an absolute 1e-12 of the peak).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lrbench.errors import ConfigError
from lrbench.tools import ScheduleSpec, build_optimizer, build_schedule, replay_schedule

PEAK = 0.1


def rates(name: str, epochs: int = 6, spe: int = 10, **options) -> list[float]:
    return replay_schedule(ScheduleSpec(name, options), PEAK, epochs=epochs, steps_per_epoch=spe)


def close(expected: list[float]):
    return pytest.approx(expected, rel=1e-12, abs=1e-12 * PEAK)


def warmup_rate(i: int, warmup: int) -> float:
    # The default warm-up: equal increments of peak / (warmup + 1) up to the peak.
    return PEAK * (i + 1) / (warmup + 1)


def decay_rate(kind: str, j: int, length: int) -> float:
    x = j / length
    return (
        PEAK
        * {"linear": 1 - x, "cosine": (1 + math.cos(math.pi * x)) / 2, "1-sqrt": 1 - x**0.5}[kind]
    )


# -- warmup_cosine --------------------------------------------------------------------------------


def test_warmup_cosine_rises_linearly_then_anneals_to_eta_min_per_step():
    total, warmup, eta_min = 60, 6, 1e-3
    got = rates("warmup_cosine", warmup=warmup, eta_min=eta_min)
    expected = [warmup_rate(i, warmup) for i in range(warmup)] + [
        eta_min + (PEAK - eta_min) * (1 + math.cos(math.pi * (i - warmup) / (total - warmup))) / 2
        for i in range(warmup, total + 1)
    ]
    assert got == close(expected)
    assert got[warmup] == PEAK and got[-1] == pytest.approx(eta_min, rel=1e-12)


def test_warmup_cosine_default_warmup_is_five_percent_of_the_trial_rounded_down():
    got = rates("warmup_cosine", epochs=5, spe=11)  # 55 steps: 2.75 warm-up steps -> 2
    assert got[:3] == close([PEAK / 3, 2 * PEAK / 3, PEAK])
    assert got[3] < PEAK


def test_warmup_cosine_start_factor_goes_to_linear_lr():
    got = rates("warmup_cosine", warmup=4, start_factor=0.2)
    assert got[:5] == close([PEAK * (0.2 + 0.8 * i / 4) for i in range(5)])


def test_warmup_cosine_per_epoch_holds_each_epoch_and_counts_epochs():
    epochs, spe, warmup = 8, 5, 2
    got = rates("warmup_cosine", epochs=epochs, spe=spe, warmup=warmup, interval="epoch")
    per_epoch = [warmup_rate(e, warmup) for e in range(warmup)] + [
        PEAK * (1 + math.cos(math.pi * (e - warmup) / (epochs - warmup))) / 2
        for e in range(warmup, epochs + 1)
    ]
    assert got == close([per_epoch[i // spe] for i in range(epochs * spe + 1)])


def test_warmup_cosine_without_warmup_is_cosine_annealing():
    assert rates("warmup_cosine", warmup=0) == close(rates("cosine"))


# -- wsd and constant_cooldown ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "cosine", "1-sqrt"])
def test_wsd_warms_up_holds_the_peak_then_decays_to_zero_over_its_fraction(kind):
    total, warmup, length = 60, 3, 15  # decay_fraction 0.25 of 60 steps
    got = rates("wsd", warmup=warmup, decay_fraction=0.25, decay=kind)
    expected = (
        [warmup_rate(i, warmup) for i in range(warmup)]
        + [PEAK] * (total - length - warmup)
        + [decay_rate(kind, j, length) for j in range(length + 1)]
    )
    assert got == close(expected)
    assert got[warmup : total - length + 1] == [PEAK] * (total - length - warmup + 1)  # exact
    assert got[-1] == pytest.approx(0.0, abs=1e-12 * PEAK)


def test_wsd_defaults_five_percent_warmup_and_a_tenth_in_1_sqrt_decay():
    got = rates("wsd", epochs=10, spe=10)  # 100 steps: 5 warm-up, 85 stable, 10 decay
    expected = (
        [warmup_rate(i, 5) for i in range(5)]
        + [PEAK] * 85
        + [decay_rate("1-sqrt", j, 10) for j in range(11)]
    )
    assert got == close(expected)


def test_wsd_per_epoch_decays_over_whole_epochs():
    epochs, spe = 10, 4
    got = rates("wsd", epochs=epochs, spe=spe, interval="epoch", warmup=1, decay_fraction=0.3)
    per_epoch = [warmup_rate(0, 1)] + [PEAK] * 6 + [decay_rate("1-sqrt", j, 3) for j in range(4)]
    assert got == close([per_epoch[i // spe] for i in range(epochs * spe + 1)])


@pytest.mark.parametrize("kind", ["1-sqrt", "linear"])
def test_constant_cooldown_holds_the_peak_then_cools_down_over_a_fifth(kind):
    total, length = 60, 12
    got = rates("constant_cooldown", cooldown=kind)
    expected = [PEAK] * (total - length) + [decay_rate(kind, j, length) for j in range(length + 1)]
    assert got == close(expected)


def test_constant_cooldown_is_wsd_without_warmup():
    assert rates("constant_cooldown", cooldown_fraction=0.3, cooldown="linear") == rates(
        "wsd", warmup=0, decay_fraction=0.3, decay="linear"
    )


def test_composed_schedules_keep_the_ratio_of_parameter_groups():
    # A model's per-parameter lr_scale is a second group at a multiple of the first's rate.
    model = nn.Linear(3, 2)
    groups = [{"params": [model.weight]}, {"params": [model.bias], "lr": PEAK * 0.1}]
    opt = build_optimizer("sgd", groups, PEAK)
    built = build_schedule(
        ScheduleSpec("wsd", {"warmup": 2, "decay": "linear"}),
        opt,
        lr=PEAK,
        epochs=2,
        steps_per_epoch=10,
    )
    for _ in range(20):
        opt.step()
        built.after_step()
        first, second = (g["lr"] for g in opt.param_groups)
        assert second == pytest.approx(0.1 * first, rel=1e-12, abs=1e-15)


# -- bad options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        (ScheduleSpec("wsd", {"interval": "batch"}), "interval must be one of step, epoch"),
        (ScheduleSpec("wsd", {"decay": "exp"}), "decay must be one of linear, cosine, 1-sqrt"),
        (ScheduleSpec("constant_cooldown", {"cooldown": "cosine"}), "cooldown must be one of"),
        (ScheduleSpec("wsd", {"warmup": 3, "warmup_fraction": 0.1}), "not both"),
        (ScheduleSpec("wsd", {"warmup": 15, "decay_fraction": 0.5}), "longer than the trial (20)"),
        (ScheduleSpec("wsd", {"decay_fraction": 0}), "decay_fraction must be in (0, 1]"),
        (ScheduleSpec("wsd", {"warmup": 2.5}), "warmup must be a whole number"),
        (ScheduleSpec("warmup_cosine", {"warmup_fraction": 1}), "warmup_fraction must be in"),
        (ScheduleSpec("warmup_cosine", {"warmup": 20}), "leaves nothing of the trial (20)"),
        (ScheduleSpec("constant_cooldown", {"cooldown_fraction": 1.5}), "cooldown_fraction"),
        (ScheduleSpec("constant_cooldown", {"warmup": 2}), "unknown option(s) warmup"),
        (ScheduleSpec("wsd", {"eta_min": 1e-4}), "unknown option(s) eta_min"),
    ],
)
def test_bad_option_is_a_config_error_naming_it(spec, message):
    opt = build_optimizer("sgd", [torch.zeros(1, requires_grad=True)], PEAK)
    with pytest.raises(ConfigError, match=spec.name) as e:
        build_schedule(spec, opt, lr=PEAK, epochs=2, steps_per_epoch=10)
    assert message in str(e.value)


def test_a_stored_description_rebuilds_the_same_schedule():
    # The report replays a trial's schedule from the description its record stores.
    spec = ScheduleSpec(
        "wsd",
        {"interval": "epoch", "warmup_fraction": 0.2, "decay_fraction": 0.3, "decay": "1-sqrt"},
    )
    again = ScheduleSpec.parse(spec.describe().split())
    assert again == spec
    assert replay_schedule(again, PEAK, epochs=10, steps_per_epoch=3) == replay_schedule(
        spec, PEAK, epochs=10, steps_per_epoch=3
    )
