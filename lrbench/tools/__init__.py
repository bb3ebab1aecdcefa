"""The tools users import into their own work, each usable without the rest of lrbench: the
significant-digit search as an Optuna sampler, the LR range test on any model, named
`torch.optim.lr_scheduler` schedules and optimizers by name.

Names are imported on first use: `lrbench.tools.SignificantDigitSampler` needs Optuna only.
"""

from __future__ import annotations

from lrbench._lazy import lazy_exports

_SAMPLER = "lrbench.tools._sigdigit_sampler"
_RANGE_TEST = "lrbench.tools._range_test"
_SCHEDULES = "lrbench.tools._schedules"
_OPTIMIZERS = "lrbench.tools._optimizers"

_EXPORTS = {
    "SignificantDigitSampler": _SAMPLER,
    "SigDigitRound": _SAMPLER,
    "SigDigitConfigError": _SAMPLER,
    "SigDigitDelegationWarning": _SAMPLER,
    "SigDigitSurplusWarning": _SAMPLER,
    "lr_range_test": _RANGE_TEST,
    "RangeTestResult": _RANGE_TEST,
    "RangeTestArgs": _RANGE_TEST,
    "SUGGESTION_KEYS": _RANGE_TEST,
    "check_range_test_args": _RANGE_TEST,
    "clr_bounds": _RANGE_TEST,
    "suggest_lrs": _RANGE_TEST,
    "ScheduleSpec": _SCHEDULES,
    "BuiltSchedule": _SCHEDULES,
    "SCHEDULES": _SCHEDULES,
    "SCHEDULE_INTERVALS": _SCHEDULES,
    "WSD_DECAYS": _SCHEDULES,
    "COOLDOWNS": _SCHEDULES,
    "WARMUP_FRACTION": _SCHEDULES,
    "build_schedule": _SCHEDULES,
    "replay_schedule": _SCHEDULES,
    "parse_key_values": _SCHEDULES,
    "OPTIMIZERS": _OPTIMIZERS,
    "Lookahead": _OPTIMIZERS,
    "build_optimizer": _OPTIMIZERS,
    "is_sgd_family": _OPTIMIZERS,
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
