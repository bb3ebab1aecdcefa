"""`sigdigit`: the coarse-to-fine significant-digit search (SignificantDigitSampler), then the
exploit phase as seed 002's program runs it (design.md, "Significant-digit search").

Exploit: one model, initialised once, is trained on with each kept rate in turn, a fresh
optimizer at that rate and the weights carried on (the weights the previous rate ended with).
A rate is abandoned once validation has not improved for `patience` epochs and the mean of the
last `patience` epochs is worse than the mean of the `patience` before them, or after
`max_epochs_per_rate` epochs at that rate. After the last rate the list is walked again, up to
`passes` times. The best state seen is the result (the run's best trial). Each stretch at one
rate is one trial (phase "exploit"), charged to the budget like every other step.

The seed ran E = 50 epochs per search trial, patience 50, at most 400 epochs per rate and 5
passes. Unset, `patience` is the run's epochs per trial and `max_epochs_per_rate` eight times
it, which are the seed's values at E = 50. After a crash the exploit phase resumes at the next
stretch from a fresh initialisation (the weights in flight are not stored).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from lrbench.storage.records import RunKeys, RunRecord, TrialKeys, record_attrs
from lrbench.strategies._base import LR, RunContext, StopRule, register
from lrbench.strategies._options import option
from lrbench.strategies._search import SamplerOptions, SamplerStrategy
from lrbench.tools import SignificantDigitSampler

_TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


@dataclass(frozen=True)
class SigDigitOptions(SamplerOptions):
    k: int = option(2, minimum=1)
    digits: int = option(3, minimum=1, maximum=15)  # a float holds about 15 digits
    decade: float | None = option(None, positive=True)
    exploit: bool = option(True)
    patience: int | None = option(None, minimum=1)
    max_epochs_per_rate: int | None = option(None, minimum=1)
    passes: int = option(5, minimum=1)


def plateau_rule(patience: int, is_better) -> StopRule:
    """The seed's abandon rule: no improvement in the last `patience` epochs, and the mean of
    those epochs worse than the mean of the `patience` epochs before them."""

    def stop(vals: list[float]) -> bool:
        if len(vals) < 2 * patience:
            return False
        best = 0
        for i, v in enumerate(vals):
            if is_better(v, vals[best]):
                best = i
        stale = len(vals) - 1 - best >= patience
        last = sum(vals[-patience:]) / patience
        before = sum(vals[-2 * patience : -patience]) / patience
        return stale and is_better(before, last)

    return stop


@register
class SigDigitStrategy(SamplerStrategy):
    name = "sigdigit"
    group = "search"
    description = "significant-digit search (k kept, D digits) then the seed's exploit phase"
    Options = SigDigitOptions
    opts: SigDigitOptions

    def sampler_for(self, ctx: RunContext, n_finished: int) -> SignificantDigitSampler:
        return SignificantDigitSampler(
            param_name=LR,
            k=self.opts.k,
            digits=self.opts.digits,
            decade=self.opts.decade,
            seed=self.trial_seed(ctx, n_finished),
        )

    def batch_limit(self, ctx: RunContext) -> int:
        """The open round's candidates no trial has taken: a population takes only those
        (before the first trial the round is not yet placed, so that trial runs alone)."""
        study = ctx.study
        rounds = self.sampler_for(ctx, 0).plan(study)
        open_round = next((r for r in rounds if not r.finished), None)
        if open_round is None:
            return 1
        taken = {t.params.get(LR) for t in study.get_trials(deepcopy=False, states=_TAKEN)}
        return sum(1 for c in open_round.candidates if c not in taken)

    def search_finished(self, ctx: RunContext) -> bool:
        return RunRecord.from_study(ctx.study).sigdigit_kept is not None or self.sampler_for(
            ctx, 0
        ).is_exhausted(ctx.study)

    def kept_rates(self, ctx: RunContext) -> list[float]:
        """The search's kept rates, frozen in the study before the exploit trials exist, so
        their values never re-rank the search."""
        kept = RunRecord.from_study(ctx.study).sigdigit_kept
        if kept is None:
            kept = self.sampler_for(ctx, 0).kept_rates(ctx.study)
            ctx.study.set_user_attr(RunKeys.SIGDIGIT_KEPT, kept)
        return kept

    def exploit_plan(self, ctx: RunContext) -> list[float]:
        """The rates of the exploit stretches in order: the kept list, walked `passes` times."""
        return self.kept_rates(ctx) * self.opts.passes

    def after_search(self, ctx: RunContext) -> None:
        if not self.opts.exploit or ctx.remaining_steps() <= 0 or not self.search_finished(ctx):
            return
        plan = self.exploit_plan(ctx)
        done = sum(
            1
            for t in ctx.study.get_trials(deepcopy=False)
            if t.state.is_finished()
            and record_attrs(t.user_attrs).get(TrialKeys.PHASE) == "exploit"
        )
        # The exploit trials' rates are fixed: no sampler is consulted for them.
        ctx.study.sampler = optuna.samplers.RandomSampler(seed=ctx.seed)
        patience = self.opts.patience or ctx.epochs_per_trial
        cap = self.opts.max_epochs_per_rate or 8 * ctx.epochs_per_trial
        stop = plateau_rule(patience, ctx.task.is_better)
        weights = None  # one model: the first stretch initialises it, the rest carry it on
        for rate in plan[done:]:
            remaining = ctx.remaining_steps()
            if remaining <= 0:
                break
            result = ctx.run_fixed_trial(
                rate,
                epochs=min(cap, math.ceil(remaining / ctx.steps_per_epoch)),
                phase="exploit",
                initial_state=weights,
                keep_final_state=True,
                stop_rule=stop,
            )
            if result.diverged:
                continue  # a diverged stretch leaves the weights as they were before it
            weights = result.final_state
