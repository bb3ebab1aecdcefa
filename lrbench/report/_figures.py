"""The report's figures (matplotlib, drawn on Agg canvases: no display, no global pyplot state).
The only module of the report that imports matplotlib."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lrbench.report._data import (
    ChosenSchedule,
    chosen_lr,
    chosen_schedule,
    has_range_test,
    range_test_of,
)
from lrbench.report._formatting import TaskInfo
from lrbench.report._results import Run, curves_on_grid
from lrbench.tools import ScheduleSpec, replay_schedule


def _figure(width: float = 8.0, height: float = 5.0, nrows: int = 1, ncols: int = 1):
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _close(fig) -> None:
    fig.clear()


# One hue per strategy family, so that a figure of 19 strategies reads as a few families.
GROUP_COLORMAPS = {
    "search": "Blues",
    "heuristic": "Oranges",
    "baseline": "Greys",
    "self-tuning": "Greens",
    "population": "Purples",
}


def strategy_colors(names: list, groups: dict[str, str] | None = None) -> dict:
    """A colour per name. With `groups` (name -> family): shades of the family's hue, dark to
    light in order; without: distinct colours (tab10 up to 10 names, tab20 beyond)."""
    if groups is None:
        cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
        return {name: cmap(i % cmap.N) for i, name in enumerate(names)}
    families: dict[str, list] = {}
    for name in names:
        families.setdefault(groups.get(name, "other"), []).append(name)
    colors = {}
    for family, members in families.items():
        cmap = matplotlib.colormaps[GROUP_COLORMAPS.get(family, "Reds")]
        for name, shade in zip(members, np.linspace(0.9, 0.45, len(members))):
            colors[name] = cmap(float(shade) if len(members) > 1 else 0.75)
    return colors


def _distinct(names: list) -> dict:
    """Distinct colours for the few strategies of one panel."""
    return strategy_colors(names)


def _set_y_scale(ax, values: np.ndarray, target: float) -> None:
    """Log y when every value is positive and they span more than two decades; symmetric-log when
    they span far more than the target's own size but touch zero or go negative (f = 0 reached
    exactly, negative minima); linear otherwise."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return
    if np.all(v > 0):
        if v.max() / v.min() > 100:
            ax.set_yscale("log")
        return
    scale = (
        abs(target)
        if target and math.isfinite(target)
        else float(np.abs(v[v != 0]).min(initial=1.0))
    )
    if (v.max() - v.min()) / scale > 100:
        # Linear within a tenth of the target (values reaching 0 exactly); with a negative target the
        # region around 0 is of no interest: linear up to the target's size.
        ax.set_yscale("symlog", linthresh=scale if v.min() < 0 else scale / 10)


def _target_line(ax, info: TaskInfo) -> None:
    ax.axhline(info.target, color="black", ls="--", lw=1, label=info.target_text)


