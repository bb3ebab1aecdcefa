"""The report's sections that look across tasks: "What this shows" (claims no stronger than the
tests support), performance profiles, and whether a ranking holds when the same task is run
under another learning-rate range."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from lrbench.report._data import SuiteData, budget_fits, lr_range, task_key
from lrbench.report._document import Document
from lrbench.report._formatting import fmt_p
from lrbench.report._stats import (
    ALPHA,
    TAU_MAX,
    leader_comparison,
    performance_profile,
    profile_ratios,
    profile_scores,
    range_rank_agreement,
    rank_tests,
)

MIN_SEEDS = 5  # design.md: at least 5 seeds per strategy for any claim
TAUS = np.linspace(1.0, TAU_MAX, 301)


# --------------------------------------------------------------------------------------------- #
# What this shows
# --------------------------------------------------------------------------------------------- #
def what_this_shows(doc: Document, data: SuiteData, summaries: dict[str, pd.DataFrame]) -> None:
    """One bullet per task: who needed the fewest epochs, and only what the tests support."""
    doc.heading(3, "What this shows")
    items = [
        task_claim(task, data.of_task(task).results, summaries[task], budget_fits(runs))
        for task, runs in _runs_by_task(data).items()
    ]
    doc.bullets(items)
    doc.para(
        f"A difference is called significant only when the pairwise Wilcoxon signed-rank test, "
        f"Holm-adjusted over all pairs of the task, gives p < {ALPHA:g}; every other ordering "
        "is what these seeds happened to show."
    )


def _runs_by_task(data: SuiteData) -> dict[str, list]:
    out: dict[str, list] = {}
    for run in data.runs:
        out.setdefault(run.task, []).append(run)
    return out


def task_claim(
    task: str, results: pd.DataFrame, summary: pd.DataFrame, fits: dict[str, Any]
) -> str:
    """What one task's runs support, in one sentence or a few."""
    top = summary.iloc[0]
    parts = [f"`{task}`:"]
    if not math.isfinite(top["ett_median"]):
        parts.append("no strategy met the target in half its runs.")
    else:
        parts.append(f"fewest epochs to target (median): {top['strategy']}.")
    parts.append(_significance_words(rank_tests(results)))
    seeds = int(results["seed"].nunique())
    if seeds < MIN_SEEDS:
        parts.append(f"Only {seeds} seed(s): fewer than {MIN_SEEDS}, so no claim.")
    short = [s for s, f in fits.items() if not f.fits]
    if short:
        parts.append(
            "The budget does not hold the design of "
            + ", ".join(f"{s} ({fits[s].short})" for s in short)
            + ": their numbers do not measure them as designed."
        )
    partly = [s for s, f in fits.items() if f.fits and not f.full]
    if partly:
        parts.append(
            "The budget holds only part of the design of "
            + ", ".join(f"{s} ({fits[s].short})" for s in partly)
            + "."
        )
    return " ".join(parts)


def _significance_words(res: dict[str, Any]) -> str:
    cmp = leader_comparison(res)
    if cmp is None:
        return f"No significance test ({res.get('reason', 'not run')}): no difference is shown."
    words = []
    fr = res.get("friedman")
    if fr is not None and math.isfinite(fr.get("pvalue", math.nan)):
        verdict = "they are not all alike" if fr["pvalue"] < ALPHA else "it shows no difference"
        words.append(f"Friedman test over the strategies: p = {fmt_p(fr['pvalue'])}, {verdict}.")
    n = len(res["seeds"])
    if 2 / 2**n >= ALPHA:
        words.append(
            f"With {n} seeds the smallest possible two-sided Wilcoxon p-value is "
            f"2/2^{n} = {2 / 2**n:.3g}, before Holm's correction: no pair can differ significantly."
        )
    leader = cmp["leader"]
    if cmp["beaten"]:
        names = ", ".join(f"{s} (p = {fmt_p(p)})" for s, p in cmp["beaten"])
        words.append(f"Best mean rank, {leader}, needs significantly fewer epochs than {names}.")
    if cmp["not_beaten"]:
        names = ", ".join(
            f"{s} ({'p = ' + fmt_p(p) if math.isfinite(p) else 'every seed tied'})"
            for s, p in cmp["not_beaten"]
        )
        words.append(
            f"No significant difference between {leader} (best mean rank) and {names}, "
            f"Holm-adjusted: their order here is not evidence."
        )
    return " ".join(words)


