"""Significant-digit learning-rate search as an Optuna sampler.

See :class:`SignificantDigitSampler` for the algorithm and the multi-worker protocol.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from lrbench.errors import ConfigError

__all__ = ["SigDigitConfigError", "SigDigitRound", "SignificantDigitSampler"]

_LR_NAMES = ("lr", "learning_rate")
_UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)


class SigDigitConfigError(ConfigError, ValueError):
    """Bad sampler argument or search space (a ``ValueError`` and a ``ConfigError``)."""


@dataclass(frozen=True)
class SigDigitRound:
    """One round of the search, for reports.

    ``number`` is 1-based and equals the number of significant digits of its rates.
    ``candidates`` are in evaluation order (descending); some may have been evaluated by
    an earlier round or an enqueued trial. ``kept`` is the top-k, best first, once
    ``finished``; empty before.
    """

    number: int
    candidates: tuple[float, ...]
    finished: bool
    kept: tuple[float, ...] = ()


@dataclass
class _Analysis:
    rounds: list[SigDigitRound]
    exhausted: bool
    unclaimed: list[float]
    waiting_for: list[FrozenTrial]  # unfinished trials holding the open round's pending rates
    best: float | None
    finished_at: datetime | None = None  # when the search's last candidate finished


def _rate_of(trial: FrozenTrial, name: str) -> float | None:
    """The learning rate a trial evaluated, evaluates or will evaluate (enqueued)."""
    if name in trial.params:
        return float(trial.params[name])
    if trial.state in _UNFINISHED:
        fixed = trial.system_attrs.get("fixed_params") or {}
        if name in fixed and fixed[name] is not None:
            return float(fixed[name])
    return None


def _is_lr_like(name: str, dist: BaseDistribution) -> bool:
    return isinstance(dist, FloatDistribution) and (dist.log or name in _LR_NAMES)


def _to_float(d: Decimal) -> float:
    # float(str) gives the double nearest to the decimal, so repr() is its short form.
    return float(str(d))


class SignificantDigitSampler(BaseSampler):
    """Coarse-to-fine search over one float learning-rate parameter, one digit per round.

    **Algorithm.** Round 1 tries every leading digit of one decade, descending:
    ``9e, 8e, ..., 1e`` with ``e = 10**E``. ``E`` comes from ``decade`` (``decade=1e-3``
    gives 0.009 ... 0.001); by default it is the highest decade with at least two of
    its values ``<= high`` (``2*10**E <= high``), so ``high=1e-2`` (and ``high=0.015``)
    gives 0.009 ... 0.001 and ``high=0.05`` gives 0.05 ... 0.01. Values outside the
    distribution are dropped. After round ``j`` (rates with ``j`` significant digits)
    the best ``k`` rates of *that round's* candidates are kept; for each kept rate ``r``
    with unit ``u`` of its ``j``-th significant digit, round ``j+1`` tries
    ``r + n*u/10`` for ``n = 4, 3, ..., -10`` (from 0.003: 0.0034 ... 0.0020), built with
    :class:`decimal.Decimal` and rounded to ``j+1`` significant digits, so stored values
    carry no float noise (``repr`` is ``'0.00041'``). Non-positive and out-of-range
    values are dropped. The candidates of both kept rates are merged, de-duplicated and
    tried in **descending** order: the order then depends only on the set, not on which
    kept rate ranked first, and it matches round 1. A candidate already evaluated (an
    earlier round, or an enqueued trial) is not evaluated again; its stored result is
    reused for ranking. The search ends after ``digits`` rounds: at most
    ``9 + 2*14*(digits-1)`` evaluations (each kept rate was evaluated already), 53 for
    an optimum of 0.00041 with ``decade=1e-4`` and the default ``k=2, digits=3``.

    **Score.** ``trial.value`` for COMPLETE trials; for PRUNED ones the best
    intermediate value (per ``study.direction``), if any. FAIL trials and trials without
    a value rank last and are never kept. Several trials of one rate: the best counts.
    Ties go to the **larger** rate (the one the round evaluates first), so the result
    does not depend on the trial order.

    **State.** Everything is derived from the storage's trials on each call (the
    parameter value identifies the candidate; nothing extra is stored), so a fresh
    instance, a restarted process or another worker on the same storage continues the
    same search. Enqueued trials (``study.enqueue_trial``) claim their fixed rate.

    **Multi-worker protocol** (no rate is evaluated twice), when trial ``m`` needs the
    rate:

    a. wait until every RUNNING trial numbered below ``m`` has its rate set (param or
       enqueued fixed param): choices are serialised in trial-number order, and a later
       trial cannot choose before an earlier one has stored its choice;
    b. read all trials, rebuild the rounds deterministically and take the first
       candidate of the open round that no trial (any state, including WAITING
       enqueued ones) holds;
    c. if every candidate is held but some are still running, the next round cannot be
       computed yet: wait for them, then go to (b).

    Trials asked by the calling thread itself are not waited for (they cannot be
    choosing concurrently), so ask-and-tell may ask several trials and suggest in any
    order. Waiting polls every ``poll_interval`` s, calling
    :func:`optuna.storages.fail_stale_trials` (heartbeat storages). After
    ``wait_timeout`` s, or at once when waiting cannot help (in (c) the trials waited
    for are WAITING in the queue or were asked by this thread), the trial gets its
    value from the independent sampler with a warning; after a timeout this instance
    no longer waits for those trials nor counts their claims while they run.

    **End.** In ``after_trial`` the sampler calls ``study.stop()`` once the search is
    finished, like :class:`~optuna.samplers.GridSampler` (ignored outside
    ``study.optimize``). A trial asked after that gets the best rate found so far (and
    stops the study again). A trial that started before the search finished and finds
    it finished when it samples (it waited in (a)/(c), its start time is not after the
    last candidate's finish, or this instance's previous ``after_trial`` still saw the
    search open, i.e. it raced another worker's last trial) raises
    :class:`optuna.TrialPruned`: there is nothing left to evaluate, and re-evaluating
    would duplicate a rate.

    Rare race left open: a WAITING enqueued trial that does *not* fix the rate and is
    popped while a higher-numbered trial is choosing may pick the same candidate.

    **Parameters.** The sampler owns one float parameter: ``param_name``, or else the
    float parameter named ``lr``/``learning_rate``, or else the first ``log=True``
    float parameter asked for (ambiguities raise, asking for ``param_name``). All other
    parameters go to ``independent_sampler`` (default ``RandomSampler(seed=seed)``).
    A COMPLETE trial without the owned parameter raises :class:`ValueError`.
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
        wait_timeout: float = 600.0,
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
        self._asked_by: dict[int, int] = {}  # trial id -> thread that asked it (here)
        self._abandoned: set[int] = set()  # trial ids no longer waited for
        # Whether this instance's latest after_trial saw the search still open: a trial it
        # then asks that finds the search finished only raced another worker's last trial.
        self._saw_open = False

    # ------------------------------------------------------------------ BaseSampler API

    def reseed_rng(self) -> None:
        self._independent_sampler.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        with self._lock:
            self._asked_by[trial._trial_id] = threading.get_ident()
        self._independent_sampler.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._raise_error_if_multi_objective(study)
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
            self._asked_by.pop(trial._trial_id, None)
        self._independent_sampler.after_trial(study, trial, state, values)
        self._raise_error_if_multi_objective(study)
        trials = self._all_trials(study)
        name = self._name(trials)
        if state == TrialState.COMPLETE and (name is None or name not in trial.params):
            raise SigDigitConfigError(
                f"SignificantDigitSampler: trial {trial.number} completed without a float "
                "learning-rate parameter "
                + (f"{name!r}" if name else "")
                + f" (its parameters: {sorted(trial.params) or 'none'}). Suggest one with "
                "trial.suggest_float('lr', low, high, log=True), or pass param_name= "
                "naming your float learning-rate parameter."
            )
        if name is None:
            return
        dist = trial.distributions.get(name) or self._latest_distribution(trials, name)
        if not isinstance(dist, FloatDistribution):
            return
        analysis = self._analyse(
            trials, name, dist, study.direction, override={trial.number: (state, values)}
        )
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

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _all_trials(study: Study) -> list[FrozenTrial]:
        # Straight from the storage (not a pruner-filtered study), like GridSampler.
        return study._storage.get_all_trials(study._study_id, deepcopy=False)

    def _analysis_of(self, study: Study) -> _Analysis | None:
        trials = self._all_trials(study)
        name = self._name(trials)
        if name is None:
            return None
        dist = self._latest_distribution(trials, name)
        if not isinstance(dist, FloatDistribution):
            return None
        return self._analyse(trials, name, dist, study.direction)

    @staticmethod
    def _latest_distribution(trials: list[FrozenTrial], name: str) -> BaseDistribution | None:
        for t in reversed(trials):
            if name in t.distributions:
                return t.distributions[name]
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
        lr_named = [n for n in _LR_NAMES if n in names]
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
            if not isinstance(dist, FloatDistribution):
                raise SigDigitConfigError(
                    f"SignificantDigitSampler(param_name={name!r}): {name!r} is a "
                    f"{type(dist).__name__}, but the sampler searches a float learning rate; "
                    f"use trial.suggest_float({name!r}, low, high, log=True)."
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
            return True
        if name in _LR_NAMES and isinstance(dist, FloatDistribution):
            raise SigDigitConfigError(
                f"SignificantDigitSampler took {resolved!r} (the first log-scale float "
                f"parameter asked for) as the learning rate, and now {name!r} is asked for; "
                "pass param_name= to say which one to search."
            )
        return False

    def _first_round(self, dist: FloatDistribution) -> list[float]:
        if self._decade_exp is not None:
            exp = self._decade_exp
        else:
            exp = (Decimal(repr(float(dist.high))) / 2).adjusted()
        values = [_to_float(Decimal(d).scaleb(exp)) for d in range(9, 0, -1)]
        return [v for v in values if dist._contains(v)]

    def _next_round(
        self, kept: list[float], done_round: int, dist: FloatDistribution
    ) -> list[float]:
        """Candidates after round ``done_round`` (1-based = significant digits of ``kept``)."""
        out: set[float] = set()
        for rate in kept:
            r = Decimal(repr(rate))
            step = Decimal(1).scaleb(r.adjusted() - done_round)  # u/10
            for n in range(4, -11, -1):
                c = r + n * step
                if c <= 0:
                    continue
                c = c.quantize(Decimal(1).scaleb(c.adjusted() - done_round))  # +1 digit
                v = _to_float(c)
                if dist._contains(v):
                    out.add(v)
        return sorted(out, reverse=True)

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
            if rate is None or (t.state in _UNFINISHED and t._trial_id in self._abandoned):
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
        cands = self._first_round(dist)
        if not cands:
            raise SigDigitConfigError(
                f"SignificantDigitSampler: no leading-digit value of the decade "
                f"lies in [{dist.low}, {dist.high}]; set decade= (e.g. decade=1e-3 "
                "tries 0.009 ... 0.001) to one inside the range."
            )
        rounds: list[SigDigitRound] = []
        for number in range(1, self._digits + 1):
            unclaimed = [c for c in cands if c not in holders]
            pending = [c for c in cands if c in holders and c not in done]
            if unclaimed or pending:
                rounds.append(SigDigitRound(number, tuple(cands), False))
                waiting_for = [t for c in pending for t in holders[c] if t.state in _UNFINISHED]
                return _Analysis(rounds, False, unclaimed, waiting_for, best)
            ranked = sorted(cands, key=key, reverse=True)
            kept = [c for c in ranked if c in scores][: self._k]
            rounds.append(SigDigitRound(number, tuple(cands), True, tuple(kept)))
            if not kept or number == self._digits:
                break
            cands = self._next_round(kept, number, dist)
        stamps = [first_done[c] for r in rounds for c in r.candidates if c in first_done]
        return _Analysis(rounds, True, [], [], best, max(stamps) if stamps else None)

    def _choose(
        self, study: Study, trial: FrozenTrial, name: str, dist: FloatDistribution
    ) -> float | None:
        """Steps (a)-(c) of the protocol; None means: use the independent sampler."""
        deadline = time.monotonic() + self._wait_timeout
        waited = False
        me = threading.get_ident()
        while True:
            trials = self._all_trials(study)
            blockers = [
                t
                for t in trials
                if t.number < trial.number
                and t.state == TrialState.RUNNING
                and _rate_of(t, name) is None
                and t._trial_id not in self._abandoned
                and self._asked_by.get(t._trial_id) != me  # same thread: not concurrent
            ]
            if blockers:
                waiting_for = blockers
            else:
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
                    self._warn(trial, "the search is finished and no rate has a score")
                    return None
                if analysis.unclaimed:
                    return analysis.unclaimed[0]
                waiting_for = analysis.waiting_for
                if not any(
                    t.state == TrialState.RUNNING and self._asked_by.get(t._trial_id) != me
                    for t in waiting_for
                ):
                    # Only queued trials or ones this thread asked: waiting cannot help.
                    numbers = [t.number for t in waiting_for]
                    self._warn(
                        trial,
                        f"the open round waits for trials {numbers}, which "
                        "cannot finish meanwhile (asked by this thread, or queued)",
                    )
                    return None
            if time.monotonic() >= deadline:
                numbers = [t.number for t in waiting_for]
                with self._lock:
                    self._abandoned.update(t._trial_id for t in waiting_for)
                self._warn(
                    trial,
                    f"waiting for trials {numbers} timed out after "
                    f"{self._wait_timeout} s (this sampler no longer waits for them)",
                )
                return None
            waited = True
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # The real study, not HyperbandPruner's bracket view (stale-trial callbacks
                # may enqueue a retry).
                optuna.storages.fail_stale_trials(getattr(study, "_study", study))
            time.sleep(self._poll_interval)

    def _warn(self, trial: FrozenTrial, reason: str) -> None:
        warnings.warn(
            f"SignificantDigitSampler: trial {trial.number} gets its learning rate from "
            f"{type(self._independent_sampler).__name__} because {reason}.",
            stacklevel=4,
        )
