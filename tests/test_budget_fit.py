"""lrbench.running._budget_fit: what each strategy's design needs from a budget, and the exact words
`lrbench run` and the report use when the budget does not hold it."""

from __future__ import annotations

import pytest

from lrbench.running import load_suite
from lrbench.running._budget_fit import (
    budget_warnings,
    check,
    design_need,
    run_fit,
    sigdigit_first_round,
    suite_fits,
)
from lrbench.storage.records import RunKeys, RunRecord

# The committed quick suite's old VAE sizing: 18 epochs at 6 per trial, range [1e-5, 1e-2]
# (sigdigit's first round 0.009 ... 0.001: 9 trials, of which 3 fit).
SUITE = """
[suite]
name = "fit"
seeds = [0]
budget_epochs = 18

[tasks.vae]
task = "digits"
epochs_per_trial = 6
low = 1e-5
high = 1e-2

[tasks.roomy]
task = "digits"
epochs_per_trial = 1
low = 1e-5
high = 1e-2
budget_epochs = 70

[[strategies]]
name = "sigdigit"

[[strategies]]
name = "grid"
n = 6

[[strategies]]
name = "tpe"
n_startup_trials = 3

[[strategies]]
name = "random"

[[strategies]]
name = "one_cycle"
num_iter = 50

[[strategies]]
name = "fixed"
"""


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "fit.toml"
    path.write_text(SUITE)
    return load_suite(path)


def test_a_budget_that_cannot_hold_sigdigits_first_round(suite):
    assert budget_warnings(suite) == [
        "vae/sigdigit: 3 of 9 first-round trials within budget (18 epochs at 6 per trial)",
        "vae/grid: 3 of 6 grid points within budget (18 epochs at 6 per trial)",
        "vae/tpe: 3 of 4 trials (startup + 1 model-chosen) within budget "
        "(18 epochs at 6 per trial)",
    ]
    assert budget_warnings(suite.path) == budget_warnings(suite)  # a path works too


def test_what_fits_and_the_report_cells(suite):
    fits = {f.need.label: f for f in suite_fits(suite)}
    sig = fits["vae/sigdigit"]
    assert (sig.held, sig.fits, sig.full, sig.short) == (
        3,
        False,
        False,
        "3 of 9 first-round trials",
    )
    assert fits["vae/random"].fits and fits["vae/random"].short == "1 trial"
    assert fits["vae/fixed"].full and fits["vae/fixed"].message == ""
    # 70 epochs hold the whole 3-round search: 9 + 2 x 14 + 2 x 14 = 65 trials at most.
    roomy = fits["roomy/sigdigit"]
    assert roomy.need.rounds == (9, 28, 28) and roomy.full and roomy.message == ""
    assert roomy.short == "whole 3-round search (≤ 65 trials)"


def test_sigdigit_rounds_held_when_only_the_first_round_fits():
    need = design_need("sigdigit", {}, low=1e-5, high=1e-2, epochs_per_trial=2)
    fit = check(need, 60)  # 30 trials: round 1 (9) surely, round 2 (up to 28) not surely
    assert fit.fits and not fit.full
    assert fit.message == (
        "sigdigit: first round (9 trials) within budget; the whole 3-round search needs up to "
        "65 trials of 2 epochs, the budget holds 30 (1 of 3 rounds surely)"
    )
    assert fit.short == "first round; 1 of 3 rounds surely"


def test_sigdigit_first_round_follows_the_sampler():
    assert sigdigit_first_round(1e-5, 1e-2) == 9  # 0.009 ... 0.001
    assert sigdigit_first_round(1e-4, 0.05) == 5  # 0.05 ... 0.01
    assert sigdigit_first_round(1e-4, 0.05, decade=1e-3) == 9
    need = design_need("sigdigit", {"k": 1, "digits": 2}, low=1e-4, high=0.05, epochs_per_trial=3)
    assert need.rounds == (5, 14) and need.full_trials == 19


def test_range_test_strategies_count_the_tests_steps():
    need = design_need(
        "one_cycle", {"num_iter": 100}, low=1e-4, high=1, epochs_per_trial=5, steps_per_epoch=10
    )
    assert need.overhead_epochs == 10.0
    assert check(need, 15).fits and check(need, 15).short == "range test + 1 trial of 5 epochs"
    short = check(need, 12)
    assert not short.fits and short.message == (
        "one_cycle: its range test (100 steps = 10.00 epochs) and one 5-epoch trial do not fit "
        "a budget of 12 epochs"
    )
    # A peak rate given: no range test, one trial.
    given = design_need("one_cycle", {"lr": 0.1}, low=1e-4, high=1, epochs_per_trial=5)
    assert given.overhead_steps == 0 and check(given, 5).full
    # Steps per epoch unknown (before the data are loaded): the trial alone is checked.
    unknown = design_need("clr", {}, low=1e-4, high=1, epochs_per_trial=5)
    assert unknown.overhead_epochs is None and check(unknown, 5).fits


def test_a_stored_run_is_checked_from_its_attrs():
    attrs = {
        RunKeys.STRATEGY: "grid-8",
        RunKeys.STRATEGY_NAME: "grid",
        RunKeys.STRATEGY_OPTIONS: {"n": 8},
        RunKeys.LOW: 1e-4,
        RunKeys.HIGH: 1.0,
        RunKeys.EPOCHS_PER_TRIAL: 4,
        RunKeys.BUDGET_EPOCHS: 20,
        RunKeys.STEPS_PER_EPOCH: 30,
    }
    fit = run_fit(RunRecord.from_attrs("s/t/grid-8/seed0", attrs))
    assert fit.message == "grid-8: 5 of 8 grid points within budget (20 epochs at 4 per trial)"
    assert (
        run_fit(RunRecord.from_attrs("s/t/x/seed0", {**attrs, RunKeys.STRATEGY_NAME: "nope"}))
        is None
    )
    assert run_fit(RunRecord.from_attrs("s/t/x/seed0", {})) is None


def test_one_trial_cut_by_the_budget_is_said_as_a_cut_not_as_none_held():
    need = design_need("fixed", {}, low=1e-4, high=1, epochs_per_trial=400)
    fit = check(need, 100)
    assert not fit.fits
    assert fit.message == (
        "fixed: its one trial of 400 epochs is cut by the budget at 100 epochs "
        "(the first 100 epochs of its 400-epoch schedule)"
    )
    assert fit.short == "1 trial, cut at 100 of 400 epochs"