# --------------------------------------------------------------------------------------------- #
# Performance profiles
# --------------------------------------------------------------------------------------------- #
def median_table(summaries: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Median epochs to target: rows task labels, columns strategies (NaN: not run there)."""
    return pd.DataFrame(
        {task: s.set_index("strategy")["ett_median"] for task, s in summaries.items()}
    ).T


def profiles_section(
    doc: Document, summaries: dict[str, pd.DataFrame], colors: dict[str, Any]
) -> None:
    """Performance profiles over the suite's task labels, as a figure and a table of scores."""
    from lrbench.report._figures import fig_performance_profile

    medians = median_table(summaries)
    if len(medians) < 2:
        return
    doc.heading(2, "Across tasks: performance profiles")
    doc.para(
        "For each task, a strategy's ratio is its median epochs to target over the best "
        "strategy's median on that task (1 = the best; ∞ = it missed the target in half its runs "
        "or more, did not run there, or no strategy met the target there). Its profile ρ(τ) is "
        f"the fraction of the {len(medians)} tasks on which its ratio is at most τ. Score: the "
        f"area under ρ for τ from 1 to {TAU_MAX:g}, divided by {TAU_MAX - 1:g} (AlgoPerf's "
        "scoring on a linear τ axis): 1 = the best on every task, 0 = never within a factor "
        f"{TAU_MAX:g} of the best."
    )
    profile = performance_profile(medians, TAUS)
    doc.figure(
        fig_performance_profile(profile, colors, len(medians)),
        "performance_profiles.png",
        "Performance profiles: fraction of tasks on which each strategy's median epochs to "
        "target is within a factor τ of the best strategy's (step functions; coinciding lines "
        "are drawn a hair apart). The five with the largest area are named in their family's "
        "colour; the others are drawn light grey.",
    )
    doc.table(_profile_table(medians))


def _profile_table(medians: pd.DataFrame) -> pd.DataFrame:
    ratios = profile_ratios(medians)
    scores = profile_scores(medians)
    rows = []
    for s, score in scores.items():
        row = {"strategy": s, f"score (τ ≤ {TAU_MAX:g})": f"{score:.3f}"}
        for t in (1.0, 1.5, 2.0, TAU_MAX):
            row[f"ρ({t:g})"] = f"{(ratios[s] <= t + 1e-12).mean():.2f}"
        row.update({f"ratio on {task}": _ratio(ratios.loc[task, s]) for task in ratios.index})
        rows.append(row)
    return pd.DataFrame(rows)


def _ratio(v: float) -> str:
    return "∞" if not math.isfinite(v) else f"{v:.2f}"


# --------------------------------------------------------------------------------------------- #
# Range sensitivity
# --------------------------------------------------------------------------------------------- #
def range_groups(data: SuiteData) -> list[list[str]]:
    """Task labels that run the same task (name and options) under different rate ranges."""
    groups: dict[tuple[str, str], list[str]] = {}
    for task, runs in _runs_by_task(data).items():
        groups.setdefault(task_key(runs), []).append(task)
    by_task = _runs_by_task(data)
    return [
        labels
        for labels in groups.values()
        if len(labels) >= 2 and len({lr_range(by_task[t]) for t in labels}) >= 2
    ]


def range_section(doc: Document, data: SuiteData, summaries: dict[str, pd.DataFrame]) -> None:
    """Each strategy's rank on every labelled range of one task, and Kendall's tau between them."""
    groups = range_groups(data)
    if not groups:
        return
    doc.heading(2, "Range sensitivity")
    doc.para(
        "The same task under different learning-rate search ranges ([low, high]). A strategy's "
        "rank on a range is its place in that task's strategies table (median epochs to target, "
        "then median best validation value). Kendall's τ (`scipy.stats.kendalltau`, τ-b) between "
        "two ranges' rankings: 1 = the same order, 0 = unrelated, −1 = reversed; its p-value "
        "tests τ = 0."
    )
    by_task = _runs_by_task(data)
    for labels in groups:
        ranks = {t: _ranks(summaries[t]) for t in labels}
        table = pd.DataFrame(ranks).map(lambda v: "—" if pd.isna(v) else f"{v:.0f}")
        table.columns = [
            f"rank on {t} [{lr_range(by_task[t])[0]:g}, {lr_range(by_task[t])[1]:g}]"
            for t in labels
        ]
        doc.table(table.rename_axis("strategy").reset_index())
        agree = range_rank_agreement(ranks)
        agree["kendall_tau"] = agree["kendall_tau"].map(
            lambda v: "—" if not math.isfinite(v) else f"{v:.2f}"
        )
        agree["pvalue"] = agree["pvalue"].map(fmt_p)
        agree.columns = ["range A", "range B", "strategies on both", "Kendall's τ", "p"]
        doc.table(agree)


def _ranks(summary: pd.DataFrame) -> pd.Series:
    return pd.Series(range(1, len(summary) + 1), index=summary["strategy"].tolist(), dtype=float)
