"""`sigdigit`: the coarse-to-fine significant-digit search (SignificantDigitSampler), then the
exploit phase: train each kept rate in order, checking validation every epoch, stop that rate
when validation gets worse, keep the best state and go on from it with the next rate."""

from __future__ import annotations

import math

import optuna

from lrbench.sigdigit_sampler import SignificantDigitSampler
from lrbench.strategies.base import LR, RunContext, register
from lrbench.strategies.search import SamplerStrategy


@register
class SigDigitStrategy(SamplerStrategy):
    name = "sigdigit"
    description = "significant-digit search (k kept, D digits) then exploit the kept rates"
    option_defaults = {
        **SamplerStrategy.option_defaults,
        "k": 2,
        "digits": 3,
        "decade": None,
        "exploit": True,
    }

    def sampler_for(self, ctx: RunContext, n_finished: int) -> SignificantDigitSampler:
        return SignificantDigitSampler(
            param_name=LR,
            k=int(self.options["k"]),
            digits=int(self.options["digits"]),
            decade=self.options["decade"],
            seed=self.trial_seed(ctx, n_finished),
        )

    def search_finished(self, ctx: RunContext) -> bool:
        return "sigdigit_kept" in ctx.study.user_attrs or self.sampler_for(ctx, 0).is_exhausted(
            ctx.study
        )

    def after_search(self, ctx: RunContext) -> None:
        study = ctx.study
        if (
            not self.options["exploit"]
            or ctx.remaining_steps() <= 0
            or not self.search_finished(ctx)
        ):
            return
        kept = study.user_attrs.get("sigdigit_kept")
        if kept is None:
            # Frozen before the exploit trials exist, so their values never re-rank the search.
            kept = self.sampler_for(ctx, 0).kept_rates(study)
            study.set_user_attr("sigdigit_kept", kept)
        done = sum(
            1
            for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("phase") == "exploit" and t.state.is_finished()
        )
        # The exploit trials' rates are fixed: no sampler is consulted for them.
        study.sampler = optuna.samplers.RandomSampler(seed=ctx.seed)
        state = None  # after a crash the chain restarts from a fresh initialisation
        for rate in kept[done:]:
            remaining = ctx.remaining_steps()
            if remaining <= 0:
                break
            trial = study.ask({LR: optuna.distributions.FloatDistribution(rate, rate, log=True)})
            try:
                result = ctx.train_trial(
                    trial,
                    rate,
                    epochs=math.ceil(remaining / ctx.steps_per_epoch),
                    phase="exploit",
                    initial_state=state,
                    keep_best_state=True,
                    stop_when_worse=True,
                )
            except BaseException:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            study.tell(trial, ctx.objective_value(result))
            state = result.best_state if result.best_state is not None else state
