"""`lrbench report`: the comparison report of a suite, from its Optuna storage alone.

Writes `reports/<suite>/` (or `out`): `report.md`, `report.html` (the same content; both open
with a table of contents and load the PNG figures beside them), the figures and `runs.csv` (one row per
run with every per-run number, `load_results`). Per task: the strategies table,
anytime curves (median and IQR over seeds), epochs-to-target box plot, where every trial put its
learning rate, range-test curves, the schedules actually used (torch schedulers replayed from the
stored spec), optimizer tolerance when the task's runs use several optimizers, and with at least
3 seeds a Friedman test, pairwise Wilcoxon signed-rank tests (Holm) and a critical-difference
diagram. The strategies table gives medians [IQR], interquartile means with bootstrap intervals,
success rates and what the budget holds of each strategy's design. Across tasks: "What this
shows" (no claim stronger than the tests), performance profiles, and range sensitivity when one
task runs under several learning-rate ranges.

Modules (private): `results` (per-run numbers from the storage alone), `data` (what is read
from the storage), `stats` (summaries, intervals, profiles and significance tests), `across`
(the sections that look across tasks), `formatting` (numbers and labels), `document` (Markdown
and HTML), `figures` (the only one that imports matplotlib), `sections` (what each section says
and holds), `writer` (the files).
Names are imported on first use, so `lrbench.report._stats` or `.formatting` alone pay for
neither matplotlib nor the rest of the report.
"""

from __future__ import annotations

from lrbench._lazy import lazy_exports

_EXPORTS = {
    "make_report": "lrbench.report._writer",
    "write_report": "lrbench.report._writer",
    "REPORTS_DIR": "lrbench.report._writer",
    "markdown_table": "lrbench.report._document",
    "rank_tests": "lrbench.report._stats",
    "strategy_summary": "lrbench.report._stats",
    "load_results": "lrbench.report._results",
    "load_trials": "lrbench.report._results",
    "load_runs": "lrbench.report._results",
    "fmt": "lrbench.report._formatting",
    "fmt_fixed": "lrbench.report._formatting",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
