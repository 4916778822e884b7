"""Range checks for config dataclasses, run from their `__post_init__` (standard library only).

Hydra builds the typed configs with `OmegaConf.to_object`, which calls each dataclass's constructor,
so a bad value fails where it is declared with one line naming the key and the rule, instead of a
ZeroDivisionError or a reshape error deep inside a stage (or, worse, being accepted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sim2real.errors import UserError


class ConfigError(UserError, ValueError):
    """A config value breaks its rule; the message names the key (`student.n_head=0 must be >= 1`)."""


def _number(prefix: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{prefix}.{name}={value!r} must be a number")
    return value


def at_least(prefix: str, obj: Any, low: float, names: Iterable[str], optional: bool = False) -> None:
    """Each `obj.<name>` >= low (None allowed when `optional`)."""
    for name in names:
        value = getattr(obj, name)
        if optional and value is None:
            continue
        if _number(prefix, name, value) < low:
            raise ConfigError(f"{prefix}.{name}={value!r} must be >= {low:g}")


def positive(prefix: str, obj: Any, names: Iterable[str], optional: bool = False) -> None:
    """Each `obj.<name>` > 0 and finite (None allowed when `optional`)."""
    for name in names:
        value = getattr(obj, name)
        if optional and value is None:
            continue
        if not 0 < _number(prefix, name, value) < math.inf:
            raise ConfigError(f"{prefix}.{name}={value!r} must be > 0")


def in_range(
    prefix: str, obj: Any, name: str, low: float, high: float, high_open: bool = False, low_open: bool = False
) -> None:
    """`obj.<name>` in [low, high] (an end excluded with `high_open`/`low_open`); None passes (unset)."""
    value = getattr(obj, name)
    if value is None:
        return
    v = _number(prefix, name, value)
    above = low < v if low_open else low <= v
    below = v < high if high_open else v <= high
    if not (above and below):
        raise ConfigError(
            f"{prefix}.{name}={value!r} must be in {'(' if low_open else '['}{low:g}, {high:g}"
            f"{')' if high_open else ']'}"
        )


def one_of(prefix: str, obj: Any, name: str, choices: Iterable[Any]) -> None:
    value, choices = getattr(obj, name), tuple(choices)
    if value not in choices:
        raise ConfigError(f"{prefix}.{name}={value!r} must be one of {', '.join(map(str, choices))}")
