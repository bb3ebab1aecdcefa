"""The strategy registry: every learning-rate strategy by name, with a one-line description.

One module per strategy; importing this package registers them all.
"""

from __future__ import annotations

from typing import Any

from lrbench.errors import ConfigError

# Imported for their side effect: each module registers its strategies.
from lrbench.strategies import (  # noqa: F401
    baselines,
    clr,
    constant_cooldown,
    cosine,
    dadapt,
    dog,
    gp,
    grid,
    one_cycle,
    pbt,
    prodigy,
    qmc,
    random_search,
    range_test,
    schedulefree,
    sigdigit,
    tpe,
    warmup_cosine,
    wsd,
)
from lrbench.strategies._base import (
    GROUPS,
    REGISTRY,
    PlannedTrial,
    RunContext,
    Strategy,
    train_planned,
)

STRATEGIES: dict[str, str] = {name: desc for name, (_, _, desc) in REGISTRY.items()}
# The group of every strategy (`GROUPS`): search, population, heuristic, baseline or
# self-tuning.
STRATEGY_GROUPS: dict[str, str] = {name: cls.group for name, (cls, _, _) in REGISTRY.items()}


def strategies_by_group() -> dict[str, list[str]]:
    """Strategy names per group, groups in `GROUPS` order, names in registration order."""
    return {g: [n for n, group in STRATEGY_GROUPS.items() if group == g] for g in GROUPS}


def get_strategy(name: str, **options: Any) -> Strategy:
    """A strategy instance by registry name (variants like "tpe+hyperband" included)."""
    try:
        cls, preset, _ = REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown strategy {name!r}; choose one of {', '.join(REGISTRY)}"
        ) from None
    return cls(**{**preset, **options})


__all__ = [
    "GROUPS",
    "REGISTRY",
    "STRATEGIES",
    "PlannedTrial",
    "STRATEGY_GROUPS",
    "RunContext",
    "Strategy",
    "get_strategy",
    "strategies_by_group",
    "train_planned",
]
