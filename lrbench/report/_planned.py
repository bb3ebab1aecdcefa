"""Planned comparisons: every strategy against the suite's control and against the best.

Testing all k(k-1)/2 pairs asks questions nobody planned and, with few seeds, can answer none:
Holm over 171 pairs of 5 seeds leaves p = 1 everywhere. A suite has two questions fixed before
its runs, per task:

- *Does the strategy need fewer epochs to the target than the control* (the suite's `control`,
  by default the task's fixed default rate: what a practitioner would run)? One-sided.
- *Is the strategy within noise of the best* (the strategy with the best median epochs)?
  Two-sided; not asked where the control is the best (the first question then covers it).

Each is a Wilcoxon signed-rank test on the paired epochs to target (pairs = seeds; a miss counts
as 2 x budget, above every hit, which gives the same ranks as any larger value), Holm-adjusted
over the task's comparisons of both kinds only. Beside every p-value two effect sizes with
percentile-bootstrap intervals: the probability that the strategy needs fewer epochs than the
other on a seed (paired; both missing is a tie, counted half), and the median paired difference
of the best validation value. Per task, `detectable_share` states the smallest such probability
the seeds can detect, so that "not significant" is never read as "no difference".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

from lrbench.report._stats import (
    ALPHA,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    N_RESAMPLES,
    _penalised,
    holm,
    signed_rank_test,
)

VS_CONTROL = "fewer epochs than the control"
VS_BEST = "within noise of the best"
POWER = 0.8


@dataclass(frozen=True)
class Planned:
    """One task's planned comparisons: one row per (strategy, question)."""

    control: str
    best: str
    seeds: int  # paired seeds of the comparisons (the fewest any comparison had)
    comparisons: pd.DataFrame
    detectable: float | None  # see detectable_share; None: no share can reach significance
    alpha: float = ALPHA


def default_control(results: pd.DataFrame) -> str | None:
    """The control the suite declared (stored with its runs), else the strategy labelled `fixed`
    (the task's default rate), else the first `fixed` strategy; None without one."""
    declared = results["control"].dropna() if "control" in results else pd.Series(dtype=object)
    labels = list(dict.fromkeys(results["strategy"]))
    if len(declared) and declared.iloc[0] in labels:
        return str(declared.iloc[0])
    if "fixed" in labels:
        return "fixed"
    fixed = results.loc[results["strategy_name"] == "fixed", "strategy"]
    return str(fixed.iloc[0]) if len(fixed) else None


def planned_comparisons(
    results: pd.DataFrame, control: str | None = None, alpha: float = ALPHA
) -> Planned | None:
    """The planned comparisons of one task's runs (`load_results` rows); None when the task has
    no control or fewer than two strategies with two paired seeds."""
    control = control or default_control(results)
    done = results[results["status"] == "complete"]
    epochs = done.pivot_table(
        index="seed", columns="strategy", values="epochs_to_target", aggfunc="first"
    )
    order = [s for s in dict.fromkeys(results["strategy"]) if s in epochs.columns]
    values = done.pivot_table(
        index="seed", columns="strategy", values="best_val", aggfunc="first"
    ).reindex(index=epochs.index, columns=order)  # a strategy whose every run diverged: NaN
    if control is None or control not in order or len(order) < 2:
        return None
    sign = 1.0 if results["direction"].iloc[0] == "minimize" else -1.0
    budget = float(results["budget_epochs"].max())
    best = min(order, key=lambda s: (_median_epochs(epochs[s]), sign * values[s].median()))
    rows = []
    for s in order:
        if s != control:
            rows.append(_compare(s, control, VS_CONTROL, epochs, values, sign, budget, "less"))
        if s != best and best != control:  # else the same pair as against the control
            rows.append(_compare(s, best, VS_BEST, epochs, values, sign, budget, "two-sided"))
    table = pd.DataFrame([r for r in rows if r is not None])
    if table.empty:
        return None
    table["p_holm"] = holm(table["p"].to_numpy(float))
    table["verdict"] = [_verdict(r, alpha) for r in table.itertuples()]
    n = int(table["pairs"].min())
    return Planned(control, best, n, table, detectable_share(n, len(table), alpha), alpha)


def _median_epochs(column: pd.Series) -> float:
    v = column.dropna().to_numpy(float)
    return float(np.median(v)) if len(v) else math.inf


def _compare(
    s: str,
    other: str,
    question: str,
    epochs: pd.DataFrame,
    values: pd.DataFrame,
    sign: float,
    budget: float,
    alternative: str,
) -> dict | None:
    pair = epochs[[s, other]].dropna()
    if len(pair) < 2:
        return None
    a, b = pair[s].to_numpy(float), pair[other].to_numpy(float)
    fewer = np.where(a < b, 1.0, np.where(a > b, 0.0, 0.5))  # inf == inf: both missed, a tie
    share_low, share_high = _bootstrap(fewer, np.mean)
    diff = sign * (values.loc[pair.index, s] - values.loc[pair.index, other]).to_numpy(float)
    diff = diff[np.isfinite(diff)]
    med_low, med_high = _bootstrap(diff, np.median)
    return {
        "strategy": s,
        "question": question,
        "other": other,
        "pairs": len(pair),
        "fewer": int((a < b).sum()),
        "ties": int((a == b).sum()),
        "more": int((a > b).sum()),
        "p": _wilcoxon(_penalised(a, budget), _penalised(b, budget), alternative),
        "share_fewer": float(fewer.mean()),
        "share_low": share_low,
        "share_high": share_high,
        # Sign-adjusted: negative favours `strategy` whichever the metric's direction.
        "value_diff": float(np.median(diff)) if len(diff) else math.nan,
        "value_low": med_low,
        "value_high": med_high,
    }


def _wilcoxon(a: np.ndarray, b: np.ndarray, alternative: str) -> float:
    """Wilcoxon signed-rank p-value of a against b; 1 when every pair ties (no evidence)."""
    if np.all(a == b):
        return 1.0
    return signed_rank_test(a, b, alternative)[1]


def _bootstrap(x: np.ndarray, statistic) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over the paired seeds (fixed seed: the same
    runs give the same interval); the value itself where the seeds do not vary."""
    if len(x) == 0:
        return math.nan, math.nan
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    res = scipy.stats.bootstrap(
        (x,),
        statistic,
        n_resamples=N_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _verdict(r, alpha: float) -> str:
    significant = math.isfinite(r.p_holm) and r.p_holm < alpha
    if r.question == VS_CONTROL:
        return "fewer epochs than the control" if significant else "not shown better"
    if not significant:  # not evidence of equality: at few seeds it is all a test can say
        return "not shown behind the best"
    return "behind the best" if r.share_fewer < 0.5 else "ahead of the best"


def detectable_share(n: int, m: int, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest probability of needing fewer epochs (per paired seed, no ties) that `n`
    seeds detect with `power` among `m` Holm-adjusted comparisons, by the exact one-sided sign
    test at level alpha / m (Holm's first step; the sign test bounds the signed-rank test's
    power from below when the sizes of the differences carry no information). None when no
    share can: 0.5**n above alpha / m."""
    level = alpha / max(m, 1)
    # The fewest wins out of n that the sign test calls significant at `level`.
    critical = next(
        (c for c in range(n + 1) if scipy.stats.binom.sf(c - 1, n, 0.5) <= level), None
    )
    if critical is None:
        return None
    # Power rises with the share from at most `level` (share 0.5) to 1 (share 1).
    return float(
        scipy.optimize.brentq(lambda q: scipy.stats.binom.sf(critical - 1, n, q) - power, 0.5, 1)
    )
