"""The planned comparisons against scipy's tests and the binomial power they claim."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from lrbench.report._planned import (
    VS_BEST,
    VS_CONTROL,
    default_control,
    detectable_share,
    planned_comparisons,
)
from lrbench.report._stats import holm


def _results(
    epochs: dict[str, list[float]], values: dict[str, list[float]], budget: float = 30.0
) -> pd.DataFrame:
    """`load_results`-like rows: one per (strategy, seed)."""
    return pd.DataFrame(
        [
            {
                "strategy": s,
                "strategy_name": "fixed" if s == "fixed" else "grid",
                "seed": seed,
                "epochs_to_target": float(e),
                "best_val": float(values[s][seed]),
                "status": "complete",
                "budget_epochs": budget,
                "direction": "minimize",
            }
            for s, column in epochs.items()
            for seed, e in enumerate(column)
        ]
    )


RNG = np.random.default_rng(7)
N = 20
CONTROL = RNG.integers(10, 20, N).astype(float)
EPOCHS = {
    "fixed": list(CONTROL),
    "fast": list(CONTROL - RNG.integers(2, 6, N)),  # fewer epochs on every seed
    "same": list(CONTROL + RNG.choice([-1.0, 1.0], N)),  # half a step either way
    "never": [math.inf] * N,  # misses every time
}
VALUES = {s: list(100 + np.asarray(e, float).clip(max=40) / 10) for s, e in EPOCHS.items()}


def test_each_strategy_is_tested_against_the_control_and_the_best_with_scipy_and_holm():
    planned = planned_comparisons(_results(EPOCHS, VALUES))
    assert planned is not None and planned.control == "fixed" and planned.best == "fast"
    t = planned.comparisons
    # k - 1 against the control, k - 1 against the best: 6 comparisons for 4 strategies.
    assert len(t) == 6 and set(t["question"]) == {VS_CONTROL, VS_BEST}
    capped = {s: np.where(np.isfinite(e), e, 60.0) for s, e in EPOCHS.items()}
    row = t[(t["strategy"] == "fast") & (t["question"] == VS_CONTROL)].iloc[0]
    expected = scipy.stats.wilcoxon(capped["fast"], capped["fixed"], alternative="less").pvalue
    assert row["p"] == pytest.approx(expected)
    assert row["fewer"] == N and row["share_fewer"] == 1.0
    assert row["share_low"] == row["share_high"] == 1.0  # no spread
    assert list(t["p_holm"]) == pytest.approx(list(holm(t["p"].to_numpy(float))))
    assert row["verdict"] == "fewer epochs than the control"
    never = t[(t["strategy"] == "never") & (t["question"] == VS_CONTROL)].iloc[0]
    assert never["share_fewer"] == 0.0 and never["verdict"] == "not shown better"
    behind = t[(t["strategy"] == "never") & (t["question"] == VS_BEST)].iloc[0]
    assert behind["verdict"] == "behind the best"


def test_a_strategy_no_different_from_the_control_reads_not_shown_better_with_a_wide_interval():
    t = planned_comparisons(_results(EPOCHS, VALUES)).comparisons
    same = t[(t["strategy"] == "same") & (t["question"] == VS_CONTROL)].iloc[0]
    assert same["verdict"] == "not shown better"
    assert same["share_low"] < 0.5 < same["share_high"]  # the interval holds "no difference"
    # The median paired difference of the best value, signed to favour the strategy when < 0.
    diff = np.asarray(VALUES["same"]) - np.asarray(VALUES["fixed"])
    assert same["value_diff"] == pytest.approx(np.median(diff))
    assert same["value_low"] <= same["value_diff"] <= same["value_high"]


def test_the_intervals_are_reproducible():
    a = planned_comparisons(_results(EPOCHS, VALUES)).comparisons
    b = planned_comparisons(_results(EPOCHS, VALUES)).comparisons
    pd.testing.assert_frame_equal(a, b)


def test_five_seeds_cannot_reach_significance_and_the_report_says_so():
    five = {s: e[:5] for s, e in EPOCHS.items()}
    planned = planned_comparisons(_results(five, {s: v[:5] for s, v in VALUES.items()}))
    assert planned.seeds == 5 and planned.detectable is None
    assert (planned.comparisons["p_holm"] >= 0.05).all()  # by construction, whatever the data


@pytest.mark.parametrize("n, m", [(10, 2), (20, 6), (20, 36), (40, 36)])
def test_the_detectable_share_is_where_the_sign_tests_power_reaches_80_percent(n, m):
    share = detectable_share(n, m)
    level = 0.05 / m
    critical = min(c for c in range(n + 1) if scipy.stats.binom.sf(c - 1, n, 0.5) <= level)
    assert scipy.stats.binom.sf(critical - 1, n, share) == pytest.approx(0.8, abs=1e-6)
    assert scipy.stats.binom.sf(critical - 1, n, share - 0.01) < 0.8


def test_more_seeds_detect_smaller_effects():
    shares = [detectable_share(n, 36) for n in (10, 20, 40, 80)]
    assert shares == sorted(shares, reverse=True) and shares[-1] < 0.75


def test_the_control_is_the_declared_one_else_fixed():
    r = _results(EPOCHS, VALUES)
    assert default_control(r) == "fixed"
    r["control"] = "same"
    assert default_control(r) == "same"
    assert planned_comparisons(r).control == "same"
    no_fixed = r[r["strategy"] != "fixed"].drop(columns="control")
    assert default_control(no_fixed) is None and planned_comparisons(no_fixed) is None


def test_where_the_control_is_the_best_only_the_control_question_is_asked():
    epochs = {"fixed": EPOCHS["fast"], "slow": EPOCHS["fixed"]}
    values = {"fixed": VALUES["fast"], "slow": VALUES["fixed"]}
    planned = planned_comparisons(_results(epochs, values))
    assert planned.best == planned.control == "fixed"
    assert list(planned.comparisons["question"]) == [VS_CONTROL]
