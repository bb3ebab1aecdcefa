"""Significant-digit learning-rate search as an Optuna sampler.

See :class:`SignificantDigitSampler` for the algorithm, what extra trials get and the
multi-worker protocol.
"""

from __future__ import annotations

import math
import re
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeGuard

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from lrbench.errors import ConfigError

__all__ = [
    "SigDigitConfigError",
    "SigDigitDelegationWarning",
    "SigDigitRound",
    "SigDigitSurplusWarning",
    "SignificantDigitSampler",
]

_LR_NAMES = ("lr", "learning_rate")
# A name's parts (lower-cased, split at "_", "." and "-") that say "learning rate".
_LR_WORDS = (("lr",), ("learning", "rate"))
# Words that, right after a leading lr/learning_rate, make the name a schedule setting of the
# rate (lr_decay, lr_gamma, learning_rate_warmup) rather than a rate.
_SCHEDULE_WORDS = frozenset(
    "decay gamma factor scale mult multiplier ratio warmup step steps patience power "
    "schedule scheduler policy cycle milestones".split()
)
_UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)
# Study user attr: the number of the study's best trial while that trial is a surplus trial
# (its rate not the search's own), None once a searched trial is best again.
BEST_IS_SURPLUS = "sigdigit_best_is_surplus"


class SigDigitConfigError(ConfigError, ValueError):
    """Bad sampler argument or search space (a ``ValueError`` and a ``ConfigError``)."""


class SigDigitDelegationWarning(UserWarning):
    """The sampler claims no parameter: no float is named like a learning rate and no
    ``param_name`` was given, so every parameter goes to the independent sampler. Warned
    once per sampler instance, after the first finished trial that has parameters."""


class SigDigitSurplusWarning(UserWarning):
    """A trial is a surplus trial: its learning rate comes from the independent sampler, not
    from the search. Warned when its rate is sampled, one warning per surplus trial."""


@dataclass(frozen=True)
class SigDigitRound:
    """One round of the search, for reports.

    ``number`` is 1-based: round ``d`` refines the ``d``-th decimal place counted from the
    first round's decade. ``lists`` holds, for round 1, the decade's leading digits and,
    for later rounds, one list per kept rate of the round before (best first), each
    descending, as generated (rates of earlier rounds dropped, the kept rate itself
    included). ``candidates`` is the lists concatenated without repeats: the round's
    rates in evaluation order (the kept rates and rates an enqueued trial evaluated are
    not evaluated again; their stored scores count). ``kept`` is the top k, best first,
    once ``finished``; empty before.
    """

    number: int
    candidates: tuple[float, ...]
    finished: bool
    kept: tuple[float, ...] = ()
    lists: tuple[tuple[float, ...], ...] = ()


@dataclass
class _Analysis:
    rounds: list[SigDigitRound]
    exhausted: bool
    unclaimed: list[float]  # the open round's candidates no trial holds, in order
    running: list[FrozenTrial]  # unfinished trials holding the open round's other candidates
    best: float | None
    holders: dict[float, list[FrozenTrial]]
    finished_at: datetime | None = None  # when the search's last candidate finished


def _rate_of(trial: FrozenTrial, name: str) -> float | None:
    """The learning rate a trial evaluated, evaluates or will evaluate (enqueued)."""
    if name in trial.params:
        return float(trial.params[name])
    if trial.state in _UNFINISHED:
        # An enqueued trial's rate is only in its system attrs until it runs; GridSampler
        # reads it the same way. Without it, a worker could pick a rate that a queued
        # trial is about to evaluate. (The sampler's one use of a non-public detail.)
        fixed = trial.system_attrs.get("fixed_params") or {}
        if name in fixed and fixed[name] is not None:
            return float(fixed[name])
    return None


def _is_searchable(dist: BaseDistribution) -> TypeGuard[FloatDistribution]:
    """A continuous float range the search can own (not a grid, not a single value)."""
    return isinstance(dist, FloatDistribution) and dist.step is None and not dist.single()


