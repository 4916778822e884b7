"""The `Robot` protocol: what the controller needs from a robot, and nothing of a simulator.

A robot reports its sensor readings by name; the controller builds the student observation from
them in the order of the policy's `obs_names` (`envs.observations.student_vector`), adding the
`prev_action/*` entries itself. Noise and latency are never added here: on a real robot they are
physical, and in simulation the task's sensors imitate them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Robot(Protocol):
    """connect → (read, send)* → close.

    `reading_names` / `action_names` are known after `connect()`; `read()` returns the newest
    readings that arrived since the previous call, or None when nothing new arrived (the
    controller's watchdog decides when that becomes a fault); `send(action (Da,))` commands the
    actuators in `action_names` order.
    """

    reading_names: tuple[str, ...]
    action_names: tuple[str, ...]

    def connect(self) -> None: ...

    def read(self) -> Mapping[str, float] | None: ...

    def send(self, action: np.ndarray) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class EpisodicRobot(Robot, Protocol):
    """A robot that can start a new episode (a simulator; a real robot need not implement it).

    `extras()` returns what only a simulator knows, for the deployment log: `reward` (float),
    `privileged` ((Dp,) array) and `dynamics` ({name: value} of the episode), any of them optional.
    """

    def reset(self, seed: int | None = None) -> None: ...

    def extras(self) -> Mapping[str, object]: ...
