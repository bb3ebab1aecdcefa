"""`sigdigit`: the coarse-to-fine significant-digit search (SignificantDigitSampler), then the
exploit phase: train each kept rate in order, checking validation every epoch, stop that rate
when validation gets worse, keep the best state and go on from it with the next rate."""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from lrbench.records import RunKeys, RunRecord, TrialKeys
from lrbench.sigdigit_sampler import SignificantDigitSampler
from lrbench.strategies.base import LR, RunContext, register
from lrbench.strategies.options import option
from lrbench.strategies.search import SamplerOptions, SamplerStrategy

_TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


@dataclass(frozen=True)
class SigDigitOptions(SamplerOptions):
    k: int = option(2, minimum=1)
    digits: int = option(3, minimum=1)
    decade: float | None = option(None, positive=True)
    exploit: bool = option(True)


@register
class SigDigitStrategy(SamplerStrategy):
    name = "sigdigit"
    description = "significant-digit search (k kept, D digits) then exploit the kept rates"
    Options = SigDigitOptions

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

    def after_search(self, ctx: RunContext) -> None:
        if not self.opts.exploit or ctx.remaining_steps() <= 0 or not self.search_finished(ctx):
            return
        kept = self.kept_rates(ctx)
        done = sum(
            1
            for t in ctx.study.get_trials(deepcopy=False)
            if t.state.is_finished() and t.user_attrs.get(TrialKeys.PHASE) == "exploit"
        )
        # The exploit trials' rates are fixed: no sampler is consulted for them.
        ctx.study.sampler = optuna.samplers.RandomSampler(seed=ctx.seed)
        state = None  # after a crash the chain restarts from a fresh initialisation
        for rate in kept[done:]:
            remaining = ctx.remaining_steps()
            if remaining <= 0:
                break
            result = ctx.run_fixed_trial(
                rate,
                epochs=math.ceil(remaining / ctx.steps_per_epoch),
                phase="exploit",
                initial_state=state,
                keep_best_state=True,
                stop_when_worse=True,
            )
            state = result.best_state if result.best_state is not None else state
