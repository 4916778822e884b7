"""What a real robot's sensors measure, read from the simulator.

A `SensorSuite` reads raw measurements (encoder angles, joint velocities, an IMU) from MjData and
turns them into named features. Noise is added to the raw measurement, as a real sensor would
corrupt it, before features are derived; latency is handled by `envs.observations`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

# Nominal noise std per measurement kind; scaled per episode by `obs_noise_scale`.
NOISE_STD = {"encoder": 0.01, "joint_vel": 0.1, "imu_quat": 0.01, "imu_gyro": 0.05}


@dataclass(frozen=True)
class SensorSuite:
    """Raw readings -> named features.

    `read(data)` returns the raw measurements (R,); `features(raw)` maps them to the feature vector
    whose entries `names` name (F,). `noise_std` is the nominal std of each raw measurement (R,).
    """

    names: tuple[str, ...]
    noise_std: np.ndarray
    read: Callable[[mujoco.MjData], np.ndarray]
    features: Callable[[np.ndarray], np.ndarray]


def _identity(raw: np.ndarray) -> np.ndarray:
    return raw


def pendulum_suite(model: mujoco.MjModel) -> SensorSuite:
    """A hinge encoder only: the student sees (cos, sin) of the measured angle, no velocity."""

    def read(data: mujoco.MjData) -> np.ndarray:
        return data.qpos[:1].copy()

    def features(raw: np.ndarray) -> np.ndarray:
        return np.array([np.cos(raw[0]), np.sin(raw[0])])

    return SensorSuite(("pole/cos", "pole/sin"), np.array([NOISE_STD["encoder"]]), read, features)


def actuated_joints(model: mujoco.MjModel) -> list[int]:
    """Joint ids driven by actuators: the joints a robot has encoders on."""
    return [int(j) for j in model.actuator_trnid[:, 0]]


def legged_suite(model: mujoco.MjModel, imu_body: int = 1) -> SensorSuite:
    """Encoders on actuated joints plus a torso IMU (orientation quaternion, body-frame gyro).

    No root position or linear velocity, no contact forces: nothing a robot cannot measure itself.
    """
    joints = actuated_joints(model)
    qpos_idx = np.array([model.jnt_qposadr[j] for j in joints])
    qvel_idx = np.array([model.jnt_dofadr[j] for j in joints])
    jnames = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in joints]
    names = (
        [f"joint_pos/{n}" for n in jnames]
        + [f"joint_vel/{n}" for n in jnames]
        + [f"imu/quat_{c}" for c in "wxyz"]
        + [f"imu/gyro_{c}" for c in "xyz"]
    )
    nj = len(joints)
    noise = np.concatenate(
        [
            np.full(nj, NOISE_STD["encoder"]),
            np.full(nj, NOISE_STD["joint_vel"]),
            np.full(4, NOISE_STD["imu_quat"]),
            np.full(3, NOISE_STD["imu_gyro"]),
        ]
    )
    vel6 = np.zeros(6)
    out = np.zeros(2 * nj + 7)

    def read(data: mujoco.MjData) -> np.ndarray:
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, imu_body, vel6, 1)
        out[:nj] = data.qpos[qpos_idx]
        out[nj : 2 * nj] = data.qvel[qvel_idx]
        out[2 * nj : 2 * nj + 4] = data.xquat[imu_body]
        out[2 * nj + 4 :] = vel6[:3]
        return out.copy()

    return SensorSuite(tuple(names), noise, read, _identity)