def fig_anytime(info: TaskInfo, curves: pd.DataFrame, order: list[str]):
    """Small multiples: one panel per strategy family (its strategies in distinct colours,
    median and IQR band over seeds), the same axes in every panel, and the family-less control
    (the first baseline) drawn thin in every other panel for reference."""
    grid = curves_on_grid(curves, 201)
    families: dict[str, list[str]] = {}
    for s in order:
        families.setdefault(info.groups.get(s, "other"), []).append(s)
    baselines = families.get("baseline", [])
    reference = baselines[0] if baselines else None
    n = len(families)
    ncols = 2 if n > 1 else 1
    nrows = math.ceil(n / ncols)
    fig, axes = _figure(12.0 if ncols == 2 else 8.0, 3.6 * nrows + 0.6, nrows, ncols)
    vals = np.concatenate([grid[["median", "q25", "q75"]].to_numpy(float).ravel(), [info.target]])
    for ax, (family, members) in zip(axes.ravel(), families.items()):
        colors = _distinct(members)
        shown = members + ([reference] if reference and reference not in members else [])
        for s in shown:
            g = grid[grid["strategy"] == s]
            if g.empty:
                continue
            runs = int(g["n_runs"].iloc[0])
            label = (
                f"{s} (n={runs})"
                if g["q75"].notna().any() or g["median"].notna().any()
                else f"{s} (n={runs}): no finite value"
            )
            if s not in members:  # the reference from another panel
                ax.plot(
                    g["epochs"],
                    g["median"],
                    color="0.35",
                    lw=1,
                    ls="--",
                    drawstyle="steps-post",
                    label=f"{s} (reference)",
                )
                continue
            c = colors[s]
            ax.plot(g["epochs"], g["median"], color=c, lw=2, drawstyle="steps-post", label=label)
            ax.fill_between(g["epochs"], g["q25"], g["q75"], color=c, alpha=0.2, lw=0, step="post")
        _target_line(ax, info)
        ax.axvline(info.budget, color="0.5", ls=":", lw=1)
        _set_y_scale(ax, vals, info.target)
        if np.isfinite(vals).sum() > 1:
            ax.set_ylim(*_padded_limits(ax, vals, None))
        ax.set_xlim(0, info.budget * 1.02)
        ax.set_title(family, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small", loc="best")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.supxlabel(
        f"cumulative training epochs of the run (range test included; budget {info.budget:g})"
    )
    fig.supylabel(f"best validation {info.metric} so far ({info.better})", fontsize="medium")
    fig.suptitle(f"{info.label}: anytime performance by family, median and IQR band over seeds")
    return fig


def fig_epochs_to_target(info: TaskInfo, results: pd.DataFrame, order: list[str]):
    fig, axes = _figure(max(6.0, 1.3 * len(order) + 3), 4.8)
    ax = axes[0, 0]
    rng = np.random.default_rng(0)
    top = info.budget
    for i, s in enumerate(order):
        g = results[results["strategy"] == s]
        ett = g["epochs_to_target"].to_numpy(float)
        reached = ett[np.isfinite(ett)]
        c = info.colors[s]
        if len(reached):
            ax.boxplot(
                [reached],
                positions=[i],
                widths=0.5,
                showfliers=False,
                patch_artist=True,
                boxprops={"facecolor": c, "alpha": 0.35},
                medianprops={"color": c, "lw": 2},
            )
            ax.scatter(
                i + rng.uniform(-0.12, 0.12, len(reached)), reached, color=c, s=18, zorder=3
            )
            top = max(top, float(reached.max()))
        missed = len(ett) - len(reached)
        ax.annotate(
            f"{missed}/{len(ett)}\nnot reached" if missed else f"all {len(ett)}\nreached",
            (i, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, -4),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize="small",
            color="firebrick" if missed else "0.3",
        )
    ax.axhline(info.budget, color="0.5", ls=":", lw=1)
    ax.annotate(
        f"budget {info.budget:g} epochs",
        (1.0, info.budget),
        xycoords=("axes fraction", "data"),
        xytext=(-4, 2),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize="small",
        color="0.4",
    )
    ax.set_xticks(range(len(order)), order, rotation=20 if len(order) > 4 else 0)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(0, top * 1.3)  # room for the annotations
    ax.set_ylabel("epochs to target (range test included; fewer is better)")
    ax.set_title(
        f"{info.label}: epochs until validation {info.metric} first met the {info.target_text} "
        "(reached runs)",
        fontsize="medium",
    )
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def _edge_y(direction: str) -> float:
    return 0.97 if direction == "minimize" else 0.03  # the worst edge of the axes


def _label_edge(ax, direction: str) -> None:
    """A faint line and a word where the diverged markers sit."""
    y = _edge_y(direction)
    ax.plot(
        [0, 1], [y, y], color="0.92", lw=9, zorder=0, transform=ax.transAxes, solid_capstyle="butt"
    )
    ax.text(
        0.005,
        y,
        "diverged",
        transform=ax.transAxes,
        fontsize="x-small",
        color="0.4",
        va="center",
        ha="left",
    )


