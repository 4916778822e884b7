"""Randomization ranges re-centred on identified values, as a file `task.randomization=` reads."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from envs import parameters

if TYPE_CHECKING:
    from sim2real.identify.fit import FitResult


def recentred(
    fit: FitResult, fixed: Mapping[str, float], training: Mapping[str, list[float]], ci: float, floor: float
) -> dict[str, list[float]]:
    """name -> [low, high]: identified values ± max(ci·CI95, floor·value); known values ± floor·value;
    a value the log could not tell apart keeps its training range; latency ±1 step; noise ×[0.5, 1.5]."""
    out: dict[str, list[float]] = {}
    for name in training:  # the task's parameters
        p = parameters.TABLE[name]
        if name in fixed:
            out[name] = _around(p, fixed[name], floor * abs(fixed[name]))
        elif name in fit.values and fit.identified[name]:
            v = fit.values[name]
            out[name] = _around(p, v, max(ci * fit.ci95[name], floor * abs(v)))
        elif name == "latency_steps":
            out[name] = [max(0, fit.latency - 1), fit.latency + 1]
        elif name == "obs_noise_scale":
            out[name] = _around(p, fit.noise_scale, 0.5 * fit.noise_scale)
        else:
            out[name] = [float(x) for x in training[name]]
    return out


def _around(p: parameters.Parameter, value: float, half: float) -> list[float]:
    lo, hi = p.bounds
    return [round(max(lo, value - half), 6), round(min(hi, value + half), 6)]


def write_ranges(path: Path, ranges: Mapping[str, list[float]], source: str) -> None:
    header = f"# ranges re-centred by `sim2real identify` on {source}\n# use: task.randomization={path}\n"
    path.write_text(header + yaml.safe_dump(dict(ranges), default_flow_style=None, sort_keys=False))


def read_ranges(path: str | Path) -> dict[str, list[float]]:
    """A ranges file (`name: [low, high]` per line), its names checked against the parameter table."""
    from sim2real.errors import UserError

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"task.randomization={path}: cannot read it as YAML ({e})") from e
    if not isinstance(doc, dict):
        raise UserError(f"task.randomization={path}: expected a mapping name: [low, high]")
    unknown = sorted(set(doc) - set(parameters.TABLE))
    if unknown:
        raise UserError(
            f"task.randomization={path}: unknown parameters {unknown}; known: {list(parameters.TABLE)}"
        )
    return {k: list(v) for k, v in doc.items()}
