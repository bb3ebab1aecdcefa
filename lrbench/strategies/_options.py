"""Typed strategy options: each strategy declares its options once, as a frozen dataclass.

Defaults, type coercion, checks and the unknown-option error all come from `parse_options`, so
a suite's `n = "six"` or `k = 0` fails when the suite is read, naming the strategy, the option
and the value, never halfway through a run.

    @dataclass(frozen=True)
    class GridOptions(SamplerOptions):
        n: int = option(8, minimum=1)

Options that pass their own checks but not together (two fractions of one trial adding up to
more than the trial) are refused by the class's `conflict`.

Types understood: `int`, `float`, `str`, `bool`, each optionally `| None`, and `tuple[float,
...]` (a list of numbers, or a comma-separated string; the checks apply to every element, and
`as_dict` gives a list, as JSON and TOML write it). A `float` option keeps an integer as given
(so a stored schedule reads `step_size_epochs=2`, as written); strings from a command line are
parsed.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lrbench.errors import ConfigError
from lrbench.limits import MAX_COUNT

OptionsT = TypeVar("OptionsT", bound="StrategyOptions")


def option(
    default: Any,
    *,
    choices: Sequence[str] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> Any:
    """A dataclass field with its checks: allowed `choices`, a `minimum`, a `maximum`, or
    `positive` (> 0)."""
    return dataclasses.field(
        default=default,
        metadata={
            "choices": choices,
            "minimum": minimum,
            "maximum": maximum,
            "positive": positive,
        },
    )


@dataclass(frozen=True)
class StrategyOptions:
    """A strategy without options."""

    def as_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def conflict(self) -> str | None:
        """What is wrong with these options together, or None (each passed its own checks)."""
        return None


def option_names(cls: type[StrategyOptions]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def parse_options(owner: str, cls: type[OptionsT], given: Mapping[str, Any]) -> OptionsT:
    """`cls` built from `given`: unknown keys, wrong types and failed checks are ConfigErrors
    naming `owner` (e.g. "strategy 'grid'"), the option and the value."""
    known = option_names(cls)
    unknown = set(given) - set(known)
    if unknown:
        raise ConfigError(
            f"{owner}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(known) or 'none'}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            values[f.name] = _check(owner, f, hints[f.name], given[f.name])
    options = cls(**values)
    problem = options.conflict()
    if problem is not None:
        raise ConfigError(f"{owner}: {problem}")
    return options


def _check(owner: str, f: dataclasses.Field, hint: Any, value: Any) -> Any:
    if typing.get_origin(hint) is tuple:
        return _check_tuple(owner, f, typing.get_args(hint)[0], value)
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{owner}: option {f.name} needs a value, got none")
    value = _coerce(owner, f.name, base, value)
    _check_value(owner, f, value)
    return value


def _check_tuple(owner: str, f: dataclasses.Field, base: type, value: Any) -> tuple:
    """A `tuple[base, ...]` option: a list, a tuple or a comma-separated string, each element
    coerced and checked; at least one."""
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{owner}: option {f.name}={value!r} is not a list of numbers")
    out = tuple(_coerce(owner, f.name, base, v) for v in value)
    for v in out:
        _check_value(owner, f, v)
    return out


def _check_value(owner: str, f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(
            f"{owner}: unknown {f.name} {value!r}; choose one of {', '.join(meta['choices'])}"
        )
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ConfigError(
            f"{owner}: option {f.name}={value!r} must be at least {meta['minimum']:g}"
        )
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ConfigError(
            f"{owner}: option {f.name}={value!r} must be at most {meta['maximum']:g}"
        )
    if meta.get("positive") and not value > 0:
        raise ConfigError(f"{owner}: option {f.name}={value!r} must be positive")
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and meta.get("maximum") is None and value > MAX_COUNT:
        # Far past any sensible count; 2**63-1 grid points failed deep in numpy.
        raise ConfigError(f"{owner}: option {f.name}={value!r} must be at most {MAX_COUNT}")


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _coerce(owner: str, name: str, base: type, value: Any) -> Any:
    try:
        out = _COERCE[base](value)
    except (TypeError, ValueError):
        out = None
    if out is None:
        raise ConfigError(
            f"{owner}: option {name}={value!r} is not {_TYPE_WORDS.get(base, base.__name__)}"
        )
    return out


def _to_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else None
    if isinstance(v, str):
        return int(v.strip())
    return None


def _to_float(v: Any) -> float | int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        out = v
    elif isinstance(v, str):
        out = float(v.strip())
    else:
        return None
    return out if math.isfinite(out) else None


def _to_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    return None


def _to_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


_COERCE = {int: _to_int, float: _to_float, bool: _to_bool, str: _to_str}
