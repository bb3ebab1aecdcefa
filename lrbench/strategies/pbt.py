"""`pbt`: Population Based Training of the learning rate (Jaderberg et al. 2017), with the
defaults of Ray Tune's `PopulationBasedTraining`.

A population of `members` models trains side by side, each at its own rate (drawn log-uniform
in the run's [low, high] from the run's seed). Every `interval` epochs the members are ranked
by their validation value at the end of the interval (the task's direction; a diverged member
ranks worst). Each member of the bottom `quantile_fraction` (Ray's rule: ceil(n * fraction),
at most half the population), and every diverged member, *exploits*: it takes the weights and
the optimizer state (e.g. Adam's moments and step count) of a member drawn at random from the
top quantile, and *explores*: the donor's rate, resampled log-uniform in [low, high] with
probability `resample_probability`, else multiplied by a factor drawn from
`perturbation_factors`, clipped to [low, high]. The other members carry on with their own
weights, optimizer state and rate.

Each member's stretch between two rankings (a *segment*) is one Optuna trial (phase "pbt"):
params {"lr": its rate}, user attrs `pbt_member`, `pbt_segment`, `pbt_copied_from` ({"member",
"segment"} of the donor's segment it continued from, or None), `pbt_start_epoch` (the epochs
its weights had trained when the segment began) and `pbt_population` (see resuming), so
`trials_dataframe()` and optuna-dashboard show every member's rate over time and its lineage.
A segment's value is its best validation value, so the run's best trial (its chosen
configuration) is the segment with the best validation value. Every member epoch is charged
to the budget; the last segment is cut so the run ends at the budget exactly (the steps left
are shared out evenly among the members). Segments train with a constant schedule at the
member's rate; segment 0 starts every member from the run seed's initialisation (as every
strategy's first trial), and later segments draw their data order from a seed of their own.
The members of a segment train as one population of `RunContext.population_size()` at a time
(one call of the training path when it holds them all, e.g. on a GPU; on a CPU, by default, one
after another, with the same results).

Resuming after a crash: the members' weights and optimizer states are not stored, so a run
that finds trials of an earlier attempt cannot continue its population. It keeps them (they
were trained and stay charged; the best of them can still be the run's best trial) and starts a
new population from fresh initialisation in the budget left, from its next trial number, with
`pbt_population` one higher and initial rates drawn afresh (from the run's seed and that
number). An interrupted run therefore differs from an uninterrupted one with the same seed.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from optuna.trial import TrialState

from lrbench.strategies._base import (
    PlannedTrial,
    RunContext,
    Strategy,
    register,
    train_planned,
)
from lrbench.strategies._options import StrategyOptions, option
from lrbench.tools import ScheduleSpec
from lrbench.training import TrainConfig, TrainResult

PHASE = "pbt"


class PBTKeys:
    """User attrs of a PBT segment trial."""

    MEMBER = "pbt_member"
    SEGMENT = "pbt_segment"
    COPIED_FROM = "pbt_copied_from"  # {"member": i, "segment": s} or None
    START_EPOCH = "pbt_start_epoch"
    POPULATION = "pbt_population"  # 0, then one more per resume after a crash


@dataclass(frozen=True)
class PBTOptions(StrategyOptions):
    members: int | None = option(None, minimum=2)
    interval: int | None = option(None, minimum=1)  # epochs between rankings
    quantile_fraction: float = option(0.25, positive=True, maximum=0.5)
    resample_probability: float = option(0.25, minimum=0.0, maximum=1.0)
    perturbation_factors: tuple[float, ...] = option((1.2, 0.8), positive=True)


@dataclass
class Member:
    """One member between two rankings: its rate, and what the next segment starts from
    (weights and optimizer state; None: a fresh initialisation)."""

    index: int
    lr: float
    weights: dict[str, torch.Tensor] | None = None
    optimizer_state: dict[str, Any] | None = None
    copied_from: tuple[int, int] | None = None  # (member, segment) of the donor
    steps: int = 0  # steps its weights have trained
    score: float = math.nan  # its validation value when last ranked (NaN: none, or diverged)


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def quantile_size(n: int, fraction: float) -> int:
    """How many members form the bottom (and the top) quantile: Ray Tune's rule."""
    if n <= 1:
        return 0
    return min(int(math.ceil(n * fraction)), n // 2)


def ranking(scores: list[float], is_better) -> list[int]:
    """Member indices from best to worst; a non-finite score (a diverged member) is worst;
    ties keep member order."""
    finite = [i for i, s in enumerate(scores) if math.isfinite(s)]
    order: list[int] = []
    for i in finite:  # insertion: `is_better` is the task's comparison, not a key
        pos = len(order)
        while pos > 0 and is_better(scores[i], scores[order[pos - 1]]):
            pos -= 1
        order.insert(pos, i)
    return order + [i for i, s in enumerate(scores) if not math.isfinite(s)]


def explore(
    lr: float,
    rng: np.random.Generator,
    *,
    low: float,
    high: float,
    resample_probability: float,
    perturbation_factors: tuple[float, ...],
) -> float:
    """A new rate from `lr`: resampled log-uniform with `resample_probability`, else `lr` times
    one of the factors, clipped to [low, high]."""
    if rng.random() < resample_probability:
        return log_uniform(rng, low, high)
    factor = perturbation_factors[int(rng.integers(len(perturbation_factors)))]
    return float(min(high, max(low, lr * factor)))


def copy_member(donor: Member, index: int, segment: int, lr: float) -> Member:
    """Member `index` continuing from `donor` (its weights and optimizer state, copied) at `lr`."""
    if donor.weights is None or donor.optimizer_state is None:
        raise ValueError("a donor member needs its weights and optimizer state")
    weights = {k: v.detach().clone() for k, v in donor.weights.items()}
    optimizer_state = copy.deepcopy(donor.optimizer_state)
    return Member(
        index, lr, weights, optimizer_state, (donor.index, segment), donor.steps, donor.score
    )


def exploit_and_explore(
    members: list[Member],
    scores: list[float],
    *,
    segment: int,
    is_better,
    rng: np.random.Generator,
    low: float,
    high: float,
    quantile_fraction: float,
    resample_probability: float,
    perturbation_factors: tuple[float, ...],
) -> list[Member]:
    """The members after the ranking that ends `segment`: the bottom quantile (and every member
    with a non-finite score) copies a random top-quantile member and explores its rate; the
    others carry on unchanged. With no finite score at all, every member starts afresh at a
    resampled rate."""
    order = ranking(scores, is_better)
    healthy = [i for i in order if math.isfinite(scores[i])]
    if not healthy:
        return [Member(m.index, log_uniform(rng, low, high)) for m in members]
    q = quantile_size(len(members), quantile_fraction)
    top = [i for i in order[:q] if math.isfinite(scores[i])] or healthy[:1]
    bottom = set(order[len(order) - q :] if q else []) | {
        i for i in order if not math.isfinite(scores[i])
    }
    bottom -= set(top)
    out = list(members)
    for i in sorted(bottom, key=order.index, reverse=True):  # worst first
        donor = members[top[int(rng.integers(len(top)))]]
        lr = explore(
            donor.lr,
            rng,
            low=low,
            high=high,
            resample_probability=resample_probability,
            perturbation_factors=perturbation_factors,
        )
        out[i] = copy_member(donor, i, segment, lr)
    for i in range(len(out)):
        if i not in bottom:
            out[i] = replace(out[i], copied_from=None)
    return out


def segment_seed(seed: int, segment: int) -> int:
    """The data-order (and noise) seed of a segment: the run's seed for the first, so every
    member starts from the initialisation every strategy's first trial of the run has."""
    return seed if segment == 0 else (seed * 1_000_003 + segment) % (2**31)


def last_score(result: TrainResult) -> float:
    """A member's score at the end of its segment: its last validation value (its weights as
    they are), NaN for a diverged member."""
    if result.diverged or not result.history:
        return math.nan
    val = result.history[-1].val
    return val if math.isfinite(val) else math.nan


@register
class PBTStrategy(Strategy):
    name = "pbt"
    group = "population"
    description = (
        "population based training of the rate: members exploit (copy weights and optimizer "
        "state of the top quantile) and explore (perturb x1.2/x0.8 or resample) every interval"
    )
    Options = PBTOptions
    opts: PBTOptions

    def interval(self, ctx: RunContext) -> int:
        return self.opts.interval or max(1, ctx.epochs_per_trial // 4)

    def n_members(self, ctx: RunContext) -> int:
        if self.opts.members is not None:
            return self.opts.members
        return max(2, min(8, int(ctx.budget_epochs // (2 * self.interval(ctx)))))

    def segment_steps(self, ctx: RunContext, k: int) -> list[int]:
        """Each member's steps in the next segment: the interval, or, where the budget left
        holds less, that budget shared out evenly (the first members one step more)."""
        full = self.interval(ctx) * ctx.steps_per_epoch
        remaining = ctx.remaining_steps()
        if remaining >= k * full:
            return [full] * k
        base, extra = divmod(remaining, k)
        return [base + (i < extra) for i in range(k)]

    def run(self, ctx: RunContext) -> None:
        if ctx.remaining_steps() <= 0:
            return
        study = ctx.study
        earlier = [
            t.user_attrs.get(PBTKeys.POPULATION, 0)
            for t in study.get_trials(deepcopy=False)
            if PBTKeys.MEMBER in t.user_attrs
        ]
        population = max(earlier) + 1 if earlier else 0
        rng = np.random.default_rng([ctx.seed, population])
        k = self.n_members(ctx)
        members = [Member(i, log_uniform(rng, ctx.low, ctx.high)) for i in range(k)]
        segment = 0
        while ctx.remaining_steps() > 0:
            steps = self.segment_steps(ctx, k)
            results = self.train_segment(ctx, members, steps, segment, population)
            if ctx.remaining_steps() <= 0:
                break
            for index, result in results:
                m = members[index]
                m.weights, m.optimizer_state = result.final_state, result.final_optimizer_state
                m.steps += result.steps
                m.score = last_score(result)
            # A member the budget left no step in this segment keeps its last score.
            members = exploit_and_explore(
                members,
                [m.score for m in members],
                segment=segment,
                is_better=ctx.task.is_better,
                rng=rng,
                low=ctx.low,
                high=ctx.high,
                quantile_fraction=self.opts.quantile_fraction,
                resample_probability=self.opts.resample_probability,
                perturbation_factors=self.opts.perturbation_factors,
            )
            segment += 1

    def train_segment(
        self,
        ctx: RunContext,
        members: list[Member],
        steps: list[int],
        segment: int,
        population: int,
    ) -> list[tuple[int, TrainResult]]:
        """One segment: every member with steps to train is one trial; trials train in
        populations of `ctx.population_size()`; each is told its best validation value."""
        study = ctx.study
        spe = ctx.steps_per_epoch
        planned: list[tuple[Member, PlannedTrial]] = []
        for m, n in zip(members, steps):
            if n <= 0:
                continue
            trial = ctx.ask_fixed(m.lr)
            copied = m.copied_from
            trial.set_user_attr(PBTKeys.MEMBER, m.index)
            trial.set_user_attr(PBTKeys.SEGMENT, segment)
            trial.set_user_attr(
                PBTKeys.COPIED_FROM,
                None if copied is None else {"member": copied[0], "segment": copied[1]},
            )
            trial.set_user_attr(PBTKeys.START_EPOCH, m.steps / spe)
            trial.set_user_attr(PBTKeys.POPULATION, population)
            config = TrainConfig.for_task(
                ctx.task,
                m.lr,
                epochs=math.ceil(n / spe),
                optimizer=ctx.optimizer,
                schedule=ScheduleSpec(),
                seed=segment_seed(ctx.seed, segment),
                max_steps=n,
            )
            planned.append(
                (
                    m,
                    PlannedTrial(
                        ctx,
                        trial,
                        config,
                        initial_state=m.weights,
                        initial_optimizer_state=m.optimizer_state,
                        keep_final_state=True,
                    ),
                )
            )
        size = max(1, ctx.population_size())
        out: list[tuple[int, TrainResult]] = []
        try:
            for start in range(0, len(planned), size):
                chunk = planned[start : start + size]
                results = train_planned([p for _, p in chunk], phase=PHASE)
                for (m, p), result in zip(chunk, results):
                    study.tell(p.trial, ctx.objective_value(result))
                    out.append((m.index, result))
        except BaseException:
            told = {p.trial.number for _, p in planned[: len(out)]}
            for _, p in planned:
                if p.trial.number not in told:
                    study.tell(p.trial, state=TrialState.FAIL)
            raise
        return out
