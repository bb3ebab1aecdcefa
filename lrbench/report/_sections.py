"""What each section of the report says, and which tables and figures it holds."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pandas as pd

from lrbench.report._across import profiles_section, range_section, what_this_shows
from lrbench.report._data import (
    SuiteData,
    budget_fits,
    epochs_per_trial,
    optimizers_used,
    reference_rows,
    target_procedure,
)
from lrbench.report._document import Document
from lrbench.report._figures import (
    fig_anytime,
    fig_critical_difference,
    fig_epochs_to_target,
    fig_lr_scatter,
    fig_range_tests,
    fig_schedules,
    fig_tolerance,
    strategy_colors,
)
from lrbench.report._formatting import (
    TaskInfo,
    fmt,
    fmt_fixed,
    fmt_iqm_ci,
    fmt_median_iqr,
    fmt_p,
    fmt_success,
)
from lrbench.report._planned import VS_BEST, VS_CONTROL, Planned, planned_comparisons
from lrbench.report._results import convergence_window
from lrbench.report._stats import (
    ALPHA,
    MAX_PAIRED_STRATEGIES,
    paired_value_differences,
    pvalue_matrix,
    rank_tests,
    strategy_summary,
    tolerance_data,
)

_DEFINITIONS = [
    "**Validation** numbers (epochs to target, best validation metric, anytime curves, "
    "the lr scatter) "
    "are measured on the validation split held out of the training data: the only split "
    "strategies see.",
    "**Test** numbers are the test-split metric of each run's chosen configuration (its "
    "complete trial with "
    "the best validation value), evaluated at that trial's best-validation state: one "
    "test number per run.",
    "**Epochs** are training epochs (optimizer steps / steps per epoch) and include every "
    "step a strategy "
    "caused, LR range tests included; evaluation is not training. **Epochs to target**: "
    "cumulative epochs "
    "of the run, trials in the order they ran, until validation first met the target (— / "
    "not reached: "
    "never within the budget). Medians with [interquartile range] over seeds.",
    "**Interquartile mean (IQM)** of epochs to target: the mean of the middle half of the runs "
    "(floor(n/4) dropped at each end, `scipy.stats.trim_mean(x, 0.25)`), a miss counted as ∞: "
    "the IQM is finite exactly when at most a quarter of the runs missed, and ∞ otherwise. "
    "[95% CI]: percentile bootstrap (`scipy.stats.bootstrap`, 2,000 resamples of the runs, "
    "random_state 0, so the same runs give the same interval); a bound is ∞ when more than "
    "2.5% of the resamples hold more than a quarter of misses. **Success**: runs that met the "
    "target / runs.",
    "**Budget fit**: what each strategy's own design needs from the budget (the significant-"
    "digit search's first round, a grid's points, TPE's startup trials and one model-chosen "
    "trial, a range test and one trial), and how much of it the budget holds "
    "(`lrbench.running._budget_fit`). A strategy whose budget does not hold it is not measured as "
    "designed: its row says so.",
    "**Wall time** is the run's wall-clock seconds (training, evaluation and overhead) on "
    "the device above.",
]


def report_sections(doc: Document, suite: str, storage_text: str, data: SuiteData) -> None:
    """The whole report: introduction, summary, one section per task, the files."""
    results = data.results
    _intro(doc, suite, storage_text, data)
    tasks = list(dict.fromkeys(results["task"]))
    infos = {task: task_info(task, results[results["task"] == task]) for task in tasks}
    summaries = {task: strategy_summary(results[results["task"] == task]) for task in tasks}

    doc.heading(2, "Summary")
    doc.para(
        "Per task, the strategy that reached the target with the fewest epochs (median over seeds)."
    )
    doc.table(_summary_table(tasks, summaries, infos))
    planned = {task: planned_comparisons(results[results["task"] == task]) for task in tasks}
    if any(p is not None for p in planned.values()):
        doc.para(
            "The planned answers, per task: which strategies need fewer epochs to the target "
            "than the control (one-sided), and which are not shown behind the best (two-sided: "
            "within noise of it, or too few seeds to tell them apart); "
            "Wilcoxon signed-rank tests over paired seeds, Holm-adjusted over these comparisons "
            "only. The last column is the smallest effect the seeds can detect."
        )
        doc.table(_planned_summary(tasks, planned))
    what_this_shows(doc, data, summaries)

    for task in tasks:
        task_section(doc, infos[task], data.of_task(task), summaries[task])

    profiles_section(
        doc,
        summaries,
        strategy_colors(list(dict.fromkeys(results["strategy"])), strategy_groups(results)),
    )
    range_section(doc, data, summaries)

    doc.heading(2, "Files")
    doc.para(
        "`runs.csv`: one row per run with every per-run number (`lrbench.load_results`); "
        "`inf` epochs/seconds to target = never reached. The PNG figures lie beside this report."
    )


def _intro(doc: Document, suite: str, storage_text: str, data: SuiteData) -> None:
    results = data.results
    devices = ", ".join(sorted(set(map(str, results["device"].dropna())))) or "unknown"
    seeds = sorted(set(results["seed"]))
    doc.heading(1, f"lrbench report: suite `{suite}`")
    doc.para(
        f"Generated {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} from storage `{storage_text}` "
        f"(the storage alone). {len(results)} runs (one strategy on one task with one seed), "
        f"{len(data.trials)} trials, seeds {', '.join(map(str, seeds))}; device: {devices}."
    )
    incomplete = results[results["status"] != "complete"]
    if len(incomplete):
        doc.para(
            f"**{len(incomplete)} run(s) are not complete** (status running or interrupted): their numbers "
            "cover only what they had spent; the significance tests leave them out."
        )
    doc.bullets(_DEFINITIONS)


def task_info(task: str, results: pd.DataFrame) -> TaskInfo:
    """The labels and colours of one task, from its runs' rows."""
    first = results.iloc[0]
    order = list(dict.fromkeys(results["strategy"]))
    groups = strategy_groups(results)
    return TaskInfo(
        task,
        str(first["metric"]),
        str(first["metric_unit"] or ""),
        str(first["direction"]),
        float(first["target"]),
        float(results["budget_epochs"].max()),
        strategy_colors(order, groups),
        results["seed"].nunique(),
        groups,
    )


