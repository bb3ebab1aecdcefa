"""The report's numbers per task: strategy summaries, within-seed ranks, the Friedman test,
pairwise Wilcoxon signed-rank tests with Holm's correction. No plotting here: importable and
testable without matplotlib."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from lrbench.report._results import quantile


def _better_key(direction: str):
    return (lambda v: v) if direction == "minimize" else (lambda v: -v)


def strategy_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy of one task's runs (`load_results` rows), sorted by median
    epochs-to-target (not reached last) then by median best validation metric."""
    rows = []
    direction = results["direction"].iloc[0]
    for strategy, g in results.groupby("strategy", sort=False):
        ett = g["epochs_to_target"].astype(float).tolist()
        lo, hi = iqm_ci(ett)
        rows.append(
            {
                "strategy": strategy,
                "optimizer": ", ".join(sorted(set(map(str, g["optimizer"])))),
                "n_runs": len(g),
                "n_reached": int(g["reached"].sum()),
                "ett_median": quantile(ett, 0.5),
                "ett_q25": quantile(ett, 0.25),
                "ett_q75": quantile(ett, 0.75),
                "ett_iqm": iqm(ett),
                "ett_iqm_lo": lo,
                "ett_iqm_hi": hi,
                "success_rate": float(g["reached"].mean()),
                "best_val_median": quantile(g["best_val"].astype(float).tolist(), 0.5),
                "test_median": quantile(g["test"].astype(float).tolist(), 0.5),
                "wall_median": quantile(g["wall_seconds"].astype(float).tolist(), 0.5),
                "epochs_median": quantile(g["total_epochs"].astype(float).tolist(), 0.5),
                "ett": ett,
            }
        )
    df = pd.DataFrame(rows)
    key = _better_key(direction)
    df["_k1"] = df["ett_median"].map(lambda v: v if not math.isnan(v) else math.inf)
    df["_k2"] = df["best_val_median"].map(lambda v: key(v) if math.isfinite(v) else math.inf)
    return (
        df.sort_values(["_k1", "_k2"], kind="stable")
        .drop(columns=["_k1", "_k2"])
        .reset_index(drop=True)
    )


