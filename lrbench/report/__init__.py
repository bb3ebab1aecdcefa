"""`lrbench report`: the comparison report of a suite, from its Optuna storage alone.

Writes `reports/<suite>/` (or `out`): `report.md`, `report.html` (the same content, figures
embedded as base64 PNG, one self-contained file), the PNG figures and `runs.csv` (one row per
run with every per-run number, `lrbench.results.load_results`). Per task: the strategies table,
anytime curves (median and IQR over seeds), epochs-to-target box plot, where every trial put its
learning rate, range-test curves, the schedules actually used (torch schedulers replayed from the
stored spec), optimizer tolerance when the task's runs use several optimizers, and with at least
3 seeds a Friedman test, pairwise Wilcoxon signed-rank tests (Holm) and a critical-difference
diagram. The strategies table gives medians [IQR], interquartile means with bootstrap intervals,
success rates and what the budget holds of each strategy's design. Across tasks: "What this
shows" (no claim stronger than the tests), performance profiles, and range sensitivity when one
task runs under several learning-rate ranges.

Modules: `data` (what is read from the storage), `stats` (summaries, intervals, profiles and
significance tests), `across` (the sections that look across tasks),
`formatting` (numbers and labels), `document` (Markdown and HTML), `figures` (the only one
that imports matplotlib), `sections` (what each section says and holds), `writer` (the files).
Names are imported on first use, so `lrbench.report.stats` or `.formatting` alone pay for
neither matplotlib nor the rest of the report.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make_report": "lrbench.report.writer",
    "write_report": "lrbench.report.writer",
    "REPORTS_DIR": "lrbench.report.writer",
    "markdown_table": "lrbench.report.document",
    "rank_tests": "lrbench.report.stats",
    "strategy_summary": "lrbench.report.stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lrbench.report' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
