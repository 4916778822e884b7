"""The one interface every expert meets, and the non-learned pendulum oracle.

Collection and DAgger use only `Expert.act`: a trained teacher, a published SB3 zip and a scripted
controller are interchangeable, and data they produced outlives them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Expert(Protocol):
    """Maps a batch of privileged observations (B, Dp) to actions (B, Da) in [-1, 1], float32."""

    name: str

    def act(self, privileged_obs: np.ndarray) -> np.ndarray: ...


class ScriptedPendulumExpert:
    """Energy-pumping swing-up, then a PD balance near upright; reads the true state and parameters.

    Privileged layout (envs.pendulum): cos, sin, angular velocity, mass_scale, friction_scale,
    motor_strength, joint_damping_scale.
    """

    name = "scripted:pendulum"
    max_torque = 2.0  # gear of the nominal motor, N·m
    gravity, length, mass = 9.81, 1.0, 1.0

    def __init__(self, k_energy: float = 2.0, kp: float = 12.0, kd: float = 2.5, balance_cos: float = 0.85):
        self.k_energy, self.kp, self.kd, self.balance_cos = k_energy, kp, kd, balance_cos

    def act(self, privileged_obs: np.ndarray) -> np.ndarray:
        obs = np.atleast_2d(np.asarray(privileged_obs, dtype=np.float64))  # (B, Dp)
        cos, sin, vel = obs[:, 0], obs[:, 1], obs[:, 2]
        m = self.mass * obs[:, 3]
        strength = self.max_torque * obs[:, 5]
        inertia = m * self.length**2 / 3.0
        energy = 0.5 * inertia * vel**2 + m * self.gravity * self.length / 2 * (
            cos - 1.0
        )  # 0 at rest upright
        pump = self.k_energy * -energy * np.sign(vel + 1e-6)
        angle = np.arctan2(sin, cos)
        balance = -(self.kp * angle + self.kd * vel) * m
        torque = np.where(cos > self.balance_cos, balance, pump)
        return np.clip(torque / strength, -1.0, 1.0).astype(np.float32)[:, None]