def tolerance_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Constant-rate trials with their final validation metric (a scheduled trial's lr is a peak)."""
    t = trials[trials["state"].isin(["COMPLETE", "PRUNED"]) & trials["lr"].notna()]
    const = t[t["schedule"].fillna("constant") == "constant"]
    return const


def _penalised(values: np.ndarray, budget: float) -> np.ndarray:
    """Unreached (inf) -> 2 x budget: above every reached run; any larger value ranks the same."""
    finite = values[np.isfinite(values)]
    cap = 2.0 * max(budget, float(finite.max()) if len(finite) else 0.0, 1.0)
    return np.where(np.isfinite(values), values, cap)


def rank_tests(results: pd.DataFrame) -> dict[str, Any]:
    """Friedman over strategies (blocks = seeds every strategy completed) and pairwise Wilcoxon
    signed-rank tests on epochs-to-target. Unreached runs rank last (ties share the mean rank);
    for Wilcoxon they count as 2 x budget, which gives the same ranks of |differences| as any
    larger value, hence the same p-value."""
    done = results[results["status"] == "complete"]
    wide = done.pivot_table(
        index="seed", columns="strategy", values="epochs_to_target", aggfunc="first"
    )
    order = [s for s in dict.fromkeys(results["strategy"]) if s in wide.columns]
    wide = wide[order].dropna()
    budget = float(results["budget_epochs"].max())
    out: dict[str, Any] = {
        "seeds": list(wide.index),
        "strategies": order,
        "friedman": None,
        "wilcoxon": None,
    }
    if len(wide) < 3 or len(order) < 2:
        out["reason"] = (
            f"needs ≥ 3 seeds completed by every strategy (have {len(wide)})"
            if len(wide) < 3
            else "needs ≥ 2 strategies"
        )
        return out
    values = np.column_stack([_penalised(wide[s].to_numpy(float), budget) for s in order])
    ranks = within_block_ranks(values)
    out["mean_ranks"] = dict(zip(order, ranks.mean(axis=0)))
    if len(order) >= 3:
        out["friedman"] = friedman(ranks)
    out["wilcoxon"] = wilcoxon_pairs(values, order)
    return out


def within_block_ranks(values: np.ndarray) -> np.ndarray:
    """Rank each row (a block: one seed) of `values` (blocks x strategies), 1 = smallest; ties
    share the mean rank."""
    return np.apply_along_axis(scipy.stats.rankdata, 1, values)


def friedman(ranks: np.ndarray) -> dict[str, Any]:
    """The Friedman test on within-block ranks (blocks x treatments): statistic and p-value."""
    if np.all(ranks == ranks[:, :1]):
        return {
            "statistic": math.nan,
            "pvalue": math.nan,
            "note": "every seed ties all strategies",
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy.stats.friedmanchisquare(*[ranks[:, j] for j in range(ranks.shape[1])])
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}


def wilcoxon_pairs(values: np.ndarray, order: list[str]) -> pd.DataFrame:
    """Two-sided Wilcoxon signed-rank test of every pair of columns of `values` (paired by
    row), with win/tie counts and Holm-adjusted p-values (NaN where every pair ties)."""
    rows = []
    for i in range(len(order)):
        for j in range(i + 1, len(order)):
            a, b = values[:, i], values[:, j]
            d = a - b
            row = {
                "A": order[i],
                "B": order[j],
                "pairs": len(d),
                "A fewer epochs": int((d < 0).sum()),
                "B fewer epochs": int((d > 0).sum()),
                "ties": int((d == 0).sum()),
                "statistic": math.nan,
                "pvalue": math.nan,
            }
            if np.any(d != 0):
                try:
                    row["statistic"], row["pvalue"] = signed_rank_test(a, b)
                except ValueError:
                    pass
            rows.append(row)
    w = pd.DataFrame(rows)
    w["pvalue_holm"] = holm(w["pvalue"].to_numpy(float))
    return w


PERMUTATIONS = 9999  # scipy's default: every sign pattern is enumerated for up to 13 pairs


def signed_rank_test(
    a: np.ndarray, b: np.ndarray, alternative: str = "two-sided"
) -> tuple[float, float]:
    """(statistic, p-value) of the Wilcoxon signed-rank test of `a` against `b`, paired: what
    `scipy.stats.wilcoxon(a, b, alternative=alternative)` gives, to float rounding.

    Where scipy's test is a permutation test (13 pairs or fewer with ties or zeros: epochs to
    target are whole numbers, so nearly always here) it calls `scipy.stats.permutation_test`
    with a statistic of one Python call per resample, 2^n calls per test: 100 s of a quick
    report's 104. Here the same test runs on every sign pattern at once (`vectorized`); zeros
    are dropped first, which leaves the p-value as it is (flipping a zero's sign changes
    nothing) and the statistic too (scipy's default zero method leaves zeros out).
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    nonzero = d[d != 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's notes on ties and small samples
        scipy_result = len(d) > 13 or (
            len(nonzero) == len(d) and len(np.unique(np.abs(d))) == len(d)
        )
        if scipy_result or len(nonzero) < 2:
            res = scipy.stats.wilcoxon(a, b, alternative=alternative)
            return float(res.statistic), float(res.pvalue)
        perm = scipy.stats.permutation_test(
            (nonzero,),
            _positive_rank_sum,
            permutation_type="samples",
            vectorized=True,
            n_resamples=PERMUTATIONS,
            alternative=alternative,
        )
    r_plus = float(perm.statistic)
    total = len(nonzero) * (len(nonzero) + 1) / 2
    statistic = min(r_plus, total - r_plus) if alternative == "two-sided" else r_plus
    return statistic, float(perm.pvalue)


def _positive_rank_sum(d: np.ndarray, axis: int = -1) -> np.ndarray:
    """The signed-rank statistic: the sum of the ranks of |d| where d > 0 (ties: mean ranks)."""
    ranks = scipy.stats.rankdata(np.abs(d), axis=axis)
    return np.sum(np.where(d > 0, ranks, 0.0), axis=axis)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaN stays NaN and is not counted among the tests).

    Step-down: the k-th smallest of m p-values (k from 0) is multiplied by m - k, capped at 1,
    and never below the adjusted value before it. (scipy's `false_discovery_control` is
    Benjamini–Hochberg/Yekutieli, a different correction.)"""
    p = np.asarray(p, float)
    ok = np.where(np.isfinite(p))[0]
    adj = np.full(len(p), math.nan)
    m = len(ok)
    running = 0.0
    for k, idx in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - k) * p[idx]))
        adj[idx] = running
    return adj


