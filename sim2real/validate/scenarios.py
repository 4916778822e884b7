"""Validation scenarios: the dynamics and stresses of every episode, fixed before any rollout.

Every policy (student, teacher, baselines) runs the very same episodes (seed, dynamics, stress), so
comparisons are paired.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from envs import parameters as dr
from sim2real.validate.config import ValidateConfig


@dataclass(frozen=True)
class Stress:
    dropout_prob: float = 0.0  # a student observation packet is lost and the previous one reused
    push_accel: float = 0.0  # push force / total mass, applied for 0.2 s every ~2 s


@dataclass(frozen=True)
class Episode:
    scenario: str  # e.g. "train", "nominal", "sweep/mass_scale", "stress/latency+1"
    value: float | None  # the swept value for sweeps
    seed: int
    dynamics: dict[str, float] = field(hash=False)
    stress: Stress = Stress()


def build(cfg: ValidateConfig, ranges: dict[str, dr.Range]) -> list[Episode]:
    rng = np.random.default_rng(cfg.seed_base)
    seeds = iter(range(cfg.seed_base, cfg.seed_base + 10_000_000))
    eps = [Episode("train", None, s, dr.resolve(rng, ranges, None)) for s in _take(seeds, cfg.episodes)]
    eps += [Episode("nominal", None, s, _nominal(ranges)) for s in _take(seeds, cfg.episodes)]
    if cfg.sweeps:
        eps += _sweeps(cfg, ranges, seeds)
    if cfg.stress:
        eps += _stress(cfg, ranges, rng, seeds)
    return eps


def _nominal(ranges: dict[str, dr.Range]) -> dict[str, float]:
    """The nominal value of each parameter the task has (those `ranges` names)."""
    return {n: dr.TABLE[n].nominal for n in ranges}


def _take(seeds, n: int) -> list[int]:
    return [next(seeds) for _ in range(n)]


def sweep_grid(
    r: dr.Range, points: int, extend: float, bounds: tuple[float, float] = (-np.inf, np.inf)
) -> list[float]:
    """Grid over the training range widened by `extend` × its width on each side (kept sensible: inside
    the parameter's `bounds`)."""
    width = r.high - r.low
    lo, hi = max(r.low - extend * width, bounds[0]), min(r.high + extend * width, bounds[1])
    if r.integer:
        return [float(v) for v in range(max(0, int(np.floor(lo))), int(np.ceil(hi)) + 1)]
    return [float(v) for v in np.linspace(max(lo, 0.05 if r.low > 0 else 0.0), hi, points)]


def _sweeps(cfg: ValidateConfig, ranges: dict[str, dr.Range], seeds) -> list[Episode]:
    """Each parameter alone over its grid, all others nominal; one seed set shared across the grid."""
    out = []
    for name, r in ranges.items():
        shared = _take(seeds, cfg.sweep_episodes)
        for v in sweep_grid(r, cfg.sweep_points, cfg.sweep_extend, dr.TABLE[name].bounds):
            dyn = {**_nominal(ranges), name: v}
            out += [Episode(f"sweep/{name}", v, s, dyn) for s in shared]
    return out


def _stress(cfg: ValidateConfig, ranges: dict[str, dr.Range], rng, seeds) -> list[Episode]:
    """Training randomization plus one stress each: more latency, more noise, dropouts, pushes."""
    out = []
    variants = {
        "stress/latency+1": lambda d: {**d, "latency_steps": d["latency_steps"] + 1},
        "stress/latency+2": lambda d: {**d, "latency_steps": d["latency_steps"] + 2},
        "stress/noise x2": lambda d: {**d, "obs_noise_scale": 2 * max(d["obs_noise_scale"], 0.5)},
        "stress/dropouts": lambda d: d,
        "stress/pushes": lambda d: d,
    }
    for name, change in variants.items():
        stress = Stress(
            dropout_prob=cfg.dropout_prob if name == "stress/dropouts" else 0.0,
            push_accel=cfg.push_accel if name == "stress/pushes" else 0.0,
        )
        for s in _take(seeds, cfg.stress_episodes):
            out.append(Episode(name, None, s, change(dr.resolve(rng, ranges, None)), stress))
    return out