def _is_exact_lr_name(name: str) -> bool:
    return name.lower() in _LR_NAMES


def _is_lr_name(name: str) -> bool:
    """Whether a parameter name says it is a learning rate (the sampler's naming rule).

    The name, lower-cased and split at ``_``, ``.`` and ``-``, ends with ``lr`` or
    ``learning``, ``rate`` (``lr``, ``adam_lr``, ``encoder.lr``, ``base_learning_rate``),
    or begins with them unless the next part names a schedule setting such as ``decay``,
    ``gamma``, ``factor``, ``warmup`` (``lr_actor`` and ``learning_rate_init`` are rates,
    ``lr_decay`` is not). Letters inside a part do not count: ``clr_gamma``, ``C``,
    ``weight_decay`` and ``lr0`` are not learning-rate names.
    """
    parts = re.split(r"[._\-]", name.lower())
    for word in _LR_WORDS:
        n = len(word)
        if tuple(parts[-n:]) == word:
            return True
        if tuple(parts[:n]) == word and (len(parts) == n or parts[n] not in _SCHEDULE_WORDS):
            return True
    return False


def _is_lr_like(name: str, dist: BaseDistribution) -> bool:
    """A parameter the sampler claims when no param_name is given: its name says so."""
    return _is_searchable(dist) and _is_lr_name(name)


def _to_float(d: Decimal) -> float:
    # float(str) gives the double nearest to the decimal, so repr() is its short form.
    return float(str(d))


def _in_range(value: float, dist: FloatDistribution) -> bool:
    return dist.low <= value <= dist.high