def strategy_groups(results: pd.DataFrame) -> dict[str, str]:
    """Each strategy label's family (`lrbench.strategies.GROUPS`), "other" if unknown."""
    from lrbench.strategies import STRATEGY_GROUPS

    names = results.drop_duplicates("strategy").set_index("strategy")["strategy_name"]
    return {s: STRATEGY_GROUPS.get(str(names[s]), "other") for s in names.index}


def _summary_table(
    tasks: list[str], summaries: dict[str, pd.DataFrame], infos: dict[str, TaskInfo]
) -> pd.DataFrame:
    rows = []
    for task in tasks:
        s, info = summaries[task], infos[task]
        top = s.iloc[0]
        reached = math.isfinite(top["ett_median"])
        if not reached:
            most = s.sort_values("n_reached", ascending=False, kind="stable").iloc[0]
            winner = "none in half its runs" + (
                f" (most often: {most['strategy']}, {most['n_reached']}/{most['n_runs']})"
                if most["n_reached"]
                else ""
            )
        else:
            winner = str(top["strategy"])
        rows.append(
            {
                "task": task,
                "validation metric": info.metric_u,
                "target": info.target_text,
                "budget per run (epochs)": f"{info.budget:g}",
                "seeds": info.seeds,
                "fewest epochs to target": winner,
                "epochs to target, median [IQR]": fmt_median_iqr(top["ett"]) if reached else "—",
                "success": f"{top['n_reached']}/{top['n_runs']}" if reached else "—",
            }
        )
    return pd.DataFrame(rows)


def _names(planned: Planned, question: str, verdict: str) -> str:
    t = planned.comparisons
    names = t.loc[(t["question"] == question) & (t["verdict"] == verdict), "strategy"]
    return ", ".join(names) or "none"


def _detectable_text(planned: Planned) -> str:
    if planned.detectable is None:
        return (
            f"none: with {planned.seeds} paired seeds no test among "
            f"{len(planned.comparisons)} can reach α = {planned.alpha:g}"
        )
    return f"fewer epochs on {planned.detectable:.0%} of seeds"


def _planned_summary(tasks: list[str], planned: dict[str, Planned | None]) -> pd.DataFrame:
    rows = []
    for task in tasks:
        p = planned[task]
        if p is None:
            continue
        rows.append(
            {
                "task": task,
                "control": p.control,
                "fewer epochs than the control": _names(p, VS_CONTROL, VS_CONTROL),
                "best": p.best,
                "not shown behind the best": (
                    _names(p, VS_BEST, VS_BEST) if p.best != p.control else "— (the control)"
                ),
                "detectable (80% power)": _detectable_text(p),
            }
        )
    return pd.DataFrame(rows)


