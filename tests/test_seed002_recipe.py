"""Seed 002's cosine recipe, as its author's source runs it (`CosineScheduler` in
`FinalProj/src/cosine_annealing_{50,100,200,400}.py` of fujiwat/DLBasic_2023_MyProject): peak
0.001, a 5-epoch warm-up that multiplies the rate by min(1, (epoch + 1) / 5), a cosine over
clip((epoch - 5) / (N - 5), 0, 1), the rate set once per epoch; and a fresh Adam every epoch,
the strategies' `optimizer_reset` option."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch

from lrbench.errors import ConfigError
from lrbench.storage.records import record_attrs
from lrbench.strategies import STRATEGIES, RunContext, get_strategy
from lrbench.tasks import get_task
from lrbench.tools import ScheduleSpec, replay_schedule

optuna.logging.set_verbosity(optuna.logging.WARNING)

PEAK = 0.001
EPS = np.finfo(np.float64).eps


def seed_rate(epoch: int, n_epochs: int, peak: float = PEAK, warmup: int = 5) -> float:
    """The seed's rate for epoch `epoch` (from 0), evaluated the way its source does, in numpy."""
    progress = np.clip((epoch - warmup) / (n_epochs - warmup), 0.0, 1.0)
    rate = peak * 0.5 * (1.0 + np.cos(np.pi * progress))
    return float(rate * min(1.0, (epoch + 1) / warmup)) if warmup else float(rate)


def per_epoch(n_epochs: int, spe: int = 3, **options) -> list[float]:
    """The rate of every epoch, and after the last, from the schedule stepped as the engine
    steps it; every step of an epoch must use its epoch's rate."""
    spec = ScheduleSpec("seed002_cosine", options)
    steps = replay_schedule(spec, PEAK, epochs=n_epochs, steps_per_epoch=spe, optimizer="adam")
    for e in range(n_epochs):
        assert len(set(steps[e * spe : (e + 1) * spe])) == 1, f"epoch {e} changed its rate"
    return steps[::spe]


# The two evaluations differ by their cosines' rounding (each within an ulp of 1, at most two
# together) and a few roundings of products below the peak: 8 ulps of the peak bounds both.
AT_FLOAT64 = 8 * EPS * PEAK


def test_every_epoch_of_the_50_epoch_recipe_is_the_seeds_formula():
    rates = per_epoch(50)
    assert len(rates) == 51
    expected = [seed_rate(e, 50) for e in range(51)]
    assert max(abs(a - b) for a, b in zip(rates, expected)) <= AT_FLOAT64
    # The warm-up at full cosine height: 1/5, 2/5, ... of the peak, then the peak twice.
    assert rates[:6] == pytest.approx(
        [PEAK * k / 5 for k in (1, 2, 3, 4, 5)] + [PEAK], abs=AT_FLOAT64
    )
    assert rates[50] == 0.0  # after the last epoch: the cosine's end