class SignificantDigitSampler(BaseSampler):
    """Coarse-to-fine search over one float learning-rate parameter, one decimal per round.

    **Algorithm** (as the original program runs it). Round 1 tries every leading digit
    of one decade, descending: ``9e, 8e, ..., 1e`` with ``e = 10**E``. The decade comes
    from ``decade`` (``decade=1e-3`` gives 0.009 ... 0.001); by default it is the highest
    one with at least two of its values ``<= high``, i.e. the largest ``E`` with
    ``2*10**E <= high``: ``suggest_float("lr", 1e-4, 1e-2, log=True)`` gives
    0.009 ... 0.001, ``1e-5 ... 1e-3`` gives 0.0009 ... 0.0001, ``high=0.05`` gives
    0.05 ... 0.01. The best ``k`` rates of a round are kept. Round ``d`` (``d >= 2``)
    refines the ``d``-th decimal place counted from that first decade, whatever the kept
    rate's own leading digit: with step ``s = 10**E / 10**(d-1)``, it tries for each kept
    rate ``r`` (best first) ``r + n*s`` for ``n = 4, 3, ..., -10`` (15 values, descending),
    built with :class:`decimal.Decimal` at that decimal place (stored values carry no
    float noise: ``repr`` is ``'0.00041'``). Dropped: non-positive values, values outside
    ``[low, high]``, and rates that an earlier round already tried, except the kept rates
    themselves. From 0.002 and 0.001 (decade 1e-3), round 2 tries 0.0024 ... 0.0010, then
    0.0014 ... 0.0001; from 0.0007 and 0.0004, round 3 tries 0.00074 ... 0.00061, then
    0.00044 ... 0.00031. A rate is evaluated once: one in several lists, a kept rate, or
    one an enqueued trial evaluated is not evaluated again, its stored score counts. The
    round's top ``k`` are ranked over its lists. The search ends after ``digits`` rounds:
    at most ``9 + 2*14*(digits-1)`` evaluations (53 for ``k=2, digits=3``).

    **Score.** ``trial.value`` for COMPLETE trials; for PRUNED ones the best
    intermediate value (per ``study.direction``), if any. FAIL trials and trials without
    a value rank last and are never kept. Several trials of one rate: the best counts.
    Ties go to the **larger** rate, so the result does not depend on the trial order.

    **State.** Everything is derived from the study's trials on each call (the parameter
    value identifies the candidate; nothing extra is stored), so a fresh instance, a
    restarted process or another worker on the same storage continues the same search.
    Enqueued trials (``study.enqueue_trial``) claim their fixed rate, also while queued.

    **Several trials at once** (ask-and-tell batches, ``n_jobs``, several processes):
    nothing waits by default. Trials that will take a rate and have not yet (RUNNING or
    WAITING, no rate yet) reserve the open round's free candidates in trial-number order:
    trial ``m`` takes the free candidate after the ones reserved for the lower-numbered
    such trials, so two trials never take the same rate, whatever order they suggest in.
    When the open round has no free candidate left (all are running, reserved or done
    but the round's ranking needs a result still running), the trial is a **surplus
    trial**: its learning rate comes from ``independent_sampler`` within the
    distribution (warned with :class:`SigDigitSurplusWarning`), it is never a candidate
    of the search and its result does not rank the rounds. :meth:`surplus_trials` lists them. With
    ``wait_timeout > 0`` a would-be surplus trial first waits up to that many seconds
    (polling every ``poll_interval`` s) while trials of *other* threads or processes
    hold or reserve the open round's candidates, which suits a pool of workers that would
    rather idle than train at a random rate; it never waits for trials of its own
    thread, or for queued ones. A RUNNING trial that never finishes (a killed worker) holds or
    reserves its rate until it is failed: use a heartbeat storage, or mark it FAIL.

    **End.** In ``after_trial`` the sampler calls ``study.stop()`` once the search is
    finished, like :class:`~optuna.samplers.GridSampler` (ignored outside
    ``study.optimize``). A trial asked after that gets the best rate found so far (and
    stops the study again): a deliberate repeat, listed by :meth:`surplus_trials`. A
    trial that started before the search finished and finds it finished when it samples
    (it waited, its start time is not after the last candidate's finish, or this
    instance's previous ``after_trial`` still saw the search open, i.e. it raced another
    worker's last trial) raises :class:`optuna.TrialPruned`: there is nothing left to
    evaluate, and re-evaluating would duplicate a rate.

    **Parameters.** The sampler owns one float parameter: ``param_name``, or else the
    continuous float parameter whose **name** says it is a learning rate. The rule: the
    name, lower-cased and split at ``_``, ``.`` and ``-``, ends with ``lr`` or
    ``learning_rate`` (``lr``, ``adam_lr``, ``encoder.lr``, ``base_learning_rate``), or
    begins with it unless the next part is a schedule word (``decay``, ``gamma``,
    ``factor``, ``scale``, ``mult``, ``ratio``, ``warmup``, ``step``, ...): ``lr_actor``
    and ``learning_rate_init`` are claimed, ``lr_decay`` is not. Letters inside a part do
    not count (``clr_gamma``, ``lr0``), and the scale does not matter: a ``log=True``
    float named ``C`` or ``weight_decay`` is never claimed, a linear float named ``lr``
    is. A name that is exactly ``lr``/``learning_rate`` wins over the other learning-rate
    names; several others raise, asking for ``param_name``. Stepped and single-value
    floats are never owned. All other parameters go to ``independent_sampler`` (default
    ``RandomSampler(seed=seed)``); trials without the owned parameter are ignored by the
    search. Multi-objective studies raise :class:`ValueError`.

    **Warnings.** A study whose trials ask for parameters of which none is claimed (no
    ``param_name``, no float named like a learning rate) is a plain
    ``independent_sampler`` study: the sampler warns once per instance, at the first
    finished trial with parameters, with :class:`SigDigitDelegationWarning`. Each surplus
    trial is announced as its rate is sampled with :class:`SigDigitSurplusWarning`.
    While the study's best trial (the first COMPLETE trial with the best value) is one of
    :meth:`surplus_trials`, the study user attr ``"sigdigit_best_is_surplus"`` holds its
    number; it is set back to None once a searched trial is best again.

    **Example.** Two rounds, the best two kept, on an objective whose best rate is
    10**-2.6 (about 0.0025); round 1 tries the decade's nine leading digits:

    >>> import math, optuna, lrbench
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(sampler=lrbench.SignificantDigitSampler(k=2, digits=2))
    >>> objective = lambda t: (math.log10(t.suggest_float("lr", 1e-4, 1e-2, log=True)) + 2.6) ** 2
    >>> study.optimize(objective, n_trials=37)
    >>> [t.params["lr"] for t in study.trials[:9]]
    [0.009, 0.008, 0.007, 0.006, 0.005, 0.004, 0.003, 0.002, 0.001]
    >>> study.best_params
    {'lr': 0.0025}
    """

    def __init__(
        self,
        *,
        param_name: str | None = None,
        k: int = 2,
        digits: int = 3,
        decade: float | None = None,
        independent_sampler: BaseSampler | None = None,
        seed: int | None = None,
        wait_timeout: float = 0.0,
        poll_interval: float = 0.05,
    ) -> None:
        if not isinstance(k, int) or k < 1:
            raise SigDigitConfigError(f"k must be an integer >= 1, got {k!r}")
        if not isinstance(digits, int) or digits < 1:
            raise SigDigitConfigError(f"digits must be an integer >= 1, got {digits!r}")
        if decade is not None:
            try:
                d = Decimal(repr(float(decade)))
            except (TypeError, ValueError):
                d = Decimal(-1)
            if not d.is_finite() or d <= 0 or d.normalize().as_tuple().digits != (1,):
                raise SigDigitConfigError(
                    f"decade must be a positive power of ten such as 1e-3, got {decade!r}"
                )
        if wait_timeout < 0:
            raise SigDigitConfigError(f"wait_timeout must be >= 0, got {wait_timeout!r}")
        if poll_interval <= 0:
            raise SigDigitConfigError(f"poll_interval must be > 0, got {poll_interval!r}")
        self._param_name = param_name
        self._k = k
        self._digits = digits
        self._decade_exp = None if decade is None else Decimal(repr(float(decade))).adjusted()
        self._independent_sampler = independent_sampler or RandomSampler(seed=seed)
        self._wait_timeout = float(wait_timeout)
        self._poll_interval = float(poll_interval)
        self._lock = threading.Lock()
        self._resolved: str | None = None  # auto-detected parameter name
        self._asked_by: dict[int, int] = {}  # trial number -> thread that asked it (here)
        # Whether this instance's latest after_trial saw the search still open: a trial it
        # then asks that finds the search finished only raced another worker's last trial.
        self._saw_open = False
        self._warned_delegation = False

    # ------------------------------------------------------------------ BaseSampler API

    def reseed_rng(self) -> None:
        self._independent_sampler.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        with self._lock:
            self._asked_by[trial.number] = threading.get_ident()
        self._independent_sampler.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        self._check_single_objective(study)
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._check_single_objective(study)
        return {}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._check_single_objective(study)
        if not self._owns(study, param_name, param_distribution):
            return self._independent_sampler.sample_independent(
                study, trial, param_name, param_distribution
            )
        assert isinstance(param_distribution, FloatDistribution)
        rate = self._choose(study, trial, param_name, param_distribution)
        if rate is None:
            return self._independent_sampler.sample_independent(
                study, trial, param_name, param_distribution
            )
        return rate

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._asked_by.pop(trial.number, None)
        self._independent_sampler.after_trial(study, trial, state, values)
        self._check_single_objective(study)
        trials = self._all_trials(study)
        name = self._name(trials)
        if name is None:
            self._warn_delegation(trial)
            return
        dist = self._latest_distribution(trials, name)
        if not isinstance(dist, FloatDistribution) or not self._first_round(dist):
            return
        analysis = self._analyse(
            trials, name, dist, study.direction, override={trial.number: (state, values)}
        )
        self._mark_surplus_best(study, trials, trial, state, values, analysis, name)
        self._saw_open = not analysis.exhausted
        if analysis.exhausted:
            try:
                study.stop()
            except RuntimeError:
                pass  # ask-and-tell: there is no optimize loop to stop

    # ------------------------------------------------------------------ read-only helpers

    def plan(self, study: Study) -> list[SigDigitRound]:
        """The rounds so far (finished ones, then the open one), from the storage."""
        analysis = self._analysis_of(study)
        return [] if analysis is None else analysis.rounds

    def is_exhausted(self, study: Study) -> bool:
        """True when all ``digits`` rounds are finished (the search phase is over)."""
        analysis = self._analysis_of(study)
        return analysis is not None and analysis.exhausted

    def kept_rates(self, study: Study) -> list[float]:
        """Top-k rates of the last finished round, best first (final ones once exhausted)."""
        for rnd in reversed(self.plan(study)):
            if rnd.finished:
                return list(rnd.kept)
        return []

    def best_rate(self, study: Study) -> float | None:
        """Best-scoring rate over all finished trials of the owned parameter, or None."""
        analysis = self._analysis_of(study)
        return None if analysis is None else analysis.best

    def surplus_trials(self, study: Study) -> list[int]:
        """Numbers of the trials with the learning rate that are not the search's own.

        That is, every trial holding the owned parameter except the first holder of each
        round's candidate: surplus trials (asked while the open round had no free
        candidate; their rate came from the independent sampler), trials asked after the
        search ended (the best rate again), and enqueued rates outside every round.
        """
        analysis = self._analysis_of(study)
        if analysis is None:
            return []
        name = self._name(self._all_trials(study))
        assert name is not None
        return self._surplus_of(analysis, name)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _surplus_of(analysis: _Analysis, name: str) -> list[int]:
        own = {
            analysis.holders[c][0].number
            for r in analysis.rounds
            for c in r.candidates
            if c in analysis.holders
        }
        return sorted(
            t.number
            for ts in analysis.holders.values()
            for t in ts
            if t.number not in own and name in t.params
        )

    def _warn_delegation(self, trial: FrozenTrial) -> None:
        """Once per instance: a trial asked for parameters and the sampler claimed none."""
        if self._param_name is not None or not trial.params:
            return
        with self._lock:
            if self._warned_delegation:
                return
            self._warned_delegation = True
        warnings.warn(
            f"SignificantDigitSampler: no parameter of trial {trial.number} "
            f"({', '.join(sorted(trial.params))}) is a continuous float named like a "
            "learning rate (lr, learning_rate, adam_lr, lr_actor, encoder.lr, ...), so every "
            "parameter goes to the independent sampler "
            f"{type(self._independent_sampler).__name__} and nothing is searched. "
            "Pass param_name= to search one.",
            SigDigitDelegationWarning,
            stacklevel=2,
        )

    def _mark_surplus_best(
        self,
        study: Study,
        trials: list[FrozenTrial],
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
        analysis: _Analysis,
        name: str,
    ) -> None:
        """Keep the study user attr BEST_IS_SURPLUS: the best trial's number while it is a
        surplus trial, None once a searched trial is best again.

        after_trial runs before the trial's state is stored, so the best trial is found
        here (Optuna's rule: the first COMPLETE trial with the best value), with this
        trial's outcome in place of its stored RUNNING state.
        """
        maximize = study.direction == StudyDirection.MAXIMIZE
        best: tuple[float, int] | None = None
        for t in trials:
            st, vs = (state, values) if t.number == trial.number else (t.state, t.values)
            if st != TrialState.COMPLETE or not vs or math.isnan(float(vs[0])):
                continue
            v = float(vs[0])
            if best is None or (v > best[0] if maximize else v < best[0]):
                best = (v, t.number)
        if best is None:
            return
        surplus = best[1] in self._surplus_of(analysis, name)
        # Study's own methods, unbound: under HyperbandPruner `study` is a bracket view.
        stored = Study.user_attrs.fget(study)  # type: ignore[attr-defined]
        if surplus and stored.get(BEST_IS_SURPLUS) != best[1]:
            Study.set_user_attr(study, BEST_IS_SURPLUS, best[1])
        elif not surplus and stored.get(BEST_IS_SURPLUS) is not None:
            Study.set_user_attr(study, BEST_IS_SURPLUS, None)

    @staticmethod
    def _check_single_objective(study: Study) -> None:
        if len(study.directions) > 1:
            raise ValueError(
                "SignificantDigitSampler searches one objective; this study has "
                f"{len(study.directions)} (use a multi-objective sampler such as NSGAIISampler)."
            )

    @staticmethod
    def _all_trials(study: Study) -> list[FrozenTrial]:
        # Every trial of the study: the base class's get_trials, not an override. Under
        # HyperbandPruner the sampler is handed a study view whose get_trials keeps only
        # one bracket's trials (optuna issue 2327); the search must see all of them, or it
        # would evaluate other brackets' rates again.
        return Study.get_trials(study, deepcopy=False)

    def _analysis_of(self, study: Study) -> _Analysis | None:
        trials = self._all_trials(study)
        name = self._name(trials)
        if name is None:
            return None
        dist = self._latest_distribution(trials, name)
        if not isinstance(dist, FloatDistribution) or not self._first_round(dist):
            return None
        return self._analyse(trials, name, dist, study.direction)

    @staticmethod
    def _latest_distribution(trials: list[FrozenTrial], name: str) -> BaseDistribution | None:
        for t in reversed(trials):
            d = t.distributions.get(name)
            if d is not None and _is_searchable(d):
                return d
        return None

    def _name(self, trials: list[FrozenTrial]) -> str | None:
        """The owned parameter's name, from the constructor, memory or the stored trials."""
        if self._param_name is not None:
            return self._param_name
        if self._resolved is not None:
            return self._resolved
        names: list[str] = []
        for t in trials:
            for n, d in t.distributions.items():
                if _is_lr_like(n, d) and n not in names:
                    names.append(n)
        # An exact lr/learning_rate wins (lr before learning_rate), as in _owns.
        lr_named = sorted((n for n in names if _is_exact_lr_name(n)), key=lambda n: n != "lr")
        if lr_named:
            chosen: str | None = lr_named[0]
        elif len(names) > 1:
            raise SigDigitConfigError(
                f"SignificantDigitSampler cannot tell which of the float parameters "
                f"{sorted(names)} is the learning rate; pass param_name=."
            )
        else:
            chosen = names[0] if names else None
        if chosen is not None:
            with self._lock:
                self._resolved = self._resolved or chosen
        return chosen

    def _owns(self, study: Study, name: str, dist: BaseDistribution) -> bool:
        if self._param_name is not None:
            if name != self._param_name:
                return False
            if not _is_searchable(dist):
                raise SigDigitConfigError(
                    f"SignificantDigitSampler(param_name={name!r}): {name!r} is a "
                    f"{type(dist).__name__}{' with a step' if getattr(dist, 'step', None) else ''}"
                    ", but the sampler searches a continuous float learning rate; use "
                    f"trial.suggest_float({name!r}, low, high, log=True)."
                )
            return True
        resolved = self._resolved or self._name(self._all_trials(study))
        if resolved is None:
            if not _is_lr_like(name, dist):
                return False
            with self._lock:
                if self._resolved is None:
                    self._resolved = name
                resolved = self._resolved
        if name == resolved:
            if not isinstance(dist, FloatDistribution):
                raise SigDigitConfigError(
                    f"SignificantDigitSampler: parameter {name!r} was a float learning rate "
                    f"before and is now a {type(dist).__name__}."
                )
            return _is_searchable(dist)
        # An exact lr/learning_rate wins over compound names (lr then lr_min: lr_min is
        # delegated); any other second learning-rate name is ambiguous.
        if _is_lr_like(name, dist) and not (
            _is_exact_lr_name(resolved) and not _is_exact_lr_name(name)
        ):
            raise SigDigitConfigError(
                f"SignificantDigitSampler took {resolved!r} (the first float parameter named "
                f"like a learning rate) as the learning rate, and now {name!r}, also named "
                "like one, is asked for; pass param_name= to say which one to search."
            )
        return False

    def _decade_exponent(self, dist: FloatDistribution) -> int:
        if self._decade_exp is not None:
            return self._decade_exp
        # The largest E with 2*10**E <= high: at least two leading digits below high.
        return (Decimal(repr(float(dist.high))) / 2).adjusted()

    def _first_round(self, dist: FloatDistribution) -> list[float]:
        exp = self._decade_exponent(dist)
        values = [_to_float(Decimal(d).scaleb(exp)) for d in range(9, 0, -1)]
        return [v for v in values if _in_range(v, dist)]

    def _next_lists(
        self, kept: list[float], number: int, dist: FloatDistribution, tried: set[float]
    ) -> list[tuple[float, ...]]:
        """Round ``number``'s lists: one per kept rate, at step decade / 10**(number-1).

        Rates of earlier rounds are dropped, except the kept ones (their scores rank this
        round): from kept 0.002 and 0.001 the first list runs 0.0024 ... 0.0010.
        """
        unit = Decimal(1).scaleb(self._decade_exponent(dist) - (number - 1))
        lists = []
        for rate in kept:
            r = Decimal(repr(rate))
            out = []
            for n in range(4, -11, -1):
                c = (r + n * unit).quantize(unit)
                if c <= 0:
                    continue
                v = _to_float(c)
                if _in_range(v, dist) and (v in kept or v not in tried):
                    out.append(v)
            lists.append(tuple(out))
        return lists

    @staticmethod
    def _score(
        state: TrialState,
        values: Sequence[float] | None,
        intermediate: dict[int, float],
        direction: StudyDirection,
    ) -> float | None:
        if state == TrialState.COMPLETE and values:
            v = float(values[0])
            return None if math.isnan(v) else v
        if state == TrialState.PRUNED:
            xs = [float(x) for x in intermediate.values() if not math.isnan(float(x))]
            if xs:
                return max(xs) if direction == StudyDirection.MAXIMIZE else min(xs)
        return None

    def _analyse(
        self,
        trials: list[FrozenTrial],
        name: str,
        dist: FloatDistribution,
        direction: StudyDirection,
        override: dict[int, tuple[TrialState, Sequence[float] | None]] | None = None,
    ) -> _Analysis:
        maximize = direction == StudyDirection.MAXIMIZE
        holders: dict[float, list[FrozenTrial]] = {}
        done: set[float] = set()
        scores: dict[float, float] = {}
        first_done: dict[float, datetime] = {}  # earliest finish per rate
        for t in trials:
            rate = _rate_of(t, name)
            if rate is None:
                continue
            state, values = (override or {}).get(t.number, (t.state, t.values))
            holders.setdefault(rate, []).append(t)
            if not state.is_finished():
                continue
            done.add(rate)
            if t.datetime_complete is not None and (
                rate not in first_done or t.datetime_complete < first_done[rate]
            ):
                first_done[rate] = t.datetime_complete
            s = self._score(state, values, t.intermediate_values, direction)
            if s is not None and (
                rate not in scores or (s > scores[rate] if maximize else s < scores[rate])
            ):
                scores[rate] = s

        def key(rate: float) -> tuple[bool, float, float]:
            s = scores.get(rate)
            if s is None:
                return (False, 0.0, rate)
            return (True, s if maximize else -s, rate)

        best = max(scores, key=key) if scores else None
        first = self._first_round(dist)
        if not first:
            raise SigDigitConfigError(
                f"SignificantDigitSampler: no leading-digit value of the decade "
                f"lies in [{dist.low}, {dist.high}]; set decade= (e.g. decade=1e-3 "
                "tries 0.009 ... 0.001) to one inside the range."
            )
        lists: list[tuple[float, ...]] = [tuple(first)]
        tried: set[float] = set()  # every rate of the rounds so far
        rounds: list[SigDigitRound] = []
        for number in range(1, self._digits + 1):
            cands = list(dict.fromkeys(c for lst in lists for c in lst))
            unclaimed = [c for c in cands if c not in holders]
            pending = [c for c in cands if c in holders and c not in done]
            if unclaimed or pending:
                rounds.append(SigDigitRound(number, tuple(cands), False, (), tuple(lists)))
                running = [t for c in pending for t in holders[c] if t.state in _UNFINISHED]
                return _Analysis(rounds, False, unclaimed, running, best, holders)
            ranked = sorted(cands, key=key, reverse=True)
            kept = [c for c in ranked if c in scores][: self._k]
            rounds.append(SigDigitRound(number, tuple(cands), True, tuple(kept), tuple(lists)))
            tried.update(cands)
            if not kept or number == self._digits:
                break
            lists = self._next_lists(kept, number + 1, dist, tried)
        stamps = [first_done[c] for r in rounds for c in r.candidates if c in first_done]
        return _Analysis(rounds, True, [], [], best, holders, max(stamps) if stamps else None)

    def _choose(
        self, study: Study, trial: FrozenTrial, name: str, dist: FloatDistribution
    ) -> float | None:
        """The trial's candidate; None: a surplus trial (the independent sampler's rate)."""
        deadline = time.monotonic() + self._wait_timeout
        waited = False
        me = threading.get_ident()
        while True:
            trials = self._all_trials(study)
            analysis = self._analyse(trials, name, dist, study.direction)
            if analysis.exhausted:
                started, finished = trial.datetime_start, analysis.finished_at
                late = started is not None and finished is not None and started <= finished
                if waited or late or self._saw_open:
                    raise optuna.TrialPruned(
                        f"SignificantDigitSampler: the search finished while trial "
                        f"{trial.number} was starting; nothing is left to evaluate."
                    )
                if analysis.best is not None:
                    return analysis.best
                warnings.warn(
                    f"SignificantDigitSampler: the search is finished and no rate has a "
                    f"score; trial {trial.number} is a surplus trial, its learning rate "
                    f"{name!r} comes from the independent sampler "
                    f"{type(self._independent_sampler).__name__}.",
                    SigDigitSurplusWarning,
                    stacklevel=2,
                )
                return None
            # Lower-numbered trials that have no rate yet reserve the first free candidates.
            reserving = [
                t
                for t in trials
                if t.number < trial.number and t.state in _UNFINISHED and _rate_of(t, name) is None
            ]
            if len(reserving) < len(analysis.unclaimed):
                return analysis.unclaimed[len(reserving)]
            # Waiting can help only for trials that other threads or processes are running.
            others = [
                t
                for t in analysis.running + reserving
                if t.state == TrialState.RUNNING and self._asked_by.get(t.number) != me
            ]
            if not others or time.monotonic() >= deadline:
                rnd = analysis.rounds[-1]
                warnings.warn(
                    f"SignificantDigitSampler: trial {trial.number} is a surplus trial: "
                    f"round {rnd.number} has no free candidate (all "
                    f"{len(rnd.candidates)} are taken or reserved, some still running), so "
                    f"its learning rate {name!r} comes from the independent sampler "
                    f"{type(self._independent_sampler).__name__} and does not rank the "
                    "rounds. To have workers wait for a candidate instead, pass "
                    "wait_timeout= (seconds).",
                    SigDigitSurplusWarning,
                    stacklevel=2,
                )
                return None
            waited = True
            time.sleep(self._poll_interval)