def fig_lr_scatter(info: TaskInfo, trials: pd.DataFrame, order: list[str]):
    fig, axes = _figure(8.5, 5)
    ax = axes[0, 0]
    ok_all = trials[~trials["diverged"] & trials["best_val"].notna()]
    for s in order:
        g = trials[trials["strategy"] == s]
        c = info.colors[s]
        ok = g[~g["diverged"] & g["best_val"].notna()]
        full = ok[ok["state"] != "PRUNED"]
        pruned = ok[ok["state"] == "PRUNED"]
        ax.scatter(
            full["lr"], full["best_val"], color=c, s=26, alpha=0.8, label=f"{s} ({len(g)} trials)"
        )
        if len(pruned):
            ax.scatter(pruned["lr"], pruned["best_val"], facecolors="none", edgecolors=c, s=26)
        bad = g[g["diverged"] | g["best_val"].isna()]
        if len(bad):
            ax.scatter(
                bad["lr"],
                [_edge_y(info.direction)] * len(bad),
                marker="x",
                color=c,
                s=40,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
            )
    _target_line(ax, info)
    if (trials["diverged"] | trials["best_val"].isna()).any():
        _label_edge(ax, info.direction)
        ax.scatter([], [], marker="x", color="0.3", label="diverged (at the worst edge)")
    if (trials["state"] == "PRUNED").any():
        ax.scatter([], [], facecolors="none", edgecolors="0.3", label="pruned")
    ax.set_xscale("log")
    vals = np.concatenate([ok_all["best_val"].to_numpy(float), [info.target]])
    _set_y_scale(ax, vals, info.target)
    ax.set_ylim(*_padded_limits(ax, vals, info.direction))
    _lr_limits(ax, trials["lr"])
    ax.set_xlabel("learning rate (peak rate for scheduled trials)")
    ax.set_ylabel(f"best validation {info.metric_u} of the trial ({info.better})")
    ax.set_title(f"{info.label}: where each strategy put its trials (all seeds)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _lr_limits(ax, lrs: pd.Series) -> None:
    """Log-x limits covering every trial, the diverged ones drawn in axes coordinates included."""
    v = lrs.to_numpy(float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v):
        ax.set_xlim(v.min() / 1.6, v.max() * 1.6)


def _padded_limits(ax, values: np.ndarray, direction: str | None) -> tuple[float, float]:
    """y limits around `values` in the axis' own scale (linear, log, symlog), with room at the worst
    edge of `direction` for the diverged markers (None: 5 % each side)."""
    v = values[np.isfinite(values)]
    if ax.get_yscale() == "log":
        v = v[v > 0]
    if not len(v):
        return ax.get_ylim()
    tr = ax.yaxis.get_transform()
    t = tr.transform(v.reshape(-1, 1)).ravel()
    lo, hi = float(t.min()), float(t.max())
    span = hi - lo or (abs(hi) * 0.1 or 1.0)
    margins: dict[str | None, tuple[float, float]] = {
        "minimize": (0.05, 0.15),
        "maximize": (0.15, 0.05),
    }
    below, above = margins.get(direction, (0.05, 0.05))
    lo, hi = lo - below * span, hi + above * span
    back = tr.inverted().transform(np.array([[lo], [hi]])).ravel()
    lo_data, hi_data = float(back[0]), float(back[1])
    if (
        ax.get_yscale() == "symlog" and v.min() >= 0
    ):  # no empty negative decades below a zero value
        lo_data = max(lo_data, -0.3 * ax.yaxis.get_transform().linthresh)
    return lo_data, hi_data


def fig_range_tests(info: TaskInfo, runs: list[Run], results: pd.DataFrame):
    """One panel per range-test strategy (its lowest seed), suggestions marked, the rate used drawn."""
    picked: dict[str, Run] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        if has_range_test(r) and r.strategy not in picked:
            picked[r.strategy] = r
    if not picked:
        return None
    n = len(picked)
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    fig, axes = _figure(7.5 if n == 1 else 6.5 * ncols, 4.8 * nrows, nrows, ncols)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for ax, (s, r) in zip(axes.ravel(), picked.items()):
        rt = range_test_of(r)
        title = f"{s} (seed {r.seed}): {rt.num_steps} steps" + (
            ", stopped at divergence" if rt.stopped_early else ""
        )
        rt.plot(ax=ax, title=f"{info.label}: LR range test of {title}" if n == 1 else title)
        lr = chosen_lr(r)
        if lr is not None:
            ax.axvline(lr, color="black", lw=1.0, ls=(0, (6, 3)), label=f"rate used = {lr:.2e}")
            ax.legend(fontsize="x-small", loc="best")
        ax.set_xlabel("learning rate (range test grows it every step)")
    if n > 1:
        fig.suptitle(f"{info.label}: LR range tests (loss against rate; suggestions marked)")
    return fig


def replayed_schedule(chosen: ChosenSchedule, spe: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, rates) of a chosen trial's schedule, replayed: x = step index / steps per epoch
    (epochs within the trial) for every step the trial took, plus the point after the last."""
    schedule, lr, optimizer = chosen.schedule, float(chosen.lr), chosen.optimizer
    epochs, steps = chosen.planned_epochs(), chosen.steps
    spec = ScheduleSpec.parse((schedule or "constant").split())
    rates = replay_schedule(
        spec, lr, epochs=epochs, steps_per_epoch=spe, steps=steps, optimizer=optimizer
    )
    return np.arange(steps + 1) / spe, np.asarray(rates)


def fig_schedules(info: TaskInfo, runs: list[Run], order: list[str]):
    """The chosen trial's schedule per strategy (lowest seed), replayed; dots: recorded rates."""
    fig, axes = _figure(12, 5.5)  # wide: the legend spells out every schedule
    ax = axes[0, 0]
    notes: list[str] = []
    all_rates: list[float] = []
    seeds: set[int] = set()
    by_strategy: dict[str, Run] = {}
    for run in sorted(runs, key=lambda r: r.seed):
        by_strategy.setdefault(run.strategy, run)
    for s in order:
        r = by_strategy.get(s)
        chosen = chosen_schedule(r) if r is not None else None
        if r is None or chosen is None:
            continue
        spe = chosen.steps_per_epoch
        try:
            x, rates = replayed_schedule(chosen, spe)
        except Exception as e:  # a schedule this version cannot rebuild: say so, draw the rest
            notes.append(f"{s}: schedule {chosen.schedule!r} not replayed ({e})")
            continue
        seeds.add(r.seed)
        c = info.colors[s]
        desc = _short_schedule(chosen.schedule)
        ax.plot(
            x,
            rates,
            color=c,
            lw=1.6,
            drawstyle="steps-post",
            label=f"{s}: {desc}, lr={chosen.lr:.3g}",
        )
        ax.plot(*chosen.recorded(), "o", color=c, ms=4)
        all_rates.extend(rates)
    if not all_rates:
        _close(fig)
        return None, notes
    ax.plot([], [], "o", color="0.3", ms=4, label="rate recorded at each epoch's end")
    v = np.asarray(all_rates)
    v = v[v > 0]
    if len(v) and v.max() / v.min() > 10:
        ax.set_yscale("log")
    ax.set_xlabel("epochs within the chosen trial")
    ax.set_ylabel("learning rate")
    seed_text = ", ".join(str(s) for s in sorted(seeds))
    ax.set_title(f"{info.label}: learning rate of the chosen configurations (seed {seed_text})")
    ax.grid(True, which="major", alpha=0.3)
    # A figure legend placed "outside" is laid out by constrained layout, title included.
    fig.legend(*ax.get_legend_handles_labels(), fontsize="x-small", loc="outside right upper")
    return fig, notes


def _short_schedule(schedule: str | None) -> str:
    """A stored schedule description with its numbers at 3 significant digits, for legends."""
    words = []
    for w in (schedule or "constant").split():
        key, sep, value = w.partition("=")
        try:
            value = f"{float(value):.3g}" if sep and not value.isdigit() else value
        except ValueError:
            pass
        words.append(f"{key}{sep}{value}")
    desc = " ".join(words)
    return desc if len(desc) <= 70 else desc[:69] + "…"


def fig_tolerance(info: TaskInfo, data: pd.DataFrame, optimizers: list[str]):
    fig, axes = _figure(8.5, 5)
    ax = axes[0, 0]
    finite = data["final_val"].to_numpy(float)
    for i, opt in enumerate(optimizers):
        g = data[data["optimizer"] == opt]
        c = f"C{i % 10}"
        ok = g[g["final_val"].notna()]
        ax.scatter(
            ok["lr"], ok["final_val"], color=c, s=22, alpha=0.8, label=f"{opt} ({len(g)} trials)"
        )
        med = ok.groupby("lr")["final_val"].median().sort_index()
        ax.plot(med.index, med.values, color=c, lw=1.2, alpha=0.8)
        bad = g[g["final_val"].isna()]
        if len(bad):
            ax.scatter(
                bad["lr"],
                [_edge_y(info.direction)] * len(bad),
                marker="x",
                color=c,
                s=40,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
            )
    _target_line(ax, info)
    if data["final_val"].isna().any():
        _label_edge(ax, info.direction)
        ax.scatter([], [], marker="x", color="0.3", label="diverged (at the worst edge)")
    ax.set_xscale("log")
    vals = np.concatenate([finite, [info.target]])
    _set_y_scale(ax, vals, info.target)
    ax.set_ylim(*_padded_limits(ax, vals, info.direction))
    _lr_limits(ax, data["lr"])
    ax.set_xlabel("learning rate (constant-rate trials)")
    ax.set_ylabel(
        f"final validation {info.metric}"
        + (f" ({info.unit}, last epoch)" if info.unit else " (last epoch)")
    )
    ax.set_title(f"{info.label}: optimizer tolerance of the learning rate (all seeds)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def fig_critical_difference(
    mean_ranks: dict[str, float], pvalues: pd.DataFrame, colors: dict, alpha: float, title: str
):
    """Demšar's critical-difference diagram, drawn by scikit-posthocs: mean ranks on the axis
    (1 = fewest epochs), a bar joining strategies whose pairwise test (here Holm-adjusted
    Wilcoxon) finds no difference at `alpha`."""
    import scikit_posthocs

    n = len(mean_ranks)
    # The labels sit outside the axes, where a layout engine does not look: room by hand.
    fig = Figure(figsize=(10.0, 1.6 + 0.28 * n))
    FigureCanvasAgg(fig)
    widest = max(len(f"{s} (0.00)") for s in mean_ranks)
    side = min(0.4, 0.02 + widest * 0.0085)
    ax = fig.add_axes((side, 0.03, 1 - 2 * side, 0.77))
    scikit_posthocs.critical_difference_diagram(
        pd.Series(mean_ranks),
        pvalues,
        alpha=alpha,
        ax=ax,
        color_palette={s: colors.get(s, "black") for s in mean_ranks},
        label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}",
    )
    ax.set_title(f"{title}\n(rank 1 = fewest epochs: a lower rank is better)", fontsize=10)
    return fig