def _planned_section(doc: Document, info: TaskInfo, results: pd.DataFrame) -> None:
    """Each strategy against the control and against the best, with effect sizes."""
    planned = planned_comparisons(results)
    doc.heading(3, "Planned comparisons")
    if planned is None:
        doc.para(
            "No planned comparisons: the task has no control strategy (the suite's `control`, "
            "else a `fixed` strategy) or fewer than two strategies with two paired seeds."
        )
        return
    better = "lower" if info.direction == "minimize" else "higher"
    table = [
        {
            "strategy": r.strategy,
            "question": f"{r.question} ({r.other})" if r.question == VS_BEST else r.question,
            "seeds: fewer / tie / more": f"{r.fewer} / {r.ties} / {r.more}",
            "P(fewer epochs) [95% CI]": (
                f"{r.share_fewer:.2f} [{r.share_low:.2f}, {r.share_high:.2f}]"
            ),
            "median Δ best val [95% CI]": (
                f"{r.value_diff:+.3g} [{r.value_low:+.3g}, {r.value_high:+.3g}]"
                if math.isfinite(r.value_diff)
                else "—"
            ),
            "p": fmt_p(r.p),
            "p (Holm)": fmt_p(r.p_holm),
            "answer": r.verdict,
        }
        for r in planned.comparisons.itertuples()
    ]
    doc.table(pd.DataFrame(table))
    doc.para(
        f"Control: `{planned.control}`; best: `{planned.best}` (fewest median epochs to target). "
        "Each strategy is tested against the control (one-sided: does it need fewer epochs?) "
        "and against the best (two-sided), by the Wilcoxon signed-rank test on the paired "
        "epochs to target (a miss counts as above every hit), Holm-adjusted over these "
        f"{len(planned.comparisons)} comparisons only. P(fewer epochs): the share of paired "
        "seeds on which the strategy needed fewer epochs than the other (both missing: a tie, "
        f"counted half); median Δ best val: the strategy's best validation {info.metric} minus "
        f"the other's, median over seeds, signed so that a negative value favours the strategy "
        f"({better} is better); both intervals are percentile bootstraps over the seeds. "
        f"Power: {_detectable_power_text(planned)}"
    )


def _detectable_power_text(planned: Planned) -> str:
    if planned.detectable is None:
        return (
            f"with {planned.seeds} paired seeds and {len(planned.comparisons)} comparisons the "
            "smallest possible p-value is above Holm's first threshold, so no difference can be "
            "shown here whatever the strategies do: 'not shown better' says nothing about them."
        )
    return (
        f"with {planned.seeds} paired seeds, a strategy is shown better than another with 80% "
        f"probability only when it needs fewer epochs on at least {planned.detectable:.0%} of "
        "seeds (exact sign test at Holm's first threshold); a smaller advantage is likely to "
        "read 'not shown better', which is not 'no difference'."
    )


