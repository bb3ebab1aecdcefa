"""What a strategy's own design needs from a run's budget, and how much of it the budget holds.

A comparison under equal budgets is only fair to a strategy whose budget lets it carry out its
design (design.md, "Measuring"): a significant-digit search that cannot finish its first round,
or a grid that cannot visit its points, is not the strategy its name says, and the report and
`lrbench run` say so instead of ranking it silently.

What each design needs, in trials of the run's epochs per trial E:

- `sigdigit`: its first round (one trial per leading digit of the first decade inside
  [low, high], 9 at most), then per further round up to k x 14 new trials (15 candidates per
  kept rate, the kept rate itself not trained again; fewer when candidates repeat or fall
  outside the range). The exploit phase spends what is left and needs nothing of its own.
- `grid`: one trial per grid point (`n`).
- a sampler with `n_startup_trials` (TPE, GP): those random trials and one more, the first its
  model chooses; without that, it is random search under another name.
- any other sampler (random, QMC): one trial; every trial is a complete sample.
- a strategy that runs an LR range test: the test's `num_iter` steps and one trial.
- a strategy that trains one configuration (fixed, step, exp, self-tuning): one trial.

Trials cut by the budget do not count as held. A pruned trial costs less than E epochs, so for
pruned variants the count is a lower bound of what the budget holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_EPS = 1e-9


@dataclass(frozen=True)
class DesignNeed:
    """What one strategy's design needs from a run of a task.

    `trials`: the trials of `epochs_per_trial` epochs the design cannot do without (the first
    round, the grid, the startup trials and one more, or one); `full_trials`: the whole design's
    trials (an upper bound for the significant-digit search's later rounds); `overhead_steps`:
    training outside trials (a range test), charged as `overhead_steps / steps_per_epoch` epochs.
    `unit` names the trials of `trials` ("first-round trials", "grid points", ...).
    """

    label: str
    name: str
    unit: str
    trials: int
    full_trials: int
    epochs_per_trial: float
    overhead_steps: int = 0
    steps_per_epoch: int | None = None
    rounds: tuple[int, ...] = ()  # sigdigit: trials per round (round 1 exact, then upper bounds)

    @property
    def overhead_epochs(self) -> float | None:
        """The range test's epochs; None when it has steps but the steps per epoch are unknown."""
        if not self.overhead_steps:
            return 0.0
        if not self.steps_per_epoch:
            return None
        return self.overhead_steps / self.steps_per_epoch

    def held(self, budget_epochs: float) -> int:
        """Full trials the budget holds after the overhead (what is known of it)."""
        left = budget_epochs - (self.overhead_epochs or 0.0)
        return max(0, math.floor(left / self.epochs_per_trial + _EPS))


@dataclass(frozen=True)
class BudgetFit:
    """A design's need against a budget: `fits` when the budget holds the trials the design
    cannot do without; `full` when it holds the whole design; `message` says what falls short
    (empty when the whole design fits); `short` is the report's cell."""

    need: DesignNeed
    budget_epochs: float
    held: int
    fits: bool
    full: bool
    message: str
    short: str


def strategy_instance(name: str, options: Mapping[str, Any]) -> Any | None:
    """The registered strategy with these options (defaults filled in), or None when this
    version does not know it (a storage written by a newer one)."""
    from lrbench.errors import LrbenchError
    from lrbench.strategies import REGISTRY, get_strategy

    if name not in REGISTRY:
        return None
    try:
        return get_strategy(name, **dict(options))
    except LrbenchError:
        return None


def design_need(
    name: str,
    options: Mapping[str, Any],
    *,
    low: float,
    high: float,
    epochs_per_trial: float,
    steps_per_epoch: int | None = None,
    label: str | None = None,
) -> DesignNeed | None:
    """What strategy `name` (registry name, with the suite's `options`) needs from a run of a
    task with the learning-rate range [low, high] and `epochs_per_trial`; None for a strategy
    this version does not know."""
    strategy = strategy_instance(name, options)
    if strategy is None:
        return None
    opts = strategy.options
    base: dict[str, Any] = dict(
        label=label or name,
        name=name,
        epochs_per_trial=float(epochs_per_trial),
        steps_per_epoch=steps_per_epoch,
    )
    from lrbench.strategies.grid import GridStrategy
    from lrbench.strategies.sigdigit import SigDigitStrategy

    if isinstance(strategy, SigDigitStrategy):
        first = sigdigit_first_round(low, high, opts.get("decade"))
        later = int(opts["k"]) * 14
        rounds = (first, *([later] * (int(opts["digits"]) - 1)))
        return DesignNeed(
            unit="first-round trials", trials=first, full_trials=sum(rounds), rounds=rounds, **base
        )
    if isinstance(strategy, GridStrategy):
        n = int(opts["n"])
        return DesignNeed(unit="grid points", trials=n, full_trials=n, **base)
    if "n_startup_trials" in opts:
        n = int(opts["n_startup_trials"]) + 1
        return DesignNeed(
            unit="trials (startup + 1 model-chosen)", trials=n, full_trials=n, **base
        )
    steps = _range_test_steps(opts)
    return DesignNeed(unit="trial", trials=1, full_trials=1, overhead_steps=steps, **base)


def _range_test_steps(opts: Mapping[str, Any]) -> int:
    """A range-test strategy's test steps (0 when it runs none: no `num_iter`, or `lr` given)."""
    if "num_iter" not in opts or opts.get("lr") is not None:
        return 0
    return int(opts["num_iter"])


def sigdigit_first_round(low: float, high: float, decade: float | None = None) -> int:
    """Trials of the significant-digit search's first round on [low, high] (as its sampler
    builds it); 0 when no leading digit of the decade lies in the range."""
    from optuna.distributions import FloatDistribution

    from lrbench.tools import SignificantDigitSampler

    sampler = SignificantDigitSampler(decade=decade)
    # The sampler's own rule for the first round, so that this count never drifts from it.
    return len(sampler._first_round(FloatDistribution(low, high, log=True)))


def check(need: DesignNeed, budget_epochs: float) -> BudgetFit:
    """How much of `need` a budget of `budget_epochs` holds, in words."""
    held = need.held(budget_epochs)
    rt = need.overhead_epochs
    fits = held >= need.trials and (rt is None or rt + need.epochs_per_trial <= budget_epochs)
    full = fits and held >= need.full_trials
    message, short = _words(need, budget_epochs, held, fits, full)
    return BudgetFit(need, float(budget_epochs), held, fits, full, message, short)


def _words(need: DesignNeed, budget: float, held: int, fits: bool, full: bool) -> tuple[str, str]:
    """(the message when the design does not fully fit, else ""; the report's short cell)."""
    e = f"{need.epochs_per_trial:g}"
    if need.overhead_steps:
        rt = need.overhead_epochs
        test = f"its range test ({need.overhead_steps} steps"
        test += f" = {rt:.2f} epochs)" if rt is not None else ")"
        if fits:
            return "", f"range test + 1 trial of {e} epochs"
        return (
            f"{need.label}: {test} and one {e}-epoch trial do not fit a budget of {budget:g} epochs",
            "range test + trial do not fit",
        )
    if not fits and need.trials == 1 and need.full_trials == 1:
        # One trial longer than the budget: a suite that runs a schedule's first epochs only
        # (seed 002's rows over 200 and 400 epochs, cut at 100), whose records say so.
        return (
            f"{need.label}: its one trial of {e} epochs is cut by the budget at {budget:g} "
            f"epochs (the first {budget:g} epochs of its {e}-epoch schedule)",
            f"1 trial, cut at {budget:g} of {e} epochs",
        )
    if not fits:
        return (
            f"{need.label}: {min(held, need.trials)} of {need.trials} {need.unit} within budget "
            f"({budget:g} epochs at {e} per trial)",
            f"{min(held, need.trials)} of {need.trials} {need.unit}",
        )
    if full and need.rounds:
        return "", f"whole {len(need.rounds)}-round search (≤ {need.full_trials} trials)"
    if full:
        return "", f"all {need.full_trials} {_plural(need)}" if need.full_trials > 1 else "1 trial"
    # Only the significant-digit search has a design beyond what it cannot do without.
    done, rounds = _rounds_held(need, held)
    return (
        f"{need.label}: first round ({need.trials} trials) within budget; the whole "
        f"{len(need.rounds)}-round search needs up to {need.full_trials} trials of {e} epochs, "
        f"the budget holds {held} ({done} of {len(need.rounds)} rounds surely)",
        f"first round; {done} of {len(need.rounds)} rounds surely",
    )


def _plural(need: DesignNeed) -> str:
    return {"trial": "trials"}.get(need.unit, need.unit)


def _rounds_held(need: DesignNeed, held: int) -> tuple[int, tuple[int, ...]]:
    """Rounds of the significant-digit search that `held` trials complete at worst."""
    done, total = 0, 0
    for n in need.rounds:
        total += n
        if total > held:
            break
        done += 1
    return done, need.rounds


# --------------------------------------------------------------------------------------------- #
# A suite before it runs, and a stored run
# --------------------------------------------------------------------------------------------- #
def suite_fits(suite: Any, steps_per_epoch: Mapping[str, int] | None = None) -> list[BudgetFit]:
    """Every (task, strategy) pair of a suite (`lrbench.running._suite.Suite`), checked. The range tests'
    epochs need the task's steps per epoch (`steps_per_epoch` by task label), known once its
    data are loaded; without it a range test's cost is left out of the check."""
    out = []
    for task in suite.tasks:
        for strat in suite.strategies:
            if strat.tasks is not None and task.label not in strat.tasks:
                continue
            need = design_need(
                strat.name,
                strat.options,
                low=task.low,
                high=task.high,
                epochs_per_trial=task.epochs_per_trial,
                steps_per_epoch=(steps_per_epoch or {}).get(task.label),
                label=f"{task.label}/{strat.label}",
            )
            if need is not None:
                out.append(check(need, task.budget_epochs))
    return out


def budget_warnings(suite: Any, steps_per_epoch: Mapping[str, int] | None = None) -> list[str]:
    """One line per (task, strategy) whose budget does not hold its whole design, for
    `lrbench run` to print before it starts; `suite` is a `Suite` or a suite name or path."""
    if isinstance(suite, str) or hasattr(suite, "suffix"):
        from lrbench.running._suite import load_suite

        suite = load_suite(suite)
    return [f.message for f in suite_fits(suite, steps_per_epoch) if f.message]


def run_fit(record: Any) -> BudgetFit | None:
    """The check of a stored run (`lrbench.storage.records.RunRecord`), from the settings it stored;
    None when it stored too little to tell or its strategy is unknown to this version."""
    from lrbench.storage.records import RunKeys

    name = record.get(RunKeys.STRATEGY_NAME)
    low, high = record.get(RunKeys.LOW), record.get(RunKeys.HIGH)
    epochs = record.epochs_per_trial
    budget = record.budget_epochs
    if name is None or low is None or high is None or not epochs or not math.isfinite(budget):
        return None
    need = design_need(
        str(name),
        record.get(RunKeys.STRATEGY_OPTIONS) or {},
        low=float(low),
        high=float(high),
        epochs_per_trial=epochs,
        steps_per_epoch=record.steps_per_epoch,
        label=record.strategy,
    )
    return None if need is None else check(need, budget)
