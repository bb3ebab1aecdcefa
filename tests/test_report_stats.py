"""The report's numbers against hand computations: Holm's correction, within-seed ranks, the
Friedman and Wilcoxon tests as the report runs them, and how numbers are written."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lrbench.report.document import _inline_html
from lrbench.report.formatting import fmt, fmt_fixed, fmt_median_iqr, fmt_p
from lrbench.report.stats import friedman, holm, rank_tests, within_block_ranks

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
        "from lrbench.report.stats import rank_tests\n"
        "from lrbench.report.formatting import fmt\n"
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
