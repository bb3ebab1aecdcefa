"""How the report (and the command line) writes numbers, and names a task's metric and target."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


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
    from lrbench.report._results import (
        quantile,  # results pulls in optuna: the command line imports fmt
    )

    med = quantile(values, 0.5)
    if not math.isfinite(med):
        return "not reached"
    return f"{fmt_epochs(med)} [{fmt_epochs(quantile(values, 0.25))}–{fmt_epochs(quantile(values, 0.75))}]"


def fmt_iqm_ci(value: float, lo: float, hi: float) -> str:
    """'11.2 [9.0, 14.5]': an interquartile mean with its confidence interval; ∞ for a miss
    that survives the trim (more than a quarter of the runs missed); '—' when not computed."""

    def one(v: float) -> str:
        if v is None or math.isnan(v):
            return "—"
        return "∞" if math.isinf(v) else f"{v:.1f}"

    if value is None or math.isnan(value):
        return "—"
    if math.isnan(lo) or math.isnan(hi):
        return one(value)
    return f"{one(value)} [{one(lo)}, {one(hi)}]"


def fmt_success(reached: int, runs: int) -> str:
    """'4/5 (80%)'."""
    return f"{reached}/{runs} ({100 * reached / runs:.0f}%)" if runs else "—"


def fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.1e}"


def fmt_fixed(v: float | None, digits: int = 4) -> str:
    """`lrbench train`'s per-epoch numbers: `digits` decimals (aligned columns), `digits`
    significant digits when very small or large; '-' when missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.{digits}f}"


@dataclass
class TaskInfo:
    """What the report calls one task of the suite, and the colour of each of its strategies."""

    label: str
    metric: str
    unit: str
    direction: str
    target: float
    budget: float
    colors: dict[str, str]
    seeds: int
    # Each strategy's family (`lrbench.strategies.GROUPS`: search, heuristic ...), in order.
    groups: dict[str, str] = field(default_factory=dict)

    @property
    def better(self) -> str:
        """Which way the metric is better, for axis labels."""
        return "lower is better" if self.direction == "minimize" else "higher is better"

    @property
    def metric_u(self) -> str:
        return f"{self.metric} ({self.unit})" if self.unit else self.metric

    @property
    def target_text(self) -> str:
        return f"target {'≤' if self.direction == 'minimize' else '≥'} {fmt(self.target)}"
