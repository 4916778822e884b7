"""What a real robot's sensors measure, read from the simulator.

A `SensorSuite` reads raw measurements (encoder angles, joint velocities, an IMU) from MjData and
turns them into named features. Noise is added to the raw measurement, as a real sensor would
corrupt it, before features are derived; latency is handled by `envs.observations`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import mujoco.batch
import numpy as np

# Nominal noise std per measurement kind; scaled per episode by `obs_noise_scale`.
NOISE_STD = {"encoder": 0.01, "joint_vel": 0.1, "imu_quat": 0.01, "imu_gyro": 0.05}

Reader = Callable[[], np.ndarray]
BatchReader = Callable[[], np.ndarray]  # () -> raw measurements (n, R) of every simulation of a batch


@dataclass(frozen=True)
class SensorSuite:
    """Raw readings -> named features.

    `bind(data)` returns a reader: a no-argument function giving the raw measurements (R,) of `data`
    now, as a buffer (or a view into MjData) that is only valid until the next call; binding once
    keeps MjData attribute lookups out of the control loop. `features_into(raw, out)` writes the
    features that `names` name (F,) into `out[:F]`. `noise_std` is the nominal std of each raw
    measurement (R,). `bind_batch(batch)`, where a suite has it, reads the same measurements of every
    simulation of a `mujoco.batch.Batch` at once, bit for bit as `bind` reads one MjData.
    """

    names: tuple[str, ...]
    noise_std: np.ndarray
    bind: Callable[[mujoco.MjData], Reader]
    features_into: Callable[[np.ndarray, np.ndarray], None]
    bind_batch: Callable[[mujoco.batch.Batch], BatchReader] | None = None

    def read(self, data: mujoco.MjData) -> np.ndarray:
        """Raw measurements (R,) of `data`, a fresh array."""
        return self.bind(data)().copy()

    def features(self, raw: np.ndarray) -> np.ndarray:
        """Feature vector (F,) of raw measurements (R,)."""
        out = np.empty(len(self.names))
        self.features_into(raw, out)
        return out

    def readings(self, data: mujoco.MjData) -> dict[str, float]:
        """Noise-free features by name: what `envs.observations.student_vector` takes from a robot."""
        return dict(zip(self.names, self.features(self.read(data)).tolist(), strict=True))


def _copy_into(raw: np.ndarray, out: np.ndarray) -> None:
    out[: len(raw)] = raw


def pendulum_suite(model: mujoco.MjModel) -> SensorSuite:
    """A hinge encoder only: the student sees (cos, sin) of the measured angle, no velocity."""

    def bind(data: mujoco.MjData) -> Reader:
        angle = data.qpos[:1]  # (1,) view into MjData: reading it costs nothing

        return lambda: angle

    def features_into(raw: np.ndarray, out: np.ndarray) -> None:
        theta = float(raw[0])
        out[0] = math.cos(theta)
        out[1] = math.sin(theta)

    noise = np.array([NOISE_STD["encoder"]])
    return SensorSuite(("pole/cos", "pole/sin"), noise, bind, features_into)


def actuated_joints(model: mujoco.MjModel) -> list[int]:
    """Joint ids driven by actuators: the joints a robot has encoders on."""
    return [int(j) for j in model.actuator_trnid[:, 0]]


def _selector(idx: list[int]) -> slice | np.ndarray:
    """A slice where the indices are a contiguous increasing run (a cheaper gather), else an index array."""
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return slice(idx[0], idx[0] + len(idx))
    return np.array(idx)


def legged_suite(model: mujoco.MjModel, imu_body: int = 1) -> SensorSuite:
    """Encoders on actuated joints plus a torso IMU (orientation quaternion, body-frame gyro).

    No root position or linear velocity, no contact forces: nothing a robot cannot measure itself.
    """
    joints = actuated_joints(model)
    qpos_sel = _selector([int(model.jnt_qposadr[j]) for j in joints])
    qvel_sel = _selector([int(model.jnt_dofadr[j]) for j in joints])
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
    body = mujoco.mjtObj.mjOBJ_BODY
    object_velocity = mujoco.mj_objectVelocity

    def bind(data: mujoco.MjData) -> Reader:
        # (R+3,): the gyro block and 3 scratch entries take mj_objectVelocity's (angular, linear)
        # 6-vector in place; the reader returns the first R entries
        buf = np.zeros(2 * nj + 10)
        raw, pos, vel, quat, vel6 = buf[:-3], buf[:nj], buf[nj : 2 * nj], buf[2 * nj : 2 * nj + 4], buf[-6:]
        qpos, qvel, xquat = data.qpos, data.qvel, data.xquat[imu_body]  # views into MjData

        def read() -> np.ndarray:
            object_velocity(model, data, body, imu_body, vel6, 1)  # body frame: the IMU's frame
            pos[:] = qpos[qpos_sel]
            vel[:] = qvel[qvel_sel]
            quat[:] = xquat
            return raw

        return read

    def bind_batch(batch: mujoco.batch.Batch) -> BatchReader:
        # (n, R) rows as `read` fills them; the gyro is mj_objectVelocity's local angular part, the
        # inertial frame's rotation transposed times cvel's angular velocity, summed in its order
        raw = np.zeros((batch.nsim, 2 * nj + 7))
        pos, vel, quat, gyro = raw[:, :nj], raw[:, nj : 2 * nj], raw[:, 2 * nj : 2 * nj + 4], raw[:, -3:]
        qpos, qvel, xquat = batch.bind("qpos"), batch.bind("qvel"), batch.bind("xquat")
        ximat, cvel = batch.bind("ximat"), batch.bind("cvel")

        def read() -> np.ndarray:
            r, w = ximat[:, imu_body], cvel[:, imu_body]  # (n, 9), (n, 6)
            for k in range(3):
                gyro[:, k] = r[:, k] * w[:, 0] + r[:, 3 + k] * w[:, 1] + r[:, 6 + k] * w[:, 2]
            pos[:] = qpos[:, qpos_sel]
            vel[:] = qvel[:, qvel_sel]
            quat[:] = xquat[:, imu_body]
            return raw

        return read

    return SensorSuite(tuple(names), noise, bind, _copy_into, bind_batch)
