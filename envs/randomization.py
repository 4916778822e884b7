"""Domain randomization: named parameters, their ranges, sampling, and application to an MjModel.

Everything here is a pure function of its arguments. Randomization is always written from a copy of
the nominal model values taken once at construction, so scales never compound across resets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class Range:
    """Uniform range of one parameter; `integer` ranges are sampled inclusively."""

    low: float
    high: float
    integer: bool = False

    def sample(self, rng: np.random.Generator) -> float:
        if self.integer:
            return int(rng.integers(int(self.low), int(self.high) + 1))
        return float(rng.uniform(self.low, self.high))


# Training ranges, following common robot-learning practice (one line per range).
DEFAULT_RANGES: dict[str, Range] = {
    "mass_scale": Range(0.8, 1.2),  # every link's mass and inertia ×0.8–1.2
    "friction_scale": Range(0.4, 1.25),  # geom sliding friction and joint dry friction ×0.4–1.25
    "motor_strength": Range(0.8, 1.2),  # actuator gear (torque per unit command) ×0.8–1.2
    "joint_damping_scale": Range(0.8, 1.2),  # passive joint damping ×0.8–1.2
    "latency_steps": Range(0, 2, integer=True),  # sensor delay of 0–2 control steps
    "obs_noise_scale": Range(0.0, 1.0),  # multiplier on every sensor's nominal noise std
}
NAMES: tuple[str, ...] = tuple(DEFAULT_RANGES)
# Parameters that change the physics; they are appended to the privileged observation.
PHYSICAL: tuple[str, ...] = ("mass_scale", "friction_scale", "motor_strength", "joint_damping_scale")
NOMINAL: dict[str, float] = {
    "mass_scale": 1.0,
    "friction_scale": 1.0,
    "motor_strength": 1.0,
    "joint_damping_scale": 1.0,
    "latency_steps": 0,
    "obs_noise_scale": 0.0,
}
MAX_LATENCY_STEPS = 20
# Values outside these bounds make no physical sense (or break the simulator) and are refused.
_SENSIBLE: dict[str, tuple[float, float]] = {
    "mass_scale": (1e-3, 100.0),
    "friction_scale": (0.0, 100.0),
    "motor_strength": (0.0, 100.0),
    "joint_damping_scale": (0.0, 100.0),
    "latency_steps": (0, MAX_LATENCY_STEPS),
    "obs_noise_scale": (0.0, 100.0),
}


def make_ranges(spec: Mapping[str, object] | None) -> dict[str, Range]:
    """Ranges from a config mapping `{name: [low, high]}` (or `Range`); unnamed ones keep defaults."""
    ranges = dict(DEFAULT_RANGES)
    for name, value in (spec or {}).items():
        _check_name(name, "randomization range")
        if isinstance(value, Range):
            rng = value
        else:
            try:
                low, high = (float(v) for v in value)  # type: ignore[union-attr]
            except (TypeError, ValueError):
                raise ValueError(
                    f"randomization range {name!r}: expected [low, high], got {value!r}"
                ) from None
            rng = Range(low, high, integer=DEFAULT_RANGES[name].integer)
        if rng.low > rng.high:
            raise ValueError(f"randomization range {name!r}: low {rng.low} > high {rng.high}")
        check_value(name, rng.low)
        check_value(name, rng.high)
        ranges[name] = rng
    return ranges


def _check_name(name: str, what: str) -> None:
    if name not in DEFAULT_RANGES:
        raise ValueError(f"unknown {what} {name!r}; known parameters: {', '.join(NAMES)}")


def check_value(name: str, value: float) -> None:
    """Raise ValueError naming the parameter if `value` makes no physical sense."""
    _check_name(name, "dynamics parameter")
    lo, hi = _SENSIBLE[name]
    if not isinstance(value, int | float | np.integer | np.floating) or not math.isfinite(value):
        raise ValueError(f"dynamics parameter {name!r}: {value!r} is not a finite number")
    if not lo <= value <= hi:
        raise ValueError(f"dynamics parameter {name!r}: {value} is outside [{lo}, {hi}]")
    if name == "latency_steps" and float(value) != int(value):
        raise ValueError(f"dynamics parameter {name!r}: {value} is not a whole number of steps")


def resolve(
    rng: np.random.Generator, ranges: Mapping[str, Range], overrides: Mapping[str, float] | None
) -> dict[str, float]:
    """Sample every parameter, then apply overrides.

    All parameters are always sampled, so an override of one never shifts the random draws of the
    others: the same seed gives the same episode apart from the overridden value.
    """
    dyn = {name: r.sample(rng) for name, r in ranges.items()}
    for name, value in (overrides or {}).items():
        check_value(name, value)
        dyn[name] = int(value) if name == "latency_steps" else float(value)
    return dyn


@dataclass(frozen=True)
class NominalModel:
    """Copies of the MjModel fields that randomization writes, taken before any change."""

    body_mass: np.ndarray
    body_inertia: np.ndarray
    geom_friction: np.ndarray
    dof_frictionloss: np.ndarray
    actuator_gear: np.ndarray
    dof_damping: np.ndarray

    @classmethod
    def of(cls, model: mujoco.MjModel) -> NominalModel:
        return cls(
            body_mass=model.body_mass.copy(),
            body_inertia=model.body_inertia.copy(),
            geom_friction=model.geom_friction.copy(),
            dof_frictionloss=model.dof_frictionloss.copy(),
            actuator_gear=model.actuator_gear.copy(),
            dof_damping=model.dof_damping.copy(),
        )


def apply(model: mujoco.MjModel, nominal: NominalModel, dyn: Mapping[str, float]) -> None:
    """Write the physical parameters of `dyn` into `model`, starting from the nominal values."""
    model.body_mass[:] = nominal.body_mass * dyn["mass_scale"]
    model.body_inertia[:] = nominal.body_inertia * dyn["mass_scale"]
    model.geom_friction[:] = nominal.geom_friction
    model.geom_friction[:, 0] *= dyn["friction_scale"]
    model.dof_frictionloss[:] = nominal.dof_frictionloss * dyn["friction_scale"]
    model.actuator_gear[:] = nominal.actuator_gear
    model.actuator_gear[:, 0] *= dyn["motor_strength"]
    model.dof_damping[:] = nominal.dof_damping * dyn["joint_damping_scale"]