# Strategies named in a figure of many; the others are drawn muted, without a legend entry.
LABELLED = 5


def fig_performance_profile(profile: pd.DataFrame, colors: dict, n_tasks: int):
    """rho_s(tau) against tau for every strategy: steps, as the profile is a step function. The
    LABELLED strategies with the largest area under their profile are drawn in their colours and
    named; the rest muted."""
    fig, axes = _figure(8.0, 4.8)
    ax = axes[0, 0]
    taus = profile.index.to_numpy(float)
    top = list(profile.mean().sort_values(ascending=False, kind="stable").index[:LABELLED])
    muted = [s for s in profile.columns if s not in top]
    for s in muted:
        ax.step(taus, profile[s].to_numpy(float), where="post", color="0.8", lw=1, zorder=1)
    for i, s in enumerate(top):
        # A small upward offset per strategy keeps coinciding profiles visible.
        y = profile[s].to_numpy(float) + i * 0.006
        ax.step(taus, y, where="post", color=colors.get(s), label=s, lw=2, zorder=2)
    if muted:
        ax.plot([], [], color="0.8", lw=1, label=f"{len(muted)} others")
    ax.set_xlabel("τ: within this factor of the best strategy's median epochs to target")
    ax.set_ylabel(f"fraction of the {n_tasks} tasks (higher is better)")
    ax.set_xlim(taus.min(), taus.max())
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig
