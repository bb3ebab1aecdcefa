"""The report's numbers against hand computations: Holm's correction, within-seed ranks, the
Friedman and Wilcoxon tests as the report runs them, the interquartile mean and its bootstrap
interval, performance profiles, what may be called significant, rank agreement across ranges,
and how numbers are written."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from lrbench.report._document import _inline_html
from lrbench.report._formatting import (
    fmt,
    fmt_fixed,
    fmt_iqm_ci,
    fmt_median_iqr,
    fmt_p,
    fmt_success,
)
from lrbench.report._stats import (
    MAX_PAIRED_STRATEGIES,
    friedman,
    holm,
    iqm,
    iqm_ci,
    is_significant,
    leader_comparison,
    paired_value_differences,
    performance_profile,
    profile_ratios,
    profile_scores,
    pvalue_matrix,
    range_rank_agreement,
    rank_tests,
    signed_rank_test,
    within_block_ranks,
)

INF = math.inf

# Epochs to target of strategies A, B, C over seeds 0-3 (inf: never reached; budget 10 epochs,
# so an unreached run counts as 2 x 10 = 20 in the Wilcoxon tests). Within-seed ranks, by hand:
#   seed 0:  2,  3, inf  ->  1,   2,   3
#   seed 1:  4,  3,   5  ->  2,   1,   3
#   seed 2:  1, inf,  6  ->  1,   3,   2
#   seed 3:  3, inf, inf ->  1, 2.5, 2.5
# Rank sums 5, 8.5, 10.5: mean ranks 1.25, 2.125, 2.625.
TABLE = {"A": [2, 4, 1, 3], "B": [3, 3, INF, INF], "C": [INF, 5, 6, INF]}
RANKS = [[1, 2, 3], [2, 1, 3], [1, 3, 2], [1, 2.5, 2.5]]
# Friedman, n = 4 seeds, k = 3 strategies, rank sums R = 5, 8.5, 10.5:
#   12 / (n k (k+1)) * sum(R^2) - 3 n (k+1) = 0.25 * 207.5 - 48 = 3.875,
#   divided by the tie correction 1 - sum(t^3 - t) / (n (k^3 - k)) = 1 - 6 / 96 = 0.9375.
FRIEDMAN_STATISTIC = 3.875 / 0.9375
FRIEDMAN_P = math.exp(-FRIEDMAN_STATISTIC / 2)  # chi-squared survival function, 2 dof


def _results(table: dict[str, list[float]], budget: float = 10.0) -> pd.DataFrame:
    """`load_results`-like rows (only the columns rank_tests reads), one per (strategy, seed)."""
    return pd.DataFrame(
        [
            {
                "strategy": s,
                "seed": seed,
                "epochs_to_target": float(v),
                "status": "complete",
                "budget_epochs": budget,
            }
            for s, values in table.items()
            for seed, v in enumerate(values)
        ]
    )


# -- Holm ----------------------------------------------------------------------------------------


def test_holm_adjusts_step_down_by_hand():
    # Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> 0.06 (monotone).
    assert holm(np.array([0.01, 0.04, 0.03, 0.005])) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_leaves_nan_out_of_the_count():
    assert holm(np.array([0.5, 0.6])) == pytest.approx([1.0, 1.0])
    adj = holm(np.array([0.01, math.nan, 0.04]))  # two tests, not three
    assert adj[0] == pytest.approx(0.02) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.04)
    assert holm(np.array([0.02])) == pytest.approx([0.02])
    assert len(holm(np.array([]))) == 0


# -- ranks and the Friedman test ----------------------------------------------------------------


def test_within_block_ranks_share_ties():
    values = np.column_stack([TABLE[s] for s in "ABC"])
    values[~np.isfinite(values)] = 20.0
    assert within_block_ranks(values).tolist() == RANKS


def test_friedman_statistic_and_p_value_by_hand():
    res = friedman(np.array(RANKS, float))
    assert res["statistic"] == pytest.approx(FRIEDMAN_STATISTIC, rel=1e-12)  # 4.1333...
    assert res["pvalue"] == pytest.approx(FRIEDMAN_P, rel=1e-9)  # 0.1266...


def test_friedman_is_not_computed_when_every_block_ties():
    res = friedman(np.full((4, 3), 2.0))
    assert math.isnan(res["statistic"]) and res["note"] == "every seed ties all strategies"


# -- rank_tests: the report's whole comparison of one task --------------------------------------


def test_rank_tests_on_a_hand_made_table():
    results = _results(TABLE)
    # A fifth seed that C did not complete: not a block (every strategy needs its run).
    extra = _results({"A": [0, 0, 0, 0, 1], "B": [0, 0, 0, 0, 1], "C": [0, 0, 0, 0, 1]}).iloc[
        [4, 9, 14]
    ]
    extra.loc[extra["strategy"] == "C", "status"] = "running"
    res = rank_tests(pd.concat([results, extra], ignore_index=True))

    assert res["seeds"] == [0, 1, 2, 3] and res["strategies"] == ["A", "B", "C"]
    assert res["mean_ranks"] == pytest.approx({"A": 1.25, "B": 2.125, "C": 2.625})
    assert res["friedman"]["statistic"] == pytest.approx(FRIEDMAN_STATISTIC, rel=1e-12)
    assert res["friedman"]["pvalue"] == pytest.approx(FRIEDMAN_P, rel=1e-9)

    w = res["wilcoxon"].set_index(["A", "B"])
    # A - C = 2-20, 4-5, 1-6, 3-20 = -18, -1, -5, -17: A faster on every seed, no tie among the
    # |differences|: signed-rank statistic 0, exact two-sided p = 2 / 2^4 = 0.125.
    ac = w.loc[("A", "C")]
    assert (ac["pairs"], ac["A fewer epochs"], ac["B fewer epochs"], ac["ties"]) == (4, 4, 0, 0)
    assert ac["statistic"] == 0 and ac["pvalue"] == pytest.approx(0.125)
    # B - C = 3-20, 3-5, 20-6, 20-20: one tie (both unreached), dropped from the test.
    bc = w.loc[("B", "C")]
    assert (bc["A fewer epochs"], bc["B fewer epochs"], bc["ties"]) == (2, 1, 1)
    # The unreached runs enter the Wilcoxon tests as 2 x budget = 20 epochs.
    from scipy.stats import wilcoxon

    ab = w.loc[("A", "B")]
    assert ab["pvalue"] == pytest.approx(wilcoxon([2, 4, 1, 3], [3, 3, 20, 20]).pvalue)
    # Holm over the three pairs: the smallest p (A-C, 0.125) is multiplied by 3.
    assert min(w["pvalue"]) == pytest.approx(0.125)
    assert ac["pvalue_holm"] == pytest.approx(0.375)
    assert list(w["pvalue_holm"]) == pytest.approx(list(holm(w["pvalue"].to_numpy())))


def test_rank_tests_with_two_strategies_skip_friedman():
    res = rank_tests(_results({"A": TABLE["A"], "C": TABLE["C"]}))
    assert res["friedman"] is None
    assert res["mean_ranks"] == pytest.approx({"A": 1.0, "C": 2.0})
    assert len(res["wilcoxon"]) == 1 and res["wilcoxon"]["pvalue_holm"][0] == pytest.approx(0.125)


def test_rank_tests_say_why_they_did_not_run():
    two_seeds = rank_tests(_results({s: v[:2] for s, v in TABLE.items()}))
    assert two_seeds["reason"] == "needs ≥ 3 seeds completed by every strategy (have 2)"
    assert two_seeds["friedman"] is None and two_seeds["wilcoxon"] is None
    one = rank_tests(_results({"A": TABLE["A"]}))
    assert one["reason"] == "needs ≥ 2 strategies"


def test_the_statistics_need_no_matplotlib():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"  # any import of it now fails
        "import pandas as pd\n"
        "from lrbench.report._stats import rank_tests\n"
        "from lrbench.report._formatting import fmt\n"
        "rows = [dict(strategy=s, seed=k, epochs_to_target=float(k + i), status='complete',\n"
        "             budget_epochs=10.0) for i, s in enumerate('ABC') for k in range(3)]\n"
        "res = rank_tests(pd.DataFrame(rows))\n"
        "assert res['mean_ranks'] == {'A': 1.0, 'B': 2.0, 'C': 3.0}, res\n"
        "print(fmt(res['friedman']['statistic']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "6"  # n = 3 seeds, k = 3, no ties: 12/36 * (9+36+81) - 36 = 6


# -- formatting ----------------------------------------------------------------------------------


def test_fmt_writes_four_significant_digits_or_scientific():
    assert [fmt(0.5), fmt(0.123456), fmt(1234.5), fmt(0)] == ["0.5", "0.1235", "1234", "0"]
    assert [fmt(1e-4), fmt(123456.0), fmt(-2e-5)] == ["1.000e-04", "1.235e+05", "-2.000e-05"]
    assert [fmt(None), fmt(math.nan), fmt(INF), fmt(0.04567, 3)] == ["—", "—", "—", "0.0457"]


def test_fmt_p_and_epochs():
    assert [fmt_p(0.125), fmt_p(0.0123456), fmt_p(1e-5)] == ["0.125", "0.0123", "1.0e-05"]
    assert [fmt_p(None), fmt_p(math.nan)] == ["—", "—"]
    assert fmt_median_iqr([1, 2, 3, 4, 5]) == "3.0 [2.0–4.0]"
    assert fmt_median_iqr([2, 4, 6, INF, INF]) == "6.0 [4.0–—]"  # upper quartile unreached
    assert fmt_median_iqr([1, INF, INF]) == "not reached"


def test_fmt_fixed_keeps_the_train_commands_columns():
    assert [fmt_fixed(0.5), fmt_fixed(12.25), fmt_fixed(None)] == ["0.5000", "12.2500", "-"]
    assert [fmt_fixed(1.5e-5), fmt_fixed(123456.0)] == ["1.5e-05", "1.235e+05"]


def test_inline_html_escapes_then_marks_code_and_bold():
    assert _inline_html("a < b, `x&y` and **bold**") == (
        "a &lt; b, <code>x&amp;y</code> and <strong>bold</strong>"
    )


# -- the interquartile mean and its bootstrap interval -------------------------------------------


def test_iqm_by_hand():
    # n = 8: floor(8/4) = 2 dropped at each end, the mean of 3, 4, 5, 6.
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5
    # n = 5: one dropped at each end, the mean of 4, 6, 8.
    assert iqm([2, 4, 6, 8, 10]) == 6.0
    # n = 6: floor(1.5) = 1 dropped at each end: 2, 3, 4, 5 -> 3.5 (scipy's trim_mean agrees).
    assert iqm([1, 2, 3, 4, 5, 6]) == 3.5 == scipy.stats.trim_mean([1, 2, 3, 4, 5, 6], 0.25)
    # Fewer than four runs: nothing is dropped.
    assert iqm([1, 2, 6]) == 3.0


def test_iqm_with_ties():
    # 3, 3, 3, 3 survive the trim of 1, 3, 3, 3, 3, 10.
    assert iqm([3, 10, 3, 1, 3, 3]) == 3.0
    # 4, 4, 8, 8 survive the trim of 4 x 4 and 4 x 8 (2 dropped at each end).
    assert iqm([4, 8, 4, 8, 4, 8, 4, 8]) == 6.0
    assert iqm([7, 7, 7, 7, 7]) == 7.0


def test_iqm_counts_misses_as_infinite():
    # One miss in five: floor(5/4) = 1 dropped at the top, so the miss goes: 4, 6, 8 -> 6.
    assert iqm([2, 4, 6, 8, INF]) == 6.0
    # Two misses in eight (a quarter): both trimmed: 3, 4, 5, 6 -> 4.5.
    assert iqm([1, 2, 3, 4, 5, 6, INF, INF]) == 4.5
    # Two misses in five, more than a quarter: one survives the trim, the IQM is infinite.
    assert iqm([2, 4, 6, INF, INF]) == INF
    assert iqm([INF] * 4) == INF
    assert math.isnan(iqm([]))


def test_iqm_ci_is_reproducible_and_brackets_the_iqm():
    sample = [12, 9, 15, 11, 10, 14, 13, 8, 30, 11]
    lo, hi = iqm_ci(sample)
    assert (lo, hi) == iqm_ci(sample)  # fixed random_state
    assert lo <= iqm(sample) <= hi and lo >= 8 and hi <= 30
    # All runs equal: a zero-width interval; fewer than two runs: none.
    assert iqm_ci([5.0, 5.0, 5.0]) == (5.0, 5.0)
    assert all(math.isnan(v) for v in iqm_ci([5.0]))


def test_iqm_ci_with_misses_has_an_infinite_upper_bound():
    lo, hi = iqm_ci([2, 4, 6, 8, INF], n_resamples=500)
    assert math.isfinite(lo) and 2 <= lo <= 6 and hi == INF
    assert iqm_ci([INF, INF, INF, 1.0], n_resamples=500)[1] == INF
    # No miss: finite bounds, never NaN.
    lo, hi = iqm_ci([1, 2, 3, 4, 5, 6, 7, 8], n_resamples=500)
    assert 1 <= lo < hi <= 8


def test_iqm_ci_covers_the_true_iqm_about_95_percent_of_the_time():
    # 200 samples of 20 runs from N(10, 2^2): the true interquartile mean is 10 (symmetric), and
    # a 95% interval should cover it in roughly 95% of the samples.
    rng = np.random.default_rng(12345)
    covered = 0
    for _ in range(200):
        lo, hi = iqm_ci(rng.normal(10.0, 2.0, 20), n_resamples=500)
        covered += lo <= 10.0 <= hi
    assert 0.90 <= covered / 200 <= 0.99, covered


def test_iqm_ci_covers_a_skewed_distributions_iqm():
    # Exponential(1): the mean over its interquartile range, by integration,
    # 2 * [-(x + 1) e^-x] from q1 = ln(4/3) to q3 = ln 4.
    q1, q3 = math.log(4 / 3), math.log(4)
    true = 2 * ((q1 + 1) * math.exp(-q1) - (q3 + 1) * math.exp(-q3))
    rng = np.random.default_rng(7)
    covered = sum(
        lo <= true <= hi
        for lo, hi in (iqm_ci(rng.exponential(1.0, 20), n_resamples=500) for _ in range(200))
    )
    assert 0.90 <= covered / 200 <= 0.99, covered


def test_fmt_iqm_ci_and_success():
    assert fmt_iqm_ci(6.0, 4.25, 7.5) == "6.0 [4.2, 7.5]"
    assert fmt_iqm_ci(6.0, 4.0, INF) == "6.0 [4.0, ∞]"
    assert fmt_iqm_ci(INF, 3.0, INF) == "∞ [3.0, ∞]"
    assert fmt_iqm_ci(5.0, math.nan, math.nan) == "5.0"
    assert fmt_iqm_ci(math.nan, math.nan, math.nan) == "—"
    assert fmt_success(4, 5) == "4/5 (80%)" and fmt_success(0, 0) == "—"


# -- performance profiles ------------------------------------------------------------------------

# Median epochs to target: tasks x strategies. T3: no strategy met the target; D did not run on
# T2 and T3 (NaN). Ratios to the best per task, by hand:
#   T1: A 10/10 = 1, B 20/10 = 2, C inf, D 1;  T2: A 30/15 = 2, B 1, C 1, D inf;  T3: all inf.
MEDIANS = pd.DataFrame(
    {"A": [10, 30, INF], "B": [20, 15, INF], "C": [INF, 15, INF], "D": [10, math.nan, math.nan]},
    index=["T1", "T2", "T3"],
)


def test_profile_ratios_by_hand():
    r = profile_ratios(MEDIANS)
    assert r.loc["T1"].tolist() == [1.0, 2.0, INF, 1.0]
    assert r.loc["T2"].tolist() == [2.0, 1.0, 1.0, INF]
    assert r.loc["T3"].tolist() == [INF] * 4


def test_performance_profile_fractions_at_known_taus():
    p = performance_profile(MEDIANS, [1.0, 1.5, 2.0, 4.0])
    third = 1 / 3
    assert p["A"].tolist() == pytest.approx([third, third, 2 * third, 2 * third])
    assert p["B"].tolist() == pytest.approx([third, third, 2 * third, 2 * third])
    assert p["C"].tolist() == pytest.approx([third] * 4)
    assert p["D"].tolist() == pytest.approx([third] * 4)


def test_profile_scores_are_the_normalised_area():
    # A: T1 (4 - 1)/3 = 1, T2 (4 - 2)/3 = 2/3, T3 0 -> 5/9; B the same; C and D 1/3 each.
    s = profile_scores(MEDIANS, tau_max=4.0)
    assert s.to_dict() == pytest.approx({"A": 5 / 9, "B": 5 / 9, "C": 1 / 3, "D": 1 / 3})
    # The same area by numerical integration of the step-function profile.
    taus = np.linspace(1, 4, 30001)
    prof = performance_profile(MEDIANS, taus)
    area = (prof.iloc[1:].to_numpy() + prof.iloc[:-1].to_numpy()) / 2 * np.diff(taus)[:, None]
    assert (area.sum(axis=0) / 3).tolist() == pytest.approx(s[prof.columns].tolist(), abs=1e-3)


# -- what the report may call significant ---------------------------------------------------------


def test_pvalue_matrix_and_the_leaders_comparison():
    # A beats C on all 8 seeds; B equals A on every seed.
    a = [1, 2, 3, 4, 5, 6, 7, 8]
    res = rank_tests(_results({"A": a, "B": a, "C": [v + 10 for v in a]}))
    m = pvalue_matrix(res["wilcoxon"], res["strategies"])
    assert m.loc["A", "B"] == 1.0  # every pair tied: no test, no evidence
    # Exact p = 2 / 2^8 for A-C and B-C; Holm over the two tested pairs (A-B is untested): x 2.
    assert m.loc["A", "C"] == m.loc["C", "A"] == pytest.approx(2 * 2 / 2**8)
    cmp = leader_comparison(res)
    assert cmp["leader"] == "A"
    assert [s for s, _ in cmp["beaten"]] == ["C"]
    assert [s for s, _ in cmp["not_beaten"]] == ["B"]
    assert not is_significant(math.nan) and not is_significant(0.05) and is_significant(0.049)


def test_range_rank_agreement_by_hand():
    ranks = {
        "r1": pd.Series([1.0, 2.0, 3.0, 4.0], index=list("ABCD")),
        "r2": pd.Series([1.0, 2.0, 4.0, 3.0], index=list("ABCD")),
        "r3": pd.Series([4.0, 3.0, 2.0, 1.0, 5.0], index=list("ABCDE")),
    }
    agree = range_rank_agreement(ranks).set_index(["A", "B"])
    # 6 pairs of strategies: 5 concordant, 1 discordant (C, D): tau = (5 - 1) / 6.
    assert agree.loc[("r1", "r2"), "kendall_tau"] == pytest.approx(2 / 3)
    assert agree.loc[("r1", "r3"), "kendall_tau"] == pytest.approx(-1.0)  # E on r3 only
    assert agree.loc[("r1", "r3"), "strategies"] == 4


# -- "What this shows", from a real storage of hand-written runs ---------------------------------


def _write_run(
    storage,
    strategy: str,
    seed: int,
    reach_epoch: int,
    budget: int = 12,
    task: str = "t",
    high: float = 1.0,
) -> None:
    """One finished run of `task` in suite `syn`: one trial of `budget` epochs whose
    validation value (lower is better) first meets the target 1.0 at epoch `reach_epoch`."""
    import optuna

    from lrbench.storage.records import EpochEntry, RunKeys, TrialRecord, write_run_attrs

    study = optuna.create_study(storage=storage, study_name=f"syn/{task}/{strategy}/seed{seed}")
    write_run_attrs(
        study,
        {
            RunKeys.SUITE: "syn",
            RunKeys.TASK: task,
            RunKeys.TASK_NAME: "digits",
            RunKeys.STRATEGY: strategy,
            RunKeys.STRATEGY_NAME: "fixed",
            RunKeys.SEED: seed,
            RunKeys.BUDGET_EPOCHS: budget,
            RunKeys.EPOCHS_PER_TRIAL: budget,
            RunKeys.TARGET: 1.0,
            RunKeys.DIRECTION: "minimize",
            RunKeys.METRIC: "loss",
            RunKeys.LOW: 1e-4,
            RunKeys.HIGH: high,
            RunKeys.OPTIMIZER: "adam",
            RunKeys.STEPS_PER_EPOCH: 10,
            RunKeys.STATUS: "complete",
            RunKeys.WALL_SECONDS: 1.0,
        },
    )
    vals = [2.0 - e / reach_epoch for e in range(1, budget + 1)]  # 1.0 at epoch reach_epoch
    history = tuple(
        EpochEntry(e, v, v, 0.01, 10 * e, float(e), 0.1, 0.0) for e, v in enumerate(vals, 1)
    )
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(0.01, 0.01, log=True)})
    TrialRecord(
        epochs=float(budget),
        steps=10 * budget,
        planned_epochs=budget,
        best_val=min(vals),
        best_epoch=budget,
        seconds=1.0,
        eval_seconds=0.0,
        schedule="constant",
        optimizer="adam",
        phase="train",
        history=history,
    ).write(trial)
    study.tell(trial, min(vals))


def _what_this_shows(md: str) -> str:
    start = md.index("### What this shows")
    return md[start : md.index("\n## ", start)]


def test_what_this_shows_never_calls_identical_strategies_different(tmp_path):
    import optuna

    from lrbench.report import make_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    reach = [2, 3, 4, 5, 6, 7, 8, 9]  # 8 seeds; "same" is "twin" run for run
    for seed, r in enumerate(reach):
        _write_run(storage, "twin", seed, r)
        _write_run(storage, "same", seed, r)
    text = _what_this_shows(make_report("syn", storage=storage, out=tmp_path).read_text())
    assert "significantly" not in text and "smallest possible" not in text  # 8 seeds: 0.0078
    assert "No significant difference between twin (best mean rank) and same" in text


def test_what_this_shows_names_a_difference_the_test_supports(tmp_path):
    import optuna

    from lrbench.report import make_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    for seed, r in enumerate([2, 3, 4, 5, 6, 7, 8, 9]):
        _write_run(storage, "twin", seed, r)
        _write_run(storage, "same", seed, r)
        _write_run(storage, "slow", seed, r + 2)  # slower on every seed
    text = _what_this_shows(make_report("syn", storage=storage, out=tmp_path).read_text())
    # twin vs slow: exact p = 2 / 2^8, Holm x 2 (the twin-same pair ties: untested).
    assert "twin, needs significantly fewer epochs than slow (p = 0.0156)" in text
    assert "No significant difference between twin (best mean rank) and same" in text
    assert "same, needs significantly" not in text


def test_profiles_and_range_sensitivity_sections(tmp_path):
    import optuna

    from lrbench.report import make_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    # Two labels of the same task (digits, no options) under two ranges; the order of the
    # three strategies is A, B, C on the first and C, B, A on the second: Kendall's tau = -1.
    for seed in range(5):
        for strategy, r1, r2 in (("A", 2, 6), ("B", 4, 4), ("C", 6, 2)):
            _write_run(storage, strategy, seed, r1, task="t")
            _write_run(storage, strategy, seed, r2, task="t_high", high=10.0)
    md = make_report("syn", storage=storage, out=tmp_path).read_text()
    assert "## Across tasks: performance profiles" in md
    assert (tmp_path / "performance_profiles.png").exists()
    # Each strategy is best on one task and 3x the best on the other: (4 - 1)/3 and (4 - 3)/3.
    profiles = md[md.index("## Across tasks") : md.index("## Range sensitivity")]
    scores = {
        ln.split("|")[1].strip(): ln.split("|")[2].strip()
        for ln in profiles.splitlines()
        if ln.startswith("| ") and ln.split("|")[1].strip() in "ABC"
    }
    # B is twice the best on both tasks: (4 - 2)/3 on each.
    assert scores == {"A": "0.667", "B": "0.667", "C": "0.667"}
    section = md[md.index("## Range sensitivity") :]
    assert "| t | t_high | 3 | -1.00 |" in section
    assert "| A | 1 | 3 |" in section and "| C | 3 | 1 |" in section


def test_what_this_shows_says_when_too_few_seeds_allow_no_significance(tmp_path):
    import optuna

    from lrbench.report import make_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    for seed, r in enumerate([2, 3, 4, 5]):  # 4 seeds; "slow" is slower on every one
        _write_run(storage, "fast", seed, r)
        _write_run(storage, "slow", seed, r + 4)
    text = _what_this_shows(make_report("syn", storage=storage, out=tmp_path).read_text())
    assert "the smallest possible two-sided Wilcoxon p-value is 2/2^4 = 0.125" in text
    assert "significantly fewer" not in text
    assert "No significant difference between fast (best mean rank) and slow (p = 0.125)" in text
    assert "Only 4 seed(s): fewer than 5, so no claim." in text


def _best_values(values: dict[str, list[float]], status: str = "complete") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"strategy": name, "seed": seed, "status": status, "best_val": v}
            for name, vals in values.items()
            for seed, v in enumerate(vals)
        ]
    )


def test_paired_differences_are_the_hand_computed_t_interval_per_pair():
    a, b = [233.9, 234.4, 234.0], [235.1, 234.9, 235.6]
    out = paired_value_differences(_best_values({"with": a, "without": b}), "minimize")
    (row,) = out.itertuples()
    d = np.subtract(a, b)
    half = scipy.stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert (row.first, row.second, row.seeds) == ("with", "without", 3)
    assert row.mean == pytest.approx(d.mean())
    assert (row.ci_low, row.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert (row.median, row.min, row.max) == pytest.approx((np.median(d), d.min(), d.max()))
    assert row.first_better == 3
    # Maximising, the same differences favour the second.
    (row,) = paired_value_differences(
        _best_values({"with": a, "without": b}), "maximize"
    ).itertuples()
    assert row.first_better == 0


def test_paired_differences_use_only_seeds_both_completed_and_only_small_designs():
    res = _best_values({"x": [1.0, 2.0, 4.0], "y": [1.5, 2.5, 3.0]})
    res.loc[(res["strategy"] == "y") & (res["seed"] == 2), "status"] = "failed"
    (row,) = paired_value_differences(res, "minimize").itertuples()
    assert row.seeds == 2 and row.mean == pytest.approx(-0.5)
    assert (row.ci_low, row.ci_high) == (-0.5, -0.5)  # the same difference on every seed
    many = _best_values({f"s{i}": [float(i), i + 1.0] for i in range(MAX_PAIRED_STRATEGIES + 1)})
    assert paired_value_differences(many, "minimize") is None
    assert paired_value_differences(_best_values({"x": [1.0], "y": [2.0]}), "minimize") is None


def _paired_cases(rng: np.random.Generator, count: int):
    """Paired samples of the shapes a report meets: whole epochs with ties and zeros, shifted
    copies, continuous values; sizes on both sides of scipy's 13-pair switch."""
    for i in range(count):
        n = int(rng.choice([2, 3, 5, 8, 10, 13, 14, 20]))
        if i % 3 == 0:
            a, b = rng.integers(0, 6, n).astype(float), rng.integers(0, 6, n).astype(float)
        elif i % 3 == 1:
            a, b = rng.normal(size=n), rng.normal(size=n)
        else:
            a = rng.integers(0, 30, n).astype(float)
            b = a + rng.choice([0.0, 0.0, 1.0, -2.0, 3.5], n)
        if np.any(a != b):
            yield a, b


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_the_signed_rank_test_is_scipys_wilcoxon(alternative):
    """The report's vectorized permutation test gives scipy.stats.wilcoxon's statistic and
    p-value, ties, zeros and all."""
    checked = 0
    for a, b in _paired_cases(np.random.default_rng(7), 90):
        ours = signed_rank_test(a, b, alternative)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = scipy.stats.wilcoxon(a, b, alternative=alternative)
        assert ours[0] == pytest.approx(float(theirs.statistic), rel=1e-12), (a, b)
        assert ours[1] == pytest.approx(float(theirs.pvalue), rel=1e-12, abs=1e-15), (a, b)
        checked += 1
    assert checked > 60
