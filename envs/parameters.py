"""The domain-randomization parameters: one table, MuJoCo-free (numpy only).

Each `Parameter` says everything about one parameter: its default training range, nominal value,
the bounds outside which it makes no physical sense, unit, what it does, and how it is applied: a
`model` parameter names the MjModel fields it writes and a `write` rule that sets them from their
nominal copies (run by `envs.randomization.apply`); a `sensor` parameter is read by the task's
sensors (latency, noise). Everything else is derived from `TABLE`, at call time: the sampled
parameters, `info["dynamics"]`, the privileged observation's physical tail, the stores'
`dynamics_names`, and the Hydra configs `task.randomization.*` and `deploy.dynamics.*`.
Adding a parameter is one entry here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_LATENCY_STEPS = 20  # sensor delay buffer length of every task

# write(model, nominal fields by name, value): sets the fields from their nominal copies
Write = Callable[[Any, Mapping[str, np.ndarray], float], None]


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


@dataclass(frozen=True)
class Parameter:
    name: str
    low: float  # default training range
    high: float
    nominal: float  # the unrandomized robot
    bounds: tuple[float, float]  # values outside make no physical sense (or break the simulator)
    unit: str
    comment: str
    integer: bool = False
    fields: tuple[str, ...] = ()  # MjModel fields `write` sets; none: a sensor or rule parameter
    write: Write | None = None
    tasks: tuple[str, ...] = ()  # the tasks that have it; (): every task
    rule: bool = False  # read by the task's own rules (motor gains, pushes), not written to the model

    @property
    def physical(self) -> bool:
        """Changes the physics: appended to the privileged observation."""
        return bool(self.fields) or self.rule

    def of(self, task: str | None) -> bool:
        """Whether `task` has this parameter (None: a parameter every task has)."""
        return not self.tasks or (task is not None and task in self.tasks)

    def range(self) -> Range:
        return Range(self.low, self.high, self.integer)


def _scale(*fields: str) -> Write:
    def write(model, nominal, value):
        for f in fields:
            getattr(model, f)[:] = nominal[f] * value

    return write


def _scale_column0(field: str, also: tuple[str, ...] = ()) -> Write:
    """Scale column 0 of `field` (sliding friction, gear) and all of `also`."""

    def write(model, nominal, value):
        arr = getattr(model, field)
        arr[:] = nominal[field]
        arr[:, 0] *= value
        _scale(*also)(model, nominal, value)

    return write


GO2 = ("go2", "go2_rough")


def _add_to_root_mass(model, nominal, value) -> None:
    """Payload on the root body (body 1, the trunk): runs after `mass_scale` has rewritten every mass
    from its nominal copy, so it adds to the scaled mass and never compounds."""
    model.body_mass[1] += value


def _shift_root_com_x(model, nominal, value) -> None:
    model.body_ipos[:] = nominal["body_ipos"]
    model.body_ipos[1, 0] += value


TABLE: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter(
            "mass_scale", 0.8, 1.2, 1.0, (1e-3, 100.0), "×",
            "every link's mass and inertia",
            fields=("body_mass", "body_inertia"), write=_scale("body_mass", "body_inertia"),
        ),
        Parameter(
            "friction_scale", 0.4, 1.25, 1.0, (0.0, 100.0), "×",
            "geom sliding friction and joint dry friction",
            fields=("geom_friction", "dof_frictionloss"),
            write=_scale_column0("geom_friction", also=("dof_frictionloss",)),
        ),
        Parameter(
            "motor_strength", 0.8, 1.2, 1.0, (0.0, 100.0), "×",
            "actuator gear (torque per unit command)",
            fields=("actuator_gear",), write=_scale_column0("actuator_gear"),
        ),
        Parameter(
            "joint_damping_scale", 0.8, 1.2, 1.0, (0.0, 100.0), "×",
            "passive joint damping",
            fields=("dof_damping",), write=_scale("dof_damping"),
        ),
        Parameter(
            "latency_steps", 0, 2, 0, (0, MAX_LATENCY_STEPS), "control steps",
            "sensor delay", integer=True,
        ),
        Parameter(
            "obs_noise_scale", 0.0, 1.0, 0.0, (0.0, 100.0), "×",
            "multiplier on every sensor's nominal noise std",
        ),
        # the Go2's own (legged_gym's usual set): a payload, a shifted centre of mass, motor gains, pushes
        Parameter(
            "payload_kg", -1.0, 2.0, 0.0, (-5.0, 20.0), "kg",
            "mass added to the trunk (after mass_scale)",
            fields=("body_mass",), write=_add_to_root_mass, tasks=GO2,
        ),
        Parameter(
            "com_offset_x", -0.03, 0.03, 0.0, (-0.2, 0.2), "m",
            "trunk centre of mass shifted forward",
            fields=("body_ipos",), write=_shift_root_com_x, tasks=GO2,
        ),
        Parameter(
            "kp_scale", 0.9, 1.1, 1.0, (0.0, 10.0), "×",
            "motor position gain against the commanded kp", tasks=GO2, rule=True,
        ),
        Parameter(
            "kd_scale", 0.9, 1.1, 1.0, (0.0, 10.0), "×",
            "motor damping gain against the commanded kd", tasks=GO2, rule=True,
        ),
        Parameter(
            "push_accel", 0.0, 3.0, 0.0, (0.0, 50.0), "m/s²",
            "horizontal push on the trunk (force / mass) for 0.2 s every 3 s, random direction",
            tasks=GO2, rule=True,
        ),
        Parameter(
            "terrain_level", 0.0, 1.0, 0.0, (0.0, 1.0), "",
            "difficulty of the tile the episode starts on (envs.terrain: 0 gentlest, 1 hardest)",
            tasks=("go2_rough",), rule=True,
        ),
    )
}  # fmt: skip


def table(task: str | None = None) -> dict[str, Parameter]:
    """The entries `task` has, in table order (None: those every task has)."""
    return {n: p for n, p in TABLE.items() if p.of(task)}


def names(task: str | None = None) -> tuple[str, ...]:
    return tuple(table(task))


def physical(task: str | None = None) -> tuple[str, ...]:
    """Parameters that change the physics, in the order they end the privileged observation."""
    return tuple(n for n, p in table(task).items() if p.physical)


def nominal(task: str | None = None) -> dict[str, float]:
    return {n: p.nominal for n, p in table(task).items()}


def default_ranges(task: str | None = None) -> dict[str, Range]:
    return {n: p.range() for n, p in table(task).items()}


def as_lists(ranges: Mapping[str, Range]) -> dict[str, list[float]]:
    """`{name: [low, high]}`, the config form (integers stay integers)."""
    return {n: [int(r.low), int(r.high)] if r.integer else [r.low, r.high] for n, r in ranges.items()}


def _check_name(name: str, what: str) -> Parameter:
    if name not in TABLE:
        raise ValueError(f"unknown {what} {name!r}; known parameters: {', '.join(TABLE)}")
    return TABLE[name]


def check_value(name: str, value: float) -> None:
    """Raise ValueError naming the parameter if `value` makes no physical sense."""
    p = _check_name(name, "dynamics parameter")
    lo, hi = p.bounds
    if not isinstance(value, int | float | np.integer | np.floating) or not math.isfinite(value):
        raise ValueError(f"dynamics parameter {name!r}: {value!r} is not a finite number")
    if not lo <= value <= hi:
        raise ValueError(f"dynamics parameter {name!r}: {value} is outside [{lo}, {hi}]")
    if p.integer and float(value) != int(value):
        raise ValueError(f"dynamics parameter {name!r}: {value} is not a whole number of {p.unit}")


def make_ranges(
    spec: Mapping[str, object] | None,
    defaults: Mapping[str, object] | None = None,
    task: str | None = None,
) -> dict[str, Range]:
    """`task`'s ranges from a config mapping `{name: [low, high]}` (or `Range`; None: the default); unnamed
    ones keep the task's `defaults`, then the table's. A parameter of other tasks only is a ValueError."""
    ranges = default_ranges(task)
    for name, value in [*(defaults or {}).items(), *(spec or {}).items()]:
        if value is None:
            continue
        p = _check_name(name, "randomization range")
        if not p.of(task):
            raise ValueError(
                f"randomization range {name!r}: a parameter of task(s) {', '.join(p.tasks)} only, not of "
                f"{task or 'every task'}; its parameters: {', '.join(ranges)}"
            )
        if isinstance(value, Range):
            rng = value
        else:
            try:
                low, high = (float(v) for v in value)  # type: ignore[union-attr]
            except (TypeError, ValueError):
                raise ValueError(
                    f"randomization range {name!r}: expected [low, high], got {value!r}"
                ) from None
            rng = Range(low, high, integer=p.integer)
        if rng.low > rng.high:
            raise ValueError(f"randomization range {name!r}: low {rng.low} > high {rng.high}")
        check_value(name, rng.low)
        check_value(name, rng.high)
        ranges[name] = rng
    return ranges


def stretch(ranges: Mapping[str, Range], factor: float) -> dict[str, Range]:
    """Each range stretched about its parameter's nominal by `factor` (1.5: each edge half as far again
    from the nominal), within the parameter's bounds; integer ranges widen outward to whole steps. Wider
    training ranges are the plainest way to a policy that degrades gracefully past the declared ones.

    A range that does not hold the nominal (re-centred on a robot's identified values) is stretched about
    its own centre instead: stretching it about the nominal would move it away from that robot."""
    out = {}
    for name, r in ranges.items():
        p = TABLE[name]
        centre = p.nominal if r.low <= p.nominal <= r.high else (r.low + r.high) / 2
        low, high = (centre + factor * (edge - centre) for edge in (r.low, r.high))
        if r.integer:
            low, high = math.floor(low + 1e-9), math.ceil(high - 1e-9)
        low, high = round(max(low, p.bounds[0]), 9), round(min(high, p.bounds[1]), 9)  # no 0.70000001
        out[name] = Range(low, high, r.integer)
    return out


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
        if name not in ranges:
            raise ValueError(f"dynamics parameter {name!r} is not one of this task's: {', '.join(ranges)}")
        dyn[name] = int(value) if TABLE[name].integer else float(value)
    return dyn


def ranges_config(table: Mapping[str, Parameter] | None = None) -> type:
    """Dataclass of `task.randomization`: one `[low, high]` field per parameter; None (the default) keeps
    the task's own range (`envs.TASKS[task].ranges`, else the table's)."""
    table = TABLE if table is None else table
    fields = [
        (n, list[int] | None if p.integer else list[float] | None, dataclasses.field(default=None))
        for n, p in table.items()
    ]
    doc = "Training ranges [low, high] of the randomization parameters; None: the task's default."
    return _module_level(
        dataclasses.make_dataclass("RandomizationConfig", fields, namespace={"__doc__": doc})
    )


def fixed_config(table: Mapping[str, Parameter] | None = None) -> type:
    """Dataclass of `deploy.dynamics`: one optional value per parameter (None: sampled)."""
    table = TABLE if table is None else table
    fields = [
        (n, int | None if p.integer else float | None, dataclasses.field(default=None))
        for n, p in table.items()
    ]

    def fixed(self) -> dict[str, float]:
        return {k: v for k, v in vars(self).items() if v is not None}

    doc = "Dynamics of the sim robot (`deploy.dynamics.mass_scale=1.2`); None: sampled from the ranges."
    return _module_level(
        dataclasses.make_dataclass("FixedDynamics", fields, namespace={"fixed": fixed, "__doc__": doc})
    )


def _module_level(cls: type) -> type:
    """Name the class as the module attribute it is bound to below, so configs pickle."""
    cls.__module__ = __name__
    return cls


RandomizationConfig = ranges_config()
FixedDynamics = fixed_config()