def by_group(summary: pd.DataFrame, results: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """The summary grouped as design.md's strategy table (search, population, heuristic,
    baseline, self-tuning; the summary's order within a group), with each row's group, and the
    optimizers its trials trained with (a self-tuning strategy brings its own)."""
    from lrbench.strategies import GROUPS, STRATEGY_GROUPS

    names = dict(zip(results["strategy"], results["strategy_name"]))
    out = summary.assign(
        group=[STRATEGY_GROUPS.get(names.get(s, ""), "other") for s in summary["strategy"]]
    )
    used = trials.dropna(subset=["optimizer"]).groupby("strategy", sort=False)["optimizer"]
    trained = {s: ", ".join(sorted(set(map(str, v)))) for s, v in used}
    out["optimizer"] = [trained.get(s, o) for s, o in zip(out["strategy"], out["optimizer"])]
    rank = {g: i for i, g in enumerate(GROUPS)}
    order = out["group"].map(lambda g: rank.get(g, len(GROUPS)))
    return out.iloc[order.argsort(kind="stable")].reset_index(drop=True)


def _strategies_table(
    summary: pd.DataFrame, metric: str, unit: str, fits: dict[str, Any]
) -> pd.DataFrame:
    u = f" ({unit})" if unit else ""
    return pd.DataFrame(
        {
            "group": summary["group"],
            "strategy": summary["strategy"],
            "optimizer": summary["optimizer"],
            "epochs to target, median [IQR]": [fmt_median_iqr(e) for e in summary["ett"]],
            "epochs to target, IQM [95% CI]": [
                fmt_iqm_ci(v, lo, hi)
                for v, lo, hi in zip(
                    summary["ett_iqm"], summary["ett_iqm_lo"], summary["ett_iqm_hi"]
                )
            ],
            "success": [
                fmt_success(r, n) for r, n in zip(summary["n_reached"], summary["n_runs"])
            ],
            "budget fit": [_fit_cell(fits.get(s)) for s in summary["strategy"]],
            f"best val {metric}{u}, median": summary["best_val_median"].map(fmt),
            f"test {metric} of chosen config{u}, median": summary["test_median"].map(fmt),
            "epochs spent, median": summary["epochs_median"].map(lambda v: f"{v:.1f}"),
            "wall time (s), median": summary["wall_median"].map(lambda v: fmt(v, 3)),
            "seeds": summary["n_runs"],
        }
    )


def _fit_cell(fit: Any) -> str:
    """The strategies table's budget-fit cell: what the budget holds of the design; a design
    the budget does not hold is marked so that no reader misses it."""
    if fit is None:
        return "—"
    if not fit.fits:
        return f"**does not fit**: {fit.short}"
    return fit.short if fit.full else f"partly: {fit.short}"


def task_section(doc: Document, info: TaskInfo, data: SuiteData, summary: pd.DataFrame) -> None:
    results, trials, runs = data.results, data.trials, data.runs
    order = list(info.colors)
    first = results.iloc[0]
    doc.heading(2, f"Task `{info.label}`")
    doc.para(
        f"Task `{first['task_name']}`; validation metric **{info.metric_u}**, "
        f"{'lower' if info.direction == 'minimize' else 'higher'} is better, {info.target_text}. "
        f"Budget per run: {info.budget:g} epochs ({epochs_per_trial(runs[0])} per trial); "
        f"{info.seeds} seed(s) per strategy; {len(results)} runs, {len(trials)} trials. "
        f"How the target was set: {target_procedure(runs)}."
    )

    doc.heading(3, "Strategies")
    fits = budget_fits(runs)
    doc.table(_strategies_table(by_group(summary, results, trials), info.metric, info.unit, fits))
    short = [f.message for f in fits.values() if f.message]
    if short:
        doc.para("Budget fit: " + "; ".join(short) + ".")
    doc.para(
        f"Epochs to target in epochs; best val: the best validation {info.metric} measured within "
        "the budget; "
        f"test: the chosen configuration's test {info.metric}; success: runs that reached the target / runs. "
        "By group (search, heuristic, baseline, self-tuning: the last train one configuration "
        "and search nothing); within a group by median epochs to target, then median best "
        "validation value."
    )

    _reference_section(doc, info, data)
    _paired_section(doc, info, data.results)
    _progress_figures(doc, info, data, order)
    _schedules_section(doc, info, data, order)

    optimizers = optimizers_used(runs)
    if len(optimizers) >= 2:
        _tolerance_section(doc, info, trials, optimizers)

    _planned_section(doc, info, results)
    doc.heading(3, "All pairs: ranks and pairwise tests")
    _stats_section(doc, info, results)


def _reference_section(doc: Document, info: TaskInfo, data: SuiteData) -> None:
    """Published figures (a suite's `reference`) beside the runs' own, with the difference."""
    rows = reference_rows(data.runs)
    if rows.empty:
        return
    doc.heading(3, "Reference figures")
    table = []
    for (strategy, epochs), g in rows.groupby(["strategy", "epochs"], sort=False):
        ours, ref = float(g["ours"].median()), float(g["reference"].iloc[0])
        short = float(g["trained"].min()) < epochs - 1e-9
        table.append(
            {
                "strategy": strategy,
                "epochs": f"{epochs:g}",
                # Two decimals, as published tables give them: differences of 0.1 matter here.
                f"ours (median of {len(g)})": fmt_fixed(ours, 2)
                + (" (trained fewer epochs)" if short else ""),
                "reference": fmt_fixed(ref, 2),
                "ours − reference": f"{ours - ref:+.2f}" if math.isfinite(ours) else "—",
            }
        )
    doc.table(pd.DataFrame(table))
    doc.para(
        f"Best-so-far validation {info.metric} within the run's first so-many cumulative epochs, "
        "beside the published figure the suite names for that strategy (`reference`)."
    )


def _paired_section(doc: Document, info: TaskInfo, results: pd.DataFrame) -> None:
    """Seed-by-seed differences of the best validation value for each pair of a small design
    (an ablation's with and without), with their uncertainty."""
    pairs = paired_value_differences(results, info.direction)
    if pairs is None:
        return
    doc.heading(3, "Paired differences")
    better = "lower" if info.direction == "minimize" else "higher"
    table = [
        {
            "first − second": f"{r.first} − {r.second}",
            "seeds": r.seeds,
            "mean (95% CI)": f"{r.mean:+.2f} ({r.ci_low:+.2f} to {r.ci_high:+.2f})",
            "median": f"{r.median:+.2f}",
            "range": f"{r.min:+.2f} to {r.max:+.2f}",
            "seeds where first is better": f"{r.first_better} of {r.seeds}",
        }
        for r in pairs.itertuples()
    ]
    doc.table(pd.DataFrame(table))
    doc.para(
        f"Best validation {info.metric} of the first strategy minus the second's, seed by seed "
        f"(the seeds both completed; {better} is better, so a "
        f"{'negative' if better == 'lower' else 'positive'} difference favours the first). "
        "The interval is the paired t-interval of the mean difference (`scipy.stats.ttest_rel`); "
        "with 3 seeds it is wide, and an interval that contains 0 does not separate the two. "
        f"Shown for tasks with at most {MAX_PAIRED_STRATEGIES} strategies."
    )


def _progress_figures(doc: Document, info: TaskInfo, data: SuiteData, order: list[str]) -> None:
    """Anytime curves, epochs to target, the trials' rates and the range tests."""
    doc.heading(3, "Anytime performance")
    doc.figure(
        fig_anytime(info, data.curves, order),
        f"{info.label}_anytime.png",
        f"{info.label}: best validation {info.metric_u} so far against cumulative training epochs "
        f"(range test first, then the trials in order), one panel per strategy family on the same "
        f"axes; line: median over seeds, band: interquartile range; thin dashed grey: the first "
        f"baseline, for reference in every panel; dashed black: the target; dotted: the budget.",
    )
    doc.figure(
        fig_epochs_to_target(info, data.results, order),
        f"{info.label}_epochs_to_target.png",
        f"{info.label}: epochs to target of the runs that reached it (box: quartiles, dots: runs); "
        "the count of runs that never reached it is written above each strategy.",
    )

    doc.heading(3, "Where the trials went")
    doc.figure(
        fig_lr_scatter(info, data.trials, order),
        f"{info.label}_lr_scatter.png",
        f"{info.label}: every trial's learning rate (log scale) against its best validation {info.metric_u}, "
        "coloured by strategy; x at the plot's edge: diverged trial; hollow: pruned.",
    )

    fig = fig_range_tests(info, data.runs, data.results)
    if fig is not None:
        doc.heading(3, "LR range tests")
        doc.figure(
            fig,
            f"{info.label}_range_test.png",
            f"{info.label}: the LR range test of each range-test strategy (its lowest seed): loss against "
            "the rate; suggestions marked; solid black line: the rate the run trained with. Its steps are "
            "charged to the run's budget.",
        )


def _schedules_section(doc: Document, info: TaskInfo, data: SuiteData, order: list[str]) -> None:
    """The chosen trials' schedules, replayed, and every run's chosen configuration."""
    doc.heading(3, "Schedules used")
    fig, notes = fig_schedules(info, data.runs, order)
    if fig is not None:
        doc.figure(
            fig,
            f"{info.label}_schedules.png",
            f"{info.label}: learning rate of each strategy's chosen trial (lowest seed) over its epochs, "
            "rebuilt from the stored schedule with the torch scheduler and stepped as the engine steps "
            "it; dots: the rate the trial recorded at the end of each epoch.",
        )
    for note in notes:
        doc.para(note)
    chosen = data.results[["strategy", "seed", "chosen_lr", "chosen_schedule"]].copy()
    # In the strategies' order, then by seed: the storage lists runs as workers finished them.
    rank = {name: i for i, name in enumerate(order)}
    chosen = chosen.sort_values(
        ["strategy", "seed"],
        key=lambda c: c.map(rank) if c.name == "strategy" else c,
        kind="stable",
    )
    chosen["chosen_lr"] = chosen["chosen_lr"].map(lambda v: fmt(v, 3))
    chosen.columns = ["strategy", "seed", "chosen lr", "chosen schedule"]
    doc.para("Chosen configuration of every run:")
    doc.table(chosen)


def _tolerance_section(
    doc: Document, info: TaskInfo, trials: pd.DataFrame, optimizers: list[str]
) -> None:
    doc.heading(3, "Optimizer tolerance")
    data = tolerance_data(trials)
    doc.figure(
        fig_tolerance(info, data, optimizers),
        f"{info.label}_tolerance.png",
        f"{info.label}: final validation {info.metric_u} (last epoch of each trial) against its constant "
        "learning rate, per optimizer; line: median per rate; x at the edge: diverged.",
    )
    rows = []
    for opt in optimizers:
        g = data[data["optimizer"] == opt]
        w = convergence_window(
            g["lr"].tolist(), g["final_val"].tolist(), info.target, info.direction
        )
        rows.append(
            {
                "optimizer": opt,
                "rates tried": g["lr"].nunique(),
                "window (lowest – highest rate)": "none"
                if w is None
                else f"{w.low:.3g} – {w.high:.3g}",
                "rates in window": 0 if w is None else w.n_rates,
                "width (decades)": "none" if w is None else f"{w.decades:.2f}",
            }
        )
    doc.table(pd.DataFrame(rows))
    doc.para(
        "Convergence window: the longest contiguous run of the tried rates (sorted by rate) whose final "
        f"validation {info.metric} meets the target (the median over seeds at each rate; diverged "
        "= not met); "
        "width = log10(highest rate) − log10(lowest rate), in decades (0 for a single rate). "
        "Constant-rate trials only."
    )


def _stats_section(doc: Document, info: TaskInfo, results: pd.DataFrame) -> None:
    res = rank_tests(results)
    if res.get("reason"):
        doc.para(f"Rank tests: {res['reason']}.")
        return
    seeds = res["seeds"]
    doc.para(
        f"Measure: epochs to target of each run; blocks: the {len(seeds)} seeds every strategy completed "
        f"({', '.join(map(str, seeds))}). Strategies are ranked within each seed (1 = fewest epochs; a run "
        "that never reached the target ranks last, ties share the mean rank)."
    )
    ranks = sorted(res["mean_ranks"].items(), key=lambda kv: kv[1])
    doc.table(
        pd.DataFrame(
            {"strategy": [k for k, _ in ranks], "mean rank": [f"{v:.2f}" for _, v in ranks]}
        )
    )
    fr = res["friedman"]
    if fr is None:
        doc.para("Friedman test: needs ≥ 3 strategies (with two, see the Wilcoxon test below).")
    elif fr.get("note"):
        doc.para(f"Friedman test: not computed: {fr['note']}.")
    else:
        doc.para(
            f"Friedman test (`scipy.stats.friedmanchisquare` on the within-seed ranks, "
            f"{len(res['strategies'])} strategies × {len(seeds)} seeds): χ² = {fr['statistic']:.3f}, "
            f"p = {fmt_p(fr['pvalue'])}."
        )
    w = res["wilcoxon"].copy()
    w["statistic"] = w["statistic"].map(lambda v: "—" if not math.isfinite(v) else f"{v:g}")
    w["p"] = w.pop("pvalue").map(fmt_p)
    w["p (Holm)"] = w.pop("pvalue_holm").map(fmt_p)
    doc.para(
        "Pairwise Wilcoxon signed-rank tests (`scipy.stats.wilcoxon`, two-sided) on the paired epochs to "
        f"target (pairs = seeds); an unreached run counts as 2 × budget = {2 * info.budget:g} epochs, above "
        "every reached run (any larger value gives the same p-value); pairs that tie are dropped; "
        "p (Holm): adjusted for the number of pairs. With few seeds the smallest possible p-value is large "
        f"(3 pairs: 0.25): read them as {len(seeds)} paired observations, not proof."
    )
    doc.table(w)
    _critical_difference(doc, info, res)


def _critical_difference(doc: Document, info: TaskInfo, res: dict[str, Any]) -> None:
    """Demšar's diagram of the mean ranks, bars from the Holm-adjusted Wilcoxon tests."""
    pvalues = pvalue_matrix(res["wilcoxon"], res["strategies"])
    doc.figure(
        fig_critical_difference(
            res["mean_ranks"],
            pvalues,
            info.colors,
            ALPHA,
            f"{info.label}: mean rank of epochs to target over {len(res['seeds'])} seeds",
        ),
        f"{info.label}_critical_difference.png",
        f"{info.label}: critical-difference diagram (Demšar 2006, drawn by scikit-posthocs): each "
        "strategy at its mean within-seed rank (1 = fewest epochs to target); a horizontal bar "
        f"joins strategies that the pairwise Wilcoxon tests, Holm-adjusted, do not tell apart at "
        f"α = {ALPHA:g}.",
    )
