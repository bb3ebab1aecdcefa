"""Tests for lrbench.tools._schedules and lrbench.tools._optimizers: real torch optimizers and schedulers,
stepped exactly as the engine steps them (after every optimizer step, then after every epoch)."""

from __future__ import annotations

import math

import dadaptation
import dog
import prodigyopt
import pytest
import schedulefree
import torch
from torch import nn

from lrbench.errors import ConfigError
from lrbench.tools import OPTIMIZERS, SCHEDULES, ScheduleSpec, build_optimizer, build_schedule
from lrbench.training import set_training


def _optimizer(name: str = "sgd", lr: float = 0.1) -> torch.optim.Optimizer:
    return build_optimizer(name, nn.Linear(3, 2).parameters(), lr)


def run_schedule(spec: ScheduleSpec, lr: float, epochs: int, spe: int, optimizer: str = "sgd"):
    """The rate after 0, 1, ..., epochs*spe optimizer steps, stepping as `lrbench.train` does.

    Returns (per-step rates, rates at each epoch's end, the built schedule).
    """
    opt = _optimizer(optimizer, lr)
    sched = build_schedule(spec, opt, lr=lr, epochs=epochs, steps_per_epoch=spe)
    per_step = [opt.param_groups[0]["lr"]]
    at_epoch_end = []
    for _ in range(epochs):
        for _ in range(spe):
            opt.step()  # no gradients: a no-op step, but torch wants it before the scheduler's
            sched.after_step()
            per_step.append(opt.param_groups[0]["lr"])
        sched.after_epoch()
        at_epoch_end.append(opt.param_groups[0]["lr"])
    return per_step, at_epoch_end, sched


# -- ScheduleSpec ---------------------------------------------------------------------------------


def test_parse_name_and_typed_options():
    spec = ScheduleSpec.parse(
        [
            "cyclic",
            "mode=triangular2",
            "base_lr=1e-4",
            "step_size_up=10",
            "cycle_momentum=false",
            "gamma=0.5",
        ]
    )
    assert spec.name == "cyclic"
    assert spec.options == {
        "mode": "triangular2",
        "base_lr": 1e-4,
        "step_size_up": 10,
        "cycle_momentum": False,
        "gamma": 0.5,
    }
    assert isinstance(spec.options["step_size_up"], int)
    assert isinstance(spec.options["base_lr"], float)
    assert (
        spec.describe()
        == "cyclic mode=triangular2 base_lr=0.0001 step_size_up=10 cycle_momentum=False gamma=0.5"
    )


def test_parse_empty_is_constant():
    assert ScheduleSpec.parse(None) == ScheduleSpec("constant", {})
    assert ScheduleSpec.parse([]).name == "constant"
    assert ScheduleSpec.parse(["cosine"]) == ScheduleSpec("cosine", {})


@pytest.mark.parametrize("word", ["gamma", "=0.5", "gamma0.5"])
def test_parse_rejects_words_that_are_not_key_value(word):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        ScheduleSpec.parse(["step", word])


def test_parse_keeps_value_with_equals_sign():
    assert ScheduleSpec.parse(["x", "a=b=c"]).options == {"a": "b=c"}


# -- build_schedule errors ------------------------------------------------------------------------


def test_unknown_schedule_is_config_error_listing_choices():
    with pytest.raises(ConfigError, match="unknown schedule 'warmup'") as e:
        build_schedule(ScheduleSpec("warmup"), _optimizer(), lr=0.1, epochs=2, steps_per_epoch=3)
    for name in SCHEDULES:
        assert name in str(e.value)


@pytest.mark.parametrize(
    "spec, bad",
    [
        (ScheduleSpec("step", {"gama": 0.5}), "gama"),  # misspelt: must not be silently ignored
        (ScheduleSpec("exponential", {"gamma": 0.9, "step_size": 2}), "step_size"),
        (ScheduleSpec("cosine", {"eta_mn": 1e-4}), "eta_mn"),
        (ScheduleSpec("cosine_warm_restarts", {"T0": 3}), "T0"),
        (ScheduleSpec("constant", {"gamma": 0.5}), "gamma"),
        (ScheduleSpec("cyclic", {"bogus": 1}), "bogus"),  # torch's CyclicLR rejects it
        (ScheduleSpec("one_cycle", {"bogus": 1}), "bogus"),
        (ScheduleSpec("triangular", {"step_size_upp": 5}), "step_size_upp"),
    ],
)
def test_unknown_option_is_config_error_naming_it(spec, bad):
    with pytest.raises(ConfigError, match=bad):
        build_schedule(spec, _optimizer(), lr=0.1, epochs=4, steps_per_epoch=5)


@pytest.mark.parametrize(
    "spec",
    [
        ScheduleSpec("cyclic", {"mode": "zigzag"}),
        ScheduleSpec("cosine_warm_restarts", {"T_mult": 0}),
        ScheduleSpec("one_cycle", {"anneal_strategy": "quadratic"}),
        ScheduleSpec("one_cycle", {"pct_start": 1.5}),
    ],
)
def test_bad_option_value_is_config_error(spec):
    with pytest.raises(ConfigError, match=spec.name):
        build_schedule(spec, _optimizer(), lr=0.1, epochs=4, steps_per_epoch=5)


def test_every_listed_schedule_builds_and_steps():
    for name in SCHEDULES:  # 6 epochs: seed002_cosine needs more than its 5-epoch warm-up
        per_step, ends, _ = run_schedule(
            ScheduleSpec(name), 0.1, epochs=6, spe=4, optimizer="momentum"
        )
        assert all(math.isfinite(v) and v >= 0 for v in per_step + ends), name
        assert max(per_step) > 0, name


# -- constant, step, exponential: per epoch -------------------------------------------------------


def test_constant_never_changes():
    per_step, ends, built = run_schedule(ScheduleSpec("constant"), 0.03, epochs=3, spe=5)
    assert built.scheduler is None
    assert set(per_step) == {0.03} and set(ends) == {0.03}