# --------------------------------------------------------------------------------------------- #
# Interquartile mean and its bootstrap interval
# --------------------------------------------------------------------------------------------- #
IQM_TRIM = 0.25
CONFIDENCE = 0.95
N_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def _iqm_along(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The interquartile mean along `axis`: sort, drop floor(n/4) values at each end, average
    the rest (`scipy.stats.trim_mean(x, 0.25)`, as rliable and AlgoPerf compute it). A miss
    (+inf) that survives the trim makes it +inf."""
    x = np.sort(np.asarray(x, float), axis=axis)
    n = x.shape[axis]
    k = int(IQM_TRIM * n)
    with np.errstate(invalid="ignore"):
        return np.take(x, np.arange(k, n - k), axis=axis).mean(axis=axis)


def iqm(values) -> float:
    """Interquartile mean of epochs to target, misses counted as +inf: finite exactly when at
    most floor(n/4) of the n runs missed (the trim drops them), +inf otherwise."""
    v = np.asarray([float(x) for x in values if not math.isnan(float(x))], float)
    return float(_iqm_along(v)) if len(v) else math.nan


def iqm_ci(
    values,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    random_state: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the interquartile mean (`scipy.stats.bootstrap`, fixed
    `random_state`: the same runs give the same interval). Misses count as +inf, so a bound is
    +inf when more than its tail of the resamples hold more than a quarter of misses. The
    percentile method, not BCa: BCa's jackknife is undefined with infinite values. (NaN, NaN)
    for fewer than two runs."""
    v = np.asarray([float(x) for x in values if not math.isnan(float(x))], float)
    if len(v) < 2:
        return math.nan, math.nan
    if np.all(v == v[0]):
        return float(v[0]), float(v[0])
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore")
        res = scipy.stats.bootstrap(
            (v,),
            _iqm_along,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            random_state=random_state,
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isnan(lo) or math.isnan(hi):  # numpy's interpolation between two infs
        dist = res.bootstrap_distribution.tolist()
        alpha = (1 - confidence) / 2
        lo, hi = quantile(dist, alpha), quantile(dist, 1 - alpha)
    return lo, hi


# --------------------------------------------------------------------------------------------- #
# Performance profiles across tasks
# --------------------------------------------------------------------------------------------- #
TAU_MAX = 4.0


def profile_ratios(medians: pd.DataFrame) -> pd.DataFrame:
    """Each strategy's median epochs to target over the best strategy's on the same task
    (rows: tasks, columns: strategies). +inf where the strategy missed (its median is +inf),
    did not run on the task (NaN), or no strategy reached the target there; 1 for the best."""
    m = medians.astype(float).fillna(math.inf)
    best = m.min(axis=1)
    ratios = m.div(best.where(np.isfinite(best) & (best > 0)), axis=0)
    # A best of 0 epochs (met before any training): the strategies at 0 tie at 1, others inf.
    zero = best == 0
    if zero.any():
        ratios.loc[zero] = np.where(m.loc[zero] == 0, 1.0, math.inf)
    return ratios.fillna(math.inf)


def performance_profile(medians: pd.DataFrame, taus) -> pd.DataFrame:
    """rho_s(tau): the fraction of tasks on which strategy s's median epochs to target is within
    a factor tau of the best strategy's there (rows: the taus, columns: strategies)."""
    r = profile_ratios(medians)
    taus = np.asarray(list(taus), float)
    within = r.to_numpy(float)[None, :, :] <= taus[:, None, None] + 1e-12
    return pd.DataFrame(within.mean(axis=1), index=pd.Index(taus, name="tau"), columns=r.columns)


def profile_scores(medians: pd.DataFrame, tau_max: float = TAU_MAX) -> pd.Series:
    """The area under each strategy's profile over tau in [1, tau_max], divided by
    tau_max - 1 (AlgoPerf's score, on a linear tau axis): 1 = best on every task, 0 = never
    within tau_max of the best. Exact for the step-function profile: the mean over tasks of
    (tau_max - ratio) / (tau_max - 1) where the ratio is at most tau_max, else 0."""
    r = profile_ratios(medians)
    area = (tau_max - r.clip(lower=1.0)).clip(lower=0.0) / (tau_max - 1.0)
    return area.mean(axis=0).sort_values(ascending=False, kind="stable")


# --------------------------------------------------------------------------------------------- #
# Significance as the report states it
# --------------------------------------------------------------------------------------------- #
ALPHA = 0.05


def pvalue_matrix(wilcoxon: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Symmetric matrix of Holm-adjusted Wilcoxon p-values (diagonal 1; a pair whose runs all
    tie, p = NaN, counts as 1: no evidence of a difference)."""
    m = pd.DataFrame(1.0, index=order, columns=order)
    for row in wilcoxon.itertuples(index=False):
        p = float(row.pvalue_holm) if math.isfinite(float(row.pvalue_holm)) else 1.0
        m.loc[row.A, row.B] = m.loc[row.B, row.A] = p
    return m


def is_significant(p: float, alpha: float = ALPHA) -> bool:
    """p (Holm-adjusted) below alpha; NaN (every pair tied, or untested) never is."""
    return p is not None and math.isfinite(p) and p < alpha


def leader_comparison(res: dict[str, Any], alpha: float = ALPHA) -> dict[str, Any] | None:
    """The strategy with the best mean rank against every other (rank_tests' result): the ones
    it beats significantly (Holm-adjusted Wilcoxon p < alpha) and the ones it does not."""
    if res.get("reason") or not res.get("mean_ranks"):
        return None
    ranks = res["mean_ranks"]
    leader = min(ranks, key=lambda s: (ranks[s], list(ranks).index(s)))
    beaten: list[tuple[str, float]] = []
    not_beaten: list[tuple[str, float]] = []
    for row in res["wilcoxon"].to_dict("records"):
        if leader not in (row["A"], row["B"]):
            continue
        first = row["A"] == leader
        other = row["B"] if first else row["A"]
        leader_fewer = row["A fewer epochs"] if first else row["B fewer epochs"]
        other_fewer = row["B fewer epochs"] if first else row["A fewer epochs"]
        p = float(row["pvalue_holm"])
        sig = is_significant(p, alpha) and leader_fewer > other_fewer
        (beaten if sig else not_beaten).append((other, p))
    return {"leader": leader, "beaten": beaten, "not_beaten": not_beaten, "alpha": alpha}


# --------------------------------------------------------------------------------------------- #
# Range sensitivity: one task under several learning-rate ranges
# --------------------------------------------------------------------------------------------- #
def range_rank_agreement(medians: dict[str, pd.Series]) -> pd.DataFrame:
    """Kendall's tau between the strategy rankings of every two labelled ranges of one task.

    `medians`: per task label, the strategies' median epochs to target (misses +inf, ties
    share a rank). Only strategies run on both labels are compared. One row per pair of labels.
    """
    labels = list(medians)
    rows = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            a, b = medians[labels[i]], medians[labels[j]]
            common = [s for s in a.index if s in b.index]
            row = {"A": labels[i], "B": labels[j], "strategies": len(common)}
            ra = scipy.stats.rankdata(_finite_order(a[common]))
            rb = scipy.stats.rankdata(_finite_order(b[common]))
            tau = pval = math.nan
            if len(common) >= 2 and len(set(ra)) > 1 and len(set(rb)) > 1:
                res = scipy.stats.kendalltau(ra, rb)
                tau, pval = float(res.statistic), float(res.pvalue)
            rows.append({**row, "kendall_tau": tau, "pvalue": pval})
    return pd.DataFrame(rows, columns=["A", "B", "strategies", "kendall_tau", "pvalue"])


def _finite_order(s: pd.Series) -> np.ndarray:
    """Values ready for ranking: +inf (missed) above every finite value, all misses tied."""
    v = s.astype(float).to_numpy()
    top = np.nanmax(v[np.isfinite(v)]) + 1 if np.isfinite(v).any() else 1.0
    return np.where(np.isfinite(v), v, top)


# A design this small is read pair by pair (an ablation: with and without one part of a
# recipe); a larger one by ranks and the Wilcoxon table.
MAX_PAIRED_STRATEGIES = 6


def paired_value_differences(
    results: pd.DataFrame, direction: str, confidence: float = 0.95
) -> pd.DataFrame | None:
    """For every pair of strategies, the seed-by-seed differences of the best validation value
    (first minus second, over the seeds both completed): their mean with a `confidence`
    t-interval (`scipy.stats.ttest_rel`), median, range and how many seeds favour the first.
    None when the task has more than MAX_PAIRED_STRATEGIES strategies or no pair shares two
    seeds."""
    done = results[(results["status"] == "complete") & np.isfinite(results["best_val"])]
    wide = done.pivot_table(index="seed", columns="strategy", values="best_val", aggfunc="first")
    order = [s for s in dict.fromkeys(results["strategy"]) if s in wide.columns]
    if not 2 <= len(order) <= MAX_PAIRED_STRATEGIES:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    rows = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            pair = wide[[a, b]].dropna()
            if len(pair) < 2:
                continue
            diff = (pair[a] - pair[b]).to_numpy(float)
            if np.ptp(diff) == 0:  # no spread: the interval is the difference itself
                low = high = float(diff[0])
            else:
                ci = scipy.stats.ttest_rel(pair[a], pair[b]).confidence_interval(confidence)
                low, high = float(ci.low), float(ci.high)
            rows.append(
                {
                    "first": a,
                    "second": b,
                    "seeds": len(pair),
                    "mean": float(diff.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    "median": float(np.median(diff)),
                    "min": float(diff.min()),
                    "max": float(diff.max()),
                    "first_better": int(np.sum(sign * diff < 0)),
                }
            )
    return pd.DataFrame(rows) if rows else None
