"""`lrbench report`: the comparison report of a suite, from its Optuna storage alone.

Writes `reports/<suite>/` (or `out`): `report.md`, `report.html` (the same content, figures
embedded as base64 PNG, one self-contained file), the PNG figures and `runs.csv` (one row per
run with every per-run number, `lrbench.results.load_results`). Per task: the strategies table,
anytime curves (median and IQR over seeds), epochs-to-target box plot, where every trial put its
learning rate, range-test curves, the schedules actually used (torch schedulers replayed from the
stored spec), optimizer tolerance when the task's runs use several optimizers, and with at least
3 seeds a Friedman test and pairwise Wilcoxon signed-rank tests.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import html
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lrbench.errors import ConfigError
from lrbench.results import (
    Run,
    anytime_curves,
    chosen_trial,
    convergence_window,
    curves_on_grid,
    load_results,
    load_runs,
    load_trials,
    quantile,
)

REPORTS_DIR = Path("reports")
DPI = 110


# --------------------------------------------------------------------------------------------- #
# A tiny document model rendered twice: Markdown and self-contained HTML
# --------------------------------------------------------------------------------------------- #
@dataclass
class _Doc:
    out: Path
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def figure(self, fig, name: str, caption: str) -> None:
        path = self.out / name
        fig.savefig(path, dpi=DPI)
        _close(fig)
        self.figures.append(path)
        self.blocks.append(("fig", (path, caption)))

    def markdown(self) -> str:
        parts = []
        for kind, x in self.blocks:
            if kind == "h":
                parts.append("#" * x[0] + " " + x[1])
            elif kind == "p":
                parts.append(x)
            elif kind == "ul":
                parts.append("\n".join(f"- {item}" for item in x))
            elif kind == "table":
                parts.append(markdown_table(x))
            elif kind == "fig":
                parts.append(f"![{x[0].stem}]({x[0].name})\n\n*{x[1]}*")
        return "\n\n".join(parts) + "\n"

    def html(self, title: str) -> str:
        body = []
        for kind, x in self.blocks:
            if kind == "h":
                body.append(f"<h{x[0]}>{_inline_html(x[1])}</h{x[0]}>")
            elif kind == "p":
                body.append(f"<p>{_inline_html(x)}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in x) + "</ul>")
            elif kind == "table":
                body.append(
                    x.to_html(index=False, escape=True, border=0, na_rep="", classes="tbl")
                )
            elif kind == "fig":
                data = base64.b64encode(x[0].read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img alt="{html.escape(x[1])}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{_inline_html(x[1])}</figcaption></figure>"
                )
        css = (
            "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
            "line-height:1.45}"
            "table.tbl{border-collapse:collapse;margin:1em 0;font-size:.92em}"
            "table.tbl th,table.tbl td{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
            "table.tbl th{background:#f3f3f3}figure{margin:1.5em 0}img{max-width:100%}"
            "figcaption{color:#444;font-size:.9em}code{background:#f3f3f3;padding:0 .2em}"
        )
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title><style>{css}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
        )


def _inline_html(text: str) -> str:
    """Escape, then the two inline Markdown marks the report uses: `code` and **bold**."""
    s = html.escape(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pandas' `to_markdown` needs `tabulate`, not a dependency)."""

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = [
        "| " + " | ".join(cell(v) for v in row) + " |"
        for row in df.itertuples(index=False, name=None)
    ]
    return "\n".join([head, sep, *rows])


# --------------------------------------------------------------------------------------------- #
# Number formatting
# --------------------------------------------------------------------------------------------- #
def fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    v = float(v)
    if math.isinf(v):
        return "—"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def fmt_epochs(v: float) -> str:
    return "—" if not math.isfinite(v) else f"{v:.1f}"


def fmt_median_iqr(values: list[float]) -> str:
    """'12.0 [9.5–15.0]'; 'not reached' when the median is inf; an inf quartile shows as '—'."""
    med = quantile(values, 0.5)
    if not math.isfinite(med):
        return "not reached"
    return f"{fmt_epochs(med)} [{fmt_epochs(quantile(values, 0.25))}–{fmt_epochs(quantile(values, 0.75))}]"


def fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.1e}"


# --------------------------------------------------------------------------------------------- #
# Per-task summaries (numbers; formatting is separate)
# --------------------------------------------------------------------------------------------- #
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


def _strategies_table(summary: pd.DataFrame, metric: str, unit: str) -> pd.DataFrame:
    u = f" ({unit})" if unit else ""
    return pd.DataFrame(
        {
            "strategy": summary["strategy"],
            "optimizer": summary["optimizer"],
            "epochs to target, median [IQR]": [fmt_median_iqr(e) for e in summary["ett"]],
            "success": [f"{r}/{n}" for r, n in zip(summary["n_reached"], summary["n_runs"])],
            f"best val {metric}{u}, median": summary["best_val_median"].map(fmt),
            f"test {metric} of chosen config{u}, median": summary["test_median"].map(fmt),
            "epochs spent, median": summary["epochs_median"].map(lambda v: f"{v:.1f}"),
            "wall time (s), median": summary["wall_median"].map(lambda v: fmt(v, 3)),
            "seeds": summary["n_runs"],
        }
    )


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
    from scipy import stats

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
    ranks = np.apply_along_axis(stats.rankdata, 1, values)
    out["mean_ranks"] = dict(zip(order, ranks.mean(axis=0)))
    if len(order) >= 3:
        if np.all(ranks == ranks[:, :1]):
            out["friedman"] = {
                "statistic": math.nan,
                "pvalue": math.nan,
                "note": "every seed ties all strategies",
            }
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = stats.friedmanchisquare(*[ranks[:, j] for j in range(len(order))])
            out["friedman"] = {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}
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
                        res = stats.wilcoxon(a, b)
                        row["statistic"], row["pvalue"] = float(res.statistic), float(res.pvalue)
                    except ValueError:
                        pass
            rows.append(row)
    w = pd.DataFrame(rows)
    w["pvalue_holm"] = _holm(w["pvalue"].to_numpy(float))
    out["wilcoxon"] = w
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaN stays NaN)."""
    ok = np.where(np.isfinite(p))[0]
    adj = np.full(len(p), math.nan)
    m = len(ok)
    running = 0.0
    for k, idx in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - k) * p[idx]))
        adj[idx] = running
    return adj


# --------------------------------------------------------------------------------------------- #
# Schedules, replayed with the real torch schedulers
# --------------------------------------------------------------------------------------------- #
def replay_schedule(
    schedule: str | None,
    lr: float,
    optimizer: str,
    *,
    epochs: int,
    steps: int,
    steps_per_epoch: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The rate every optimizer step of a trial used, rebuilt from its stored schedule string.

    `lrbench.schedules.build_schedule` on a throwaway optimizer, stepped as the engine does
    (per-step schedules after every step, per-epoch ones after every full epoch, none after a
    budget-cut partial epoch). Returns (x, rates): x = step index / steps_per_epoch (epochs
    within the trial) for the `steps` steps, plus the point after the last step.
    """
    import torch

    from lrbench.optimizers import build_optimizer
    from lrbench.schedules import ScheduleSpec, build_schedule

    spec = ScheduleSpec.parse((schedule or "constant").split())
    param = torch.zeros(1, requires_grad=True)
    opt = build_optimizer(optimizer, [param], lr)
    built = build_schedule(spec, opt, lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. torch's notes on the scheduler's step order
        for i in range(steps):
            rates.append(float(opt.param_groups[0]["lr"]))
            opt.step()  # no gradient: parameters untouched, but the scheduler sees a step
            built.after_step()
            if (i + 1) % steps_per_epoch == 0:
                built.after_epoch()
    rates.append(float(opt.param_groups[0]["lr"]))
    return np.arange(steps + 1) / steps_per_epoch, np.asarray(rates)


def planned_epochs(run: Run, trial) -> int:
    """The epochs a trial was configured for (schedules like one-cycle span them)."""
    epochs_per_trial = int(
        run.attrs.get("epochs_per_trial") or max(1, math.ceil(trial.user_attrs.get("epochs", 1)))
    )
    if trial.user_attrs.get("phase") != "exploit":
        return epochs_per_trial
    # The exploit phase trains for the budget left when it started: ceil(remaining steps / spe).
    spe = int(run.attrs["steps_per_epoch"])
    spent = int(run.attrs.get("overhead_steps", 0)) + sum(
        int(t.user_attrs.get("steps", 0) or 0) for t in run.trials if t.number < trial.number
    )
    remaining = int(round(float(run.attrs["budget_epochs"]) * spe)) - spent
    return max(1, math.ceil(remaining / spe))


# --------------------------------------------------------------------------------------------- #
# Figures
# --------------------------------------------------------------------------------------------- #
def _figure(width: float = 8.0, height: float = 5.0, nrows: int = 1, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _close(fig) -> None:
    fig.clear()


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


@dataclass
class _TaskInfo:
    label: str
    metric: str
    unit: str
    direction: str
    target: float
    budget: float
    colors: dict[str, str]
    seeds: int

    @property
    def metric_u(self) -> str:
        return f"{self.metric} ({self.unit})" if self.unit else self.metric

    @property
    def target_text(self) -> str:
        return f"target {'≤' if self.direction == 'minimize' else '≥'} {fmt(self.target)}"


def _target_line(ax, info: _TaskInfo) -> None:
    ax.axhline(info.target, color="black", ls="--", lw=1, label=info.target_text)


def fig_anytime(info: _TaskInfo, curves: pd.DataFrame, order: list[str]):
    grid = curves_on_grid(curves, 201)
    fig, axes = _figure()
    ax = axes[0, 0]
    for s in order:
        g = grid[grid["strategy"] == s]
        if g.empty:
            continue
        c = info.colors[s]
        n = int(g["n_runs"].iloc[0])
        label = (
            f"{s} (n={n})"
            if g["q75"].notna().any() or g["median"].notna().any()
            else f"{s} (n={n}): no finite value"
        )
        ax.plot(g["epochs"], g["median"], color=c, lw=2, drawstyle="steps-post", label=label)
        ax.fill_between(g["epochs"], g["q25"], g["q75"], color=c, alpha=0.2, lw=0, step="post")
    _target_line(ax, info)
    ax.axvline(info.budget, color="0.5", ls=":", lw=1, label=f"budget {info.budget:g} epochs")
    vals = np.concatenate([grid[["median", "q25", "q75"]].to_numpy(float).ravel(), [info.target]])
    _set_y_scale(ax, vals, info.target)
    if np.isfinite(vals).sum() > 1:
        ax.set_ylim(*_padded_limits(ax, vals, None))
    ax.set_xlim(0, info.budget * 1.02)
    ax.set_xlabel("cumulative training epochs of the run (range test included)")
    ax.set_ylabel(f"best validation {info.metric_u} so far")
    ax.set_title(f"{info.label}: anytime performance, median and IQR band over seeds")
    ax.grid(True, alpha=0.3)
    if len(order) > 4:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize="small", loc="best")
    return fig


def fig_epochs_to_target(info: _TaskInfo, results: pd.DataFrame, order: list[str]):
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
    ax.set_ylabel("epochs to target (training epochs, range test included)")
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


def fig_lr_scatter(info: _TaskInfo, trials: pd.DataFrame, order: list[str]):
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
    ax.set_ylabel(f"best validation {info.metric_u} of the trial")
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
    below, above = {"minimize": (0.05, 0.15), "maximize": (0.15, 0.05)}.get(
        direction, (0.05, 0.05)
    )
    lo, hi = lo - below * span, hi + above * span
    back = tr.inverted().transform(np.array([[lo], [hi]])).ravel()
    lo_data, hi_data = float(back[0]), float(back[1])
    if (
        ax.get_yscale() == "symlog" and v.min() >= 0
    ):  # no empty negative decades below a zero value
        lo_data = max(lo_data, -0.3 * ax.yaxis.get_transform().linthresh)
    return lo_data, hi_data


def fig_range_tests(info: _TaskInfo, runs: list[Run], results: pd.DataFrame):
    """One panel per range-test strategy (its lowest seed), suggestions marked, the rate used drawn."""
    picked: dict[str, Run] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        if r.attrs.get("range_test") and r.strategy not in picked:
            picked[r.strategy] = r
    if not picked:
        return None
    from lrbench.range_test import RangeTestResult

    n = len(picked)
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    fig, axes = _figure(7.5 if n == 1 else 6.5 * ncols, 4.8 * nrows, nrows, ncols)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for ax, (s, r) in zip(axes.ravel(), picked.items()):
        rt = RangeTestResult.from_dict(r.attrs["range_test"])
        title = f"{s} (seed {r.seed}): {rt.num_steps} steps" + (
            ", stopped at divergence" if rt.stopped_early else ""
        )
        rt.plot(ax=ax, title=f"{info.label}: LR range test of {title}" if n == 1 else title)
        chosen = chosen_trial(r)
        if chosen is not None and "lr" in chosen.params:
            ax.axvline(
                chosen.params["lr"],
                color="black",
                lw=1.0,
                ls=(0, (6, 3)),
                label=f"rate used = {chosen.params['lr']:.2e}",
            )
            ax.legend(fontsize="x-small", loc="best")
        ax.set_xlabel("learning rate (range test grows it every step)")
    if n > 1:
        fig.suptitle(f"{info.label}: LR range tests (loss against rate; suggestions marked)")
    return fig


def fig_schedules(info: _TaskInfo, runs: list[Run], order: list[str]):
    """The chosen trial's schedule per strategy (lowest seed), replayed; dots: recorded rates."""
    fig, axes = _figure(12, 5.5)  # wide: the legend spells out every schedule
    ax = axes[0, 0]
    notes, all_rates, seeds = [], [], set()
    by_strategy: dict[str, Run] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        by_strategy.setdefault(r.strategy, r)
    for s in order:
        r = by_strategy.get(s)
        t = chosen_trial(r) if r is not None else None
        if t is None or "lr" not in t.params or "steps" not in t.user_attrs:
            continue
        spe = int(r.attrs["steps_per_epoch"])
        try:
            x, rates = replay_schedule(
                t.user_attrs.get("schedule"),
                float(t.params["lr"]),
                t.user_attrs.get("optimizer") or r.attrs.get("optimizer") or "sgd",
                epochs=planned_epochs(r, t),
                steps=int(t.user_attrs["steps"]),
                steps_per_epoch=spe,
            )
        except Exception as e:  # a schedule this version cannot rebuild: say so, draw the rest
            notes.append(f"{s}: schedule {t.user_attrs.get('schedule')!r} not replayed ({e})")
            continue
        seeds.add(r.seed)
        c = info.colors[s]
        desc = _short_schedule(t.user_attrs.get("schedule"))
        ax.plot(
            x,
            rates,
            color=c,
            lw=1.6,
            drawstyle="steps-post",
            label=f"{s}: {desc}, lr={t.params['lr']:.3g}",
        )
        hist = t.user_attrs.get("history") or []
        ax.plot([h["epochs_done"] for h in hist], [h["lr"] for h in hist], "o", color=c, ms=4)
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


def tolerance_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Constant-rate trials with their final validation metric (a scheduled trial's lr is a peak)."""
    t = trials[trials["state"].isin(["COMPLETE", "PRUNED"]) & trials["lr"].notna()]
    const = t[t["schedule"].fillna("constant") == "constant"]
    return const


def fig_tolerance(info: _TaskInfo, data: pd.DataFrame, optimizers: list[str]):
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


# --------------------------------------------------------------------------------------------- #
# The report
# --------------------------------------------------------------------------------------------- #
def _suite_name(suite: str) -> str:
    if suite.endswith(".toml"):
        from lrbench.suite import load_suite

        return load_suite(suite).name
    return suite


def make_report(
    suite: str, storage: str | Any | None = None, out: str | Path | None = None
) -> Path:
    """Write the comparison report of `suite` (a suite name) from `storage` (default
    `sqlite:///runs/<suite>.db`) into `out` (default `reports/<suite>/`); return `report.md`'s path.
    `report.html`, `runs.csv` and the PNG figures are written beside it."""
    return write_report(suite, storage, out)[0]


def write_report(
    suite: str, storage: str | Any | None = None, out: str | Path | None = None
) -> tuple[Path, list[Path]]:
    """`make_report`, returning also every file written (md, html, csv, PNGs)."""
    from lrbench.harness import default_storage_url

    suite = _suite_name(str(suite))
    url = storage if storage is not None else default_storage_url(suite)
    runs = load_runs(url, suite)
    if not runs:
        where = url if isinstance(url, str) else type(url).__name__
        raise ConfigError(
            f"storage {where!r} holds no run of suite {suite!r} (no study named '{suite}/…'); "
            "run it first with `lrbench run`, or give the --storage it was run into"
        )
    results = load_results(runs)
    trials = load_trials(runs)
    curves = anytime_curves(runs)
    out = Path(out) if out is not None else REPORTS_DIR / suite
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "runs.csv", index=False)

    doc = _Doc(out)
    storage_text = url if isinstance(url, str) else type(url).__name__
    devices = ", ".join(sorted(set(map(str, results["device"].dropna())))) or "unknown"
    seeds = sorted(set(results["seed"]))
    doc.heading(1, f"lrbench report: suite `{suite}`")
    doc.para(
        f"Generated {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} from storage `{storage_text}` "
        f"(the storage alone). {len(results)} runs (one strategy on one task with one seed), "
        f"{len(trials)} trials, seeds {', '.join(map(str, seeds))}; device: {devices}."
    )
    incomplete = results[results["status"] != "complete"]
    if len(incomplete):
        doc.para(
            f"**{len(incomplete)} run(s) are not complete** (status running or interrupted): their numbers "
            "cover only what they had spent; the significance tests leave them out."
        )
    doc.bullets(
        [
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
            "**Wall time** is the run's wall-clock seconds (training, evaluation and overhead) on "
            "the device above.",
        ]
    )

    tasks = list(dict.fromkeys(results["task"]))
    summaries: dict[str, pd.DataFrame] = {}
    infos: dict[str, _TaskInfo] = {}
    for task in tasks:
        rt = results[results["task"] == task]
        first = rt.iloc[0]
        order = list(dict.fromkeys(rt["strategy"]))
        infos[task] = _TaskInfo(
            task,
            str(first["metric"]),
            str(first["metric_unit"] or ""),
            str(first["direction"]),
            float(first["target"]),
            float(rt["budget_epochs"].max()),
            strategy_colors(order),
            rt["seed"].nunique(),
        )
        summaries[task] = strategy_summary(rt)

    doc.heading(2, "Summary")
    doc.para(
        "Per task, the strategy that reached the target with the fewest epochs (median over seeds)."
    )
    doc.table(_summary_table(tasks, summaries, infos))

    for task in tasks:
        _task_section(
            doc,
            infos[task],
            results[results["task"] == task],
            trials[trials["task"] == task],
            curves[curves["task"] == task],
            [r for r in runs if r.task == task],
            summaries[task],
        )

    doc.heading(2, "Files")
    doc.para(
        "`runs.csv`: one row per run with every per-run number (`lrbench.load_results`); "
        "`inf` epochs/seconds to target = never reached. The PNG figures lie beside this report."
    )
    md = out / "report.md"
    md.write_text(doc.markdown(), encoding="utf-8")
    (out / "report.html").write_text(doc.html(f"lrbench report: {suite}"), encoding="utf-8")
    return md, [md, out / "report.html", out / "runs.csv", *doc.figures]


def _summary_table(
    tasks: list[str], summaries: dict[str, pd.DataFrame], infos: dict[str, _TaskInfo]
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


def strategy_colors(names: list) -> dict:
    """A distinct colour per name: matplotlib's tab10 up to 10 names, tab20 beyond (a suite may
    compare all 15 strategies, and repeated colours would make curves indistinguishable)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _task_section(
    doc: _Doc,
    info: _TaskInfo,
    results: pd.DataFrame,
    trials: pd.DataFrame,
    curves: pd.DataFrame,
    runs: list[Run],
    summary: pd.DataFrame,
) -> None:
    order = list(info.colors)
    first = results.iloc[0]
    doc.heading(2, f"Task `{info.label}`")
    epochs_per_trial = runs[0].attrs.get("epochs_per_trial")
    doc.para(
        f"Task `{first['task_name']}`; validation metric **{info.metric_u}**, "
        f"{'lower' if info.direction == 'minimize' else 'higher'} is better, {info.target_text}. "
        f"Budget per run: {info.budget:g} epochs ({epochs_per_trial} per trial); "
        f"{info.seeds} seed(s) per strategy; {len(results)} runs, {len(trials)} trials."
    )

    doc.heading(3, "Strategies")
    doc.table(_strategies_table(summary, info.metric, info.unit))
    doc.para(
        f"Epochs to target in epochs; best val: the best validation {info.metric} measured within "
        "the budget; "
        f"test: the chosen configuration's test {info.metric}; success: runs that reached the target / runs. "
        "Sorted by median epochs to target, then median best validation value."
    )

    doc.heading(3, "Anytime performance")
    doc.figure(
        fig_anytime(info, curves, order),
        f"{info.label}_anytime.png",
        f"{info.label}: best validation {info.metric_u} so far against cumulative training epochs "
        f"(range test first, then the trials in order); line: median over seeds, band: interquartile range; "
        f"dashed: the target.",
    )
    doc.figure(
        fig_epochs_to_target(info, results, order),
        f"{info.label}_epochs_to_target.png",
        f"{info.label}: epochs to target of the runs that reached it (box: quartiles, dots: runs); "
        "the count of runs that never reached it is written above each strategy.",
    )

    doc.heading(3, "Where the trials went")
    doc.figure(
        fig_lr_scatter(info, trials, order),
        f"{info.label}_lr_scatter.png",
        f"{info.label}: every trial's learning rate (log scale) against its best validation {info.metric_u}, "
        "coloured by strategy; x at the plot's edge: diverged trial; hollow: pruned.",
    )

    fig = fig_range_tests(info, runs, results)
    if fig is not None:
        doc.heading(3, "LR range tests")
        doc.figure(
            fig,
            f"{info.label}_range_test.png",
            f"{info.label}: the LR range test of each range-test strategy (its lowest seed): loss against "
            "the rate; suggestions marked; solid black line: the rate the run trained with. Its steps are "
            "charged to the run's budget.",
        )

    doc.heading(3, "Schedules used")
    fig, notes = fig_schedules(info, runs, order)
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
    chosen = results[["strategy", "seed", "chosen_lr", "chosen_schedule"]].copy()
    chosen["chosen_lr"] = chosen["chosen_lr"].map(lambda v: fmt(v, 3))
    chosen.columns = ["strategy", "seed", "chosen lr", "chosen schedule"]
    doc.para("Chosen configuration of every run:")
    doc.table(chosen)

    optimizers = list(dict.fromkeys(str(r.attrs.get("optimizer")) for r in runs))
    if len(optimizers) >= 2:
        _tolerance_section(doc, info, trials, optimizers)

    doc.heading(3, "Rank comparison and significance")
    _stats_section(doc, info, results)


def _tolerance_section(
    doc: _Doc, info: _TaskInfo, trials: pd.DataFrame, optimizers: list[str]
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


def _stats_section(doc: _Doc, info: _TaskInfo, results: pd.DataFrame) -> None:
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


# --------------------------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------------------------- #
def cmd_report(args: argparse.Namespace) -> int:
    _, paths = write_report(args.suite, storage=args.storage, out=args.out)
    for path in paths:
        print(f"wrote {path}")
    return 0


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the comparison report of a suite from its storage")
    p.add_argument(
        "suite", metavar="SUITE", help="suite name (the runs' study prefix), e.g. quick"
    )
    p.add_argument(
        "--storage", metavar="URL", help="Optuna storage URL (default sqlite:///runs/<suite>.db)"
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default reports/<suite>/)")
    p.set_defaults(func=cmd_report)