def test_step_decays_per_epoch_not_per_step():
    spe = 7
    per_step, ends, built = run_schedule(
        ScheduleSpec("step", {"step_size": 2, "gamma": 0.5}), 0.1, epochs=6, spe=spe
    )
    assert built.interval == "epoch"
    for e in range(6):  # constant within each epoch...
        within = per_step[e * spe + 1 : (e + 1) * spe + 1]
        assert len(set(within)) == 1
        assert within[0] == pytest.approx(0.1 * 0.5 ** (e // 2), rel=1e-12)
    # ...and multiplied by gamma every step_size epochs.
    assert ends == pytest.approx([0.1 * 0.5 ** (e // 2) for e in range(1, 7)], rel=1e-12)


def test_step_default_decays_three_times_over_the_trial():
    _, ends, _ = run_schedule(ScheduleSpec("step"), 1.0, epochs=9, spe=2)
    assert ends == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001], rel=1e-9)


def test_exponential_is_per_epoch():
    spe = 4
    per_step, ends, built = run_schedule(
        ScheduleSpec("exponential", {"gamma": 0.8}), 0.1, epochs=5, spe=spe
    )
    assert built.interval == "epoch"
    assert per_step[: spe + 1] == [0.1] * (spe + 1)  # the whole first epoch at the starting rate
    assert ends == pytest.approx([0.1 * 0.8**e for e in range(1, 6)], rel=1e-12)


# -- cyclic: per step -----------------------------------------------------------------------------


def test_triangular_peaks_at_max_and_troughs_at_base_with_period_two_step_sizes():
    base, peak, up = 1e-3, 1e-2, 5
    lrs, _, built = run_schedule(
        ScheduleSpec("triangular", {"base_lr": base, "step_size_up": up}), peak, epochs=4, spe=10
    )
    assert built.interval == "step"
    assert lrs[0] == pytest.approx(base)
    for k in range(0, 40, 2 * up):
        assert lrs[k] == pytest.approx(base, rel=1e-9)  # troughs at 0, 10, 20, ...
        assert lrs[k + up] == pytest.approx(peak, rel=1e-9)  # peaks at 5, 15, 25, ...
        assert max(lrs[k : k + 2 * up + 1]) == pytest.approx(peak, rel=1e-9)
        assert min(lrs[k : k + 2 * up + 1]) == pytest.approx(base, rel=1e-9)
    # Linear in between, and periodic with period 2*step_size_up.
    assert lrs[2] == pytest.approx(base + (peak - base) * 2 / up, rel=1e-9)
    for k in range(len(lrs) - 2 * up):
        assert lrs[k + 2 * up] == pytest.approx(lrs[k], rel=1e-9)


def test_cyclic_defaults_peak_at_lr_with_base_a_quarter_after_two_epochs():
    spe = 6
    lrs, _, _ = run_schedule(ScheduleSpec("cyclic"), 0.08, epochs=6, spe=spe)
    assert lrs[0] == pytest.approx(0.02)
    assert lrs[2 * spe] == pytest.approx(0.08)
    assert lrs[4 * spe] == pytest.approx(0.02)
    assert max(lrs) == pytest.approx(0.08)


def test_step_size_epochs_converts_to_steps():
    spe = 5
    lrs, _, _ = run_schedule(
        ScheduleSpec("triangular", {"step_size_epochs": 0.6}), 0.1, epochs=2, spe=spe
    )
    assert lrs.index(max(lrs)) == 3  # round(0.6 * 5)


def test_triangular2_second_peak_has_half_the_amplitude():
    base, peak, up = 1e-3, 1e-2, 4
    lrs, _, _ = run_schedule(
        ScheduleSpec("triangular2", {"base_lr": base, "step_size_up": up}), peak, epochs=3, spe=8
    )
    first, second, third = lrs[up], lrs[3 * up], lrs[5 * up]
    assert first == pytest.approx(peak)
    assert second - base == pytest.approx((first - base) / 2, rel=1e-9)
    assert third - base == pytest.approx((first - base) / 4, rel=1e-9)
    assert lrs[2 * up] == pytest.approx(base) and lrs[4 * up] == pytest.approx(base)


def test_cyclic_mode_option_equals_named_schedule():
    a, _, _ = run_schedule(
        ScheduleSpec("cyclic", {"mode": "triangular2", "step_size_up": 3}), 0.1, epochs=2, spe=9
    )
    b, _, _ = run_schedule(ScheduleSpec("triangular2", {"step_size_up": 3}), 0.1, epochs=2, spe=9)
    assert a == b


def test_exp_range_peaks_decay_by_gamma_per_iteration():
    base, peak, up, gamma = 1e-3, 1e-2, 5, 0.97
    lrs, _, _ = run_schedule(
        ScheduleSpec("exp_range", {"base_lr": base, "step_size_up": up, "gamma": gamma}),
        peak,
        epochs=4,
        spe=10,
    )
    peaks = [lrs[k] for k in range(up, len(lrs), 2 * up)]
    assert len(peaks) == 4
    for i, p in enumerate(peaks):
        it = up + 2 * up * i
        assert p - base == pytest.approx((peak - base) * gamma**it, rel=1e-9)
    assert all(a > b for a, b in zip(peaks, peaks[1:]))
    assert all(v >= base * (1 - 1e-12) for v in lrs)


# -- one cycle ------------------------------------------------------------------------------------


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_rises_to_max_then_ends_at_min(anneal):
    max_lr, epochs, spe = 0.4, 9, 11  # 99 steps: the peak falls on a whole step
    lrs, ends, built = run_schedule(
        ScheduleSpec("one_cycle", {"anneal_strategy": anneal}),
        max_lr,
        epochs=epochs,
        spe=spe,
        optimizer="nesterov",
    )
    assert built.interval == "step"
    assert lrs[0] == pytest.approx(max_lr / 25)  # starts at max_lr / div_factor
    top = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(max_lr, rel=0.01)
    assert max(lrs) <= max_lr * (1 + 1e-12)
    assert 0.2 * len(lrs) < top < 0.4 * len(lrs)  # pct_start 0.3 by default
    assert all(a <= b + 1e-15 for a, b in zip(lrs[:top], lrs[1 : top + 1]))  # rises...
    assert all(
        a >= b - 1e-15 for a, b in zip(lrs[top:], lrs[top + 1 :])
    )  # ...then falls, to the end
    # After the trial's last step the rate is the cycle's final minimum, max_lr/(div*final_div):
    # not one step beyond it (negative for linear annealing, climbing back for cosine).
    assert lrs[-1] == pytest.approx(max_lr / (25 * 1e4), rel=1e-6)
    assert ends[-1] == lrs[-1] > 0


def test_one_cycle_options_pass_through_to_torch():
    lrs, _, _ = run_schedule(
        ScheduleSpec("one_cycle", {"div_factor": 10, "final_div_factor": 100, "pct_start": 0.5}),
        1.0,
        epochs=4,
        spe=5,
    )
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[-1] == pytest.approx(1.0 / 1000, rel=1e-6)
    assert abs(lrs.index(max(lrs)) - 10) <= 1


def test_one_cycle_cycles_momentum_only_where_the_optimizer_has_it():
    opt = _optimizer("nesterov", 0.1)
    sched = build_schedule(ScheduleSpec("one_cycle"), opt, lr=0.1, epochs=2, steps_per_epoch=10)
    moms = []
    for _ in range(20):
        opt.step()
        sched.after_step()
        moms.append(opt.param_groups[0]["momentum"])
    assert min(moms) < 0.9 and max(moms) > 0.9  # 0.95 -> 0.85 -> 0.95
    plain = _optimizer("sgd", 0.1)
    sched = build_schedule(ScheduleSpec("one_cycle"), plain, lr=0.1, epochs=2, steps_per_epoch=10)
    for _ in range(20):
        plain.step()
        sched.after_step()
        assert plain.param_groups[0]["momentum"] == 0  # plain SGD stays plain SGD


# -- cosine ---------------------------------------------------------------------------------------


def test_cosine_anneals_over_the_trial_to_eta_min():
    lr, eta_min, epochs, spe = 0.1, 1e-3, 5, 8
    lrs, ends, built = run_schedule(
        ScheduleSpec("cosine", {"eta_min": eta_min}), lr, epochs=epochs, spe=spe
    )
    assert built.interval == "step"
    total = epochs * spe
    assert lrs[0] == pytest.approx(lr)
    assert lrs[total // 2] == pytest.approx((lr + eta_min) / 2, rel=1e-6)
    assert lrs[-1] == pytest.approx(eta_min, rel=1e-6)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    for e, v in enumerate(ends, 1):
        expected = eta_min + 0.5 * (lr - eta_min) * (1 + math.cos(math.pi * e / epochs))
        assert v == pytest.approx(expected, rel=1e-6)


def test_cosine_epochs_option_sets_the_period():
    lrs, _, _ = run_schedule(ScheduleSpec("cosine", {"epochs": 2}), 0.1, epochs=4, spe=5)
    assert lrs[10] == pytest.approx(0.0, abs=1e-12)
    assert lrs[5] == pytest.approx(0.05)


def test_cosine_warm_restarts_restart_to_the_peak_after_t0_steps():
    lr, eta_min, spe = 0.1, 1e-3, 6
    lrs, _, _ = run_schedule(
        ScheduleSpec("cosine_warm_restarts", {"t0_epochs": 1, "T_mult": 2, "eta_min": eta_min}),
        lr,
        epochs=7,
        spe=spe,
    )
    t0 = spe
    assert lrs[0] == pytest.approx(lr)
    assert lrs[t0 - 1] < 0.1 * lr  # annealed nearly to eta_min...
    assert lrs[t0] == pytest.approx(lr)  # ...then back to the peak at T_0 steps
    assert lrs[t0 + t0] == pytest.approx(
        (lr + eta_min) / 2, rel=1e-6
    )  # the second period is 2*T_0
    assert lrs[3 * t0] == pytest.approx(lr)  # restart after T_0 + 2*T_0
    assert lrs[7 * t0] == pytest.approx(lr)  # and after T_0 + 2*T_0 + 4*T_0
    restarts = [k for k in range(1, len(lrs)) if lrs[k] > lrs[k - 1]]
    assert restarts == [t0, 3 * t0, 7 * t0]
    assert min(lrs) >= eta_min


def test_cosine_warm_restarts_t0_in_steps():
    lrs, _, _ = run_schedule(
        ScheduleSpec("cosine_warm_restarts", {"T_0": 4, "T_mult": 1}), 0.1, epochs=2, spe=6
    )
    assert [k for k in range(1, len(lrs)) if lrs[k] > lrs[k - 1]] == [4, 8, 12]


# -- optimizers -----------------------------------------------------------------------------------

EXPECTED_OPTIMIZERS = {
    "sgd": (torch.optim.SGD, {"momentum": 0}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9, "nesterov": False}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {}),
    "adadelta": (torch.optim.Adadelta, {}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "schedulefree_adamw": (schedulefree.AdamWScheduleFree, {}),
    "schedulefree_sgd": (schedulefree.SGDScheduleFree, {}),
    "prodigy": (prodigyopt.Prodigy, {}),
    "dadapt_adam": (dadaptation.DAdaptAdam, {}),
    "dadapt_sgd": (dadaptation.DAdaptSGD, {}),
    "dog": (dog.DoG, {}),
    "ldog": (dog.LDoG, {}),
}


def test_optimizer_registry_is_torchs_eight_and_the_self_tuning_seven():
    assert set(OPTIMIZERS) == set(EXPECTED_OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(EXPECTED_OPTIMIZERS))
def test_every_optimizer_builds_and_takes_a_step(name):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = build_optimizer(name, model.parameters(), 0.05)
    cls, defaults = EXPECTED_OPTIMIZERS[name]
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.05
    for k, v in defaults.items():
        assert opt.param_groups[0][k] == v
    set_training(model, opt, True)  # Schedule-Free steps only in its train mode
    x = torch.randn(16, 4)
    before = [p.detach().clone() for p in model.parameters()]
    model(x).square().mean().backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_optimizer_kwargs_override_defaults():
    opt = build_optimizer(
        "momentum", nn.Linear(2, 1).parameters(), 0.1, momentum=0.5, weight_decay=1e-4
    )
    assert opt.param_groups[0]["momentum"] == 0.5
    assert opt.param_groups[0]["weight_decay"] == 1e-4


def test_unknown_optimizer_is_config_error_listing_choices():
    with pytest.raises(ConfigError, match="unknown optimizer 'lion'") as e:
        build_optimizer("lion", nn.Linear(2, 1).parameters(), 0.1)
    for name in EXPECTED_OPTIMIZERS:
        assert name in str(e.value)


@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan")])
def test_non_positive_lr_is_config_error(lr):
    with pytest.raises(ConfigError, match="learning rate must be positive"):
        build_optimizer("adam", nn.Linear(2, 1).parameters(), lr)


def test_option_the_optimizer_does_not_take_is_config_error():
    with pytest.raises(ConfigError, match="adagrad"):
        build_optimizer("adagrad", nn.Linear(2, 1).parameters(), 0.1, momentum=0.9)
