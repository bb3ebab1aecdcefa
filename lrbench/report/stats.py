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

from lrbench.results import quantile


def _better_key(direction: str):
    return (lambda v: v) if direction == "minimize" else (lambda v: -v)


def strategy_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy of one task's runs (`load_results` rows), sorted by median
    epochs-to-target (not reached last) then by median best validation metric."""
    rows = []
    direction = results["direction"].iloc[0]
    for strategy, g in results.groupby("strategy", sort=False):
        ett = g["epochs_to_target"].astype(float).tolist()
        rows.append(
            {
                "strategy": strategy,
                "optimizer": ", ".join(sorted(set(map(str, g["optimizer"])))),
                "n_runs": len(g),
                "n_reached": int(g["reached"].sum()),
                "ett_median": quantile(ett, 0.5),
                "ett_q25": quantile(ett, 0.25),
                "ett_q75": quantile(ett, 0.75),
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
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        res = scipy.stats.wilcoxon(a, b)
                        row["statistic"], row["pvalue"] = float(res.statistic), float(res.pvalue)
                    except ValueError:
                        pass
            rows.append(row)
    w = pd.DataFrame(rows)
    w["pvalue_holm"] = holm(w["pvalue"].to_numpy(float))
    return w


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