@pytest.mark.parametrize("n_epochs", [100, 200, 400])
def test_the_longer_recipes_at_spot_epochs(n_epochs):
    rates = per_epoch(n_epochs, spe=1)
    for e in (0, 4, 5, 6, n_epochs // 4, n_epochs // 2, n_epochs - 1, n_epochs):
        assert abs(rates[e] - seed_rate(e, n_epochs)) <= AT_FLOAT64, e


@pytest.mark.parametrize(
    "n_epochs, logged",
    [
        # The rates the seed's run logs print (`lr=%.8lf`, FinalProj/xprint20230728.txt for 400,
        # xprint20230729.txt for the others), by the log's 1-based EPOCH number.
        (50, {1: 0.0002, 5: 0.001, 6: 0.001, 7: 0.00099878, 25: 0.00062096, 49: 0.00000487}),
        (100, {7: 0.00099973, 25: 0.00090451, 50: 0.00055774, 99: 0.00000109, 100: 0.00000027}),
        (200, {7: 0.00099994, 50: 0.00087955, 100: 0.00052818, 150: 0.00015949}),
        (400, {7: 0.00099998, 100: 0.00086665, 200: 0.00051392, 300: 0.00015283}),
    ],
)
def test_the_rates_the_seeds_logs_print(n_epochs, logged):
    rates = per_epoch(n_epochs, spe=1)
    for epoch, rate in logged.items():
        assert abs(rates[epoch - 1] - rate) <= 5e-9 + AT_FLOAT64, epoch  # printed to 1e-8


def test_the_warmup_option_and_no_warmup():
    assert per_epoch(20, warmup=2) == pytest.approx(
        [seed_rate(e, 20, warmup=2) for e in range(21)], abs=AT_FLOAT64
    )
    assert per_epoch(20, warmup=0) == pytest.approx(
        [seed_rate(e, 20, warmup=0) for e in range(21)], abs=AT_FLOAT64
    )


@pytest.mark.parametrize("options", [{"warmup": 5}, {"warmup": 7}, {"warmup": -1}])
def test_a_trial_no_longer_than_the_warmup_is_refused(options):
    # The seed's formula divides by N - warmup; below it the clip turns the rate to 0.
    with pytest.raises(ConfigError, match="seed002_cosine.*warmup must be at least 0 and below"):
        per_epoch(5, **options)


# -- the cosine strategy trains it --------------------------------------------------------------


def digits_run(strategy, epochs: int = 7) -> tuple[RunContext, optuna.trial.FrozenTrial]:
    task = get_task("digits")
    ctx = RunContext(
        task,
        task.prepare(torch.device("cpu")),
        optuna.create_study(direction=task.direction),
        budget_epochs=epochs,
        epochs_per_trial=epochs,
    )
    strategy.run(ctx)
    (trial,) = ctx.study.get_trials(deepcopy=False)
    return ctx, trial


def test_cosine_with_the_seeds_schedule_records_the_seeds_rate_every_epoch():
    _, trial = digits_run(get_strategy("cosine", schedule="seed002_cosine", lr=PEAK))
    record = record_attrs(trial.user_attrs)
    assert trial.params["lr"] == PEAK and record["schedule"] == "seed002_cosine"
    # Each epoch's record holds the rate after it: the next epoch's (0 after the last).
    recorded = [h["lr"] for h in record["history"]]
    assert len(recorded) == 7
    assert max(abs(r - seed_rate(e + 1, 7)) for e, r in enumerate(recorded)) <= AT_FLOAT64


def test_seed002_cosine_anneals_to_zero_so_eta_min_is_refused():
    with pytest.raises(ConfigError, match="strategy 'cosine': eta_min is for schedule cosine"):
        get_strategy("cosine", schedule="seed002_cosine", eta_min=1e-5)


# -- optimizer_reset -----------------------------------------------------------------------------

WITH_RESET = {
    "fixed",
    "step",
    "exp",
    "cosine",
    "sgdr",
    "warmup_cosine",
    "wsd",
    "constant_cooldown",
}


def test_the_strategies_that_train_one_configuration_take_optimizer_reset():
    assert {n for n in STRATEGIES if "optimizer_reset" in get_strategy(n).options} == WITH_RESET
    for name in WITH_RESET:
        assert get_strategy(name).options["optimizer_reset"] == "none"


@pytest.mark.parametrize("name", sorted(WITH_RESET))
def test_optimizer_reset_goes_to_the_trial(name):
    assert get_strategy(name).trial_options(None) == {"optimizer_reset": "none"}
    asked = get_strategy(name, optimizer_reset="epoch").trial_options(None)
    assert asked == {"optimizer_reset": "epoch"}


def test_an_unknown_reset_is_refused_naming_the_choices():
    with pytest.raises(
        ConfigError, match="strategy 'fixed': unknown optimizer_reset 'batch'"
    ) as e:
        get_strategy("fixed", optimizer_reset="batch")
    assert "none, epoch" in str(e.value)


def test_a_reset_every_epoch_trains_a_fresh_adam_after_the_first_epoch():
    _, kept = digits_run(get_strategy("fixed", lr=1e-2), epochs=3)
    _, reset = digits_run(get_strategy("fixed", lr=1e-2, optimizer_reset="epoch"), epochs=3)
    kept, reset = record_attrs(kept.user_attrs), record_attrs(reset.user_attrs)
    assert reset["optimizer_reset"] == "epoch" and kept["optimizer_reset"] == "none"
    # The same first epoch (the reset comes after it), then Adam starts again: other steps
    # (digits' accuracy is too coarse to tell them apart; the epoch's mean training loss is not).
    losses = [[h["train_loss"] for h in r["history"]] for r in (kept, reset)]
    assert losses[0][0] == losses[1][0]
    assert losses[0][1] != losses[1][1] and losses[0][2] != losses[1][2]
