"""The Go2 as a Gymnasium env: `Go2Env` (one MjData under `envs.go2.Go2Rules`), its sensor suite (what
`rt/lowstate` gives), and the registered tasks' constructors (flat ground, and `envs.terrain`'s map).
"""

from __future__ import annotations

from typing import Any

import mujoco
import mujoco.batch
import numpy as np
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.spaces import Box

from envs import terrain as rough
from envs.go2 import (
    ACTION_LIMIT,
    BASE_OBS,
    COMMAND_NAMES,
    FRAME_SKIP,
    JOINTS,
    LEGS,
    SCAN_OBS,
    STANDING,
    XML,
    Go2Rules,
    MotorCommand,
    State,
    initial_state,
)  # fmt: skip
from envs.sensors import SensorSuite, legged_suite
from envs.task import RandomizedTask


class _OneSim:
    """One MjData as a `Sim` of n = 1."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData):
        self._model, self._data = model, data
        self.qpos, self.qvel, self.ctrl = data.qpos[None], data.qvel[None], data.ctrl[None]
        self.actuator_force, self.sensordata = data.actuator_force[None], data.sensordata[None]
        self.xmat, self.userdata = data.xmat[None], data.userdata[None]
        self.qfrc_applied, self.geom_xpos = data.qfrc_applied[None], data.geom_xpos[None]

    def advance(self) -> None:
        mujoco.mj_step(self._model, self._data)


class Go2Env(MujocoEnv):
    """The bare task: physics, PD motors, command, reward, termination; observation = `BASE_OBS`."""

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 50}  # noqa: RUF012

    def __init__(self, terrain: rough.Terrain | None = None, **kwargs: Any):
        self.terrain = terrain  # None: flat ground
        self.obs_names = BASE_OBS if terrain is None else BASE_OBS + SCAN_OBS
        obs_space = Box(-np.inf, np.inf, shape=(len(self.obs_names),), dtype=np.float64)
        super().__init__(str(XML), FRAME_SKIP, observation_space=obs_space, **kwargs)
        self.action_space = Box(-ACTION_LIMIT, ACTION_LIMIT, shape=(self.model.nu,), dtype=np.float32)
        self.rules = Go2Rules(self.model, terrain)
        self.init_qpos[self.rules.qadr] = self.rules.standing
        self.init_qpos[2] = standing_height(self.model, self.init_qpos)
        self._sim = _OneSim(self.model, self.data)
        self._state = State.zeros(1)
        self._motors: MotorCommand | None = None  # a raw motor command for the next step
        self._dynamics: dict[str, float] = {}  # the episode's parameters the rules read (gains, pushes)

    @property
    def command(self) -> np.ndarray:
        """(3,) commanded vx (m/s), vy (m/s), yaw rate (rad/s), in the trunk frame; a view into MjData."""
        return self.data.userdata[:3]

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        if self.terrain is None:
            return super()._initialize_simulation()
        model = rough.compile_with(self.fullpath, self.terrain)
        return model, mujoco.MjData(model)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """`options={"dynamics": {...}}`: the episode's rule parameters (`RandomizedTask` passes them)."""
        self._dynamics = dict((options or {}).get("dynamics", {}))
        return super().reset(seed=seed)

    def reset_model(self) -> np.ndarray:
        level = self._dynamics.get("terrain_level", 0.0)
        qpos, qvel, command = initial_state(self.np_random, self.init_qpos, self.init_qvel, self.rules, level)
        self.set_state(qpos, qvel)  # runs mj_forward: the sensors read this state
        self.command[:] = command
        self._state = State.zeros(1)
        self._state.start(0, self._dynamics)
        self._state.dq[0] = qvel[self.rules.dadr]
        return self.rules.observe(self._sim, self._state)[0]

    def hold_motor_command(self, q, dq, kp, kd, tau) -> None:
        """Run the next step on this raw motor command (12,) each, in `JOINTS` order, instead of the
        action: what a robot's motors do with a `LowCmd_` (robot-sim over DDS)."""
        self._motors = MotorCommand(*(np.asarray(v, np.float64)[None] for v in (q, kp, kd, dq, tau)))

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -ACTION_LIMIT, ACTION_LIMIT)[None]  # (1, 12)
        motors, self._motors = self._motors, None
        reward, terminated, terms = self.rules.step(self._sim, self._state, a, motors)
        self.rules.redraw(self._sim, self._state, [self.np_random])
        obs = self.rules.observe(self._sim, self._state)  # with the new command and push
        info = {"reward_terms": {k: float(v[0]) for k, v in terms.items()}}
        if self.terrain is not None:  # the kind of ground under the trunk (stairs, slope, ...)
            info["ground"] = self.terrain.kind_at(self.data.qpos[:2])
        if terminated[0]:  # which of the fall conditions ended it (a user's "why did it fall")
            falls = self.rules.falls_of(self._sim, self._sim.sensordata, self.rules.gravity(self._sim))
            info["falls"] = [name for name, hit in falls.items() if hit[0]]
        return obs[0], float(reward[0]), bool(terminated[0]), False, info


def standing_height(model: mujoco.MjModel, qpos: np.ndarray) -> float:
    """Trunk height at which the lowest foot just touches the floor in pose `qpos`."""
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    data.qpos[2] = 0.0
    mujoco.mj_kinematics(model, data)
    feet = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{leg}_foot") for leg in LEGS]
    lowest = min(float(data.geom_xpos[g][2] - model.geom_size[g][0]) for g in feet)
    return -lowest + 1e-3


ACC_NAMES = ("imu/acc_x", "imu/acc_y", "imu/acc_z")
ACC_NOISE = 0.2  # m/s²


def go2_suite(model: mujoco.MjModel) -> SensorSuite:
    """What `rt/lowstate` gives (joint q relative to the standing pose, dq, IMU quaternion, gyro and
    accelerometer) plus the velocity command; the names equal what `DdsRobot` with `conf/robot/go2.yaml`
    produces. The accelerometer is how the student feels a push (the teacher is told it)."""
    base = legged_suite(model)
    nj = len(JOINTS)
    standing = np.array([STANDING[j] for j in JOINTS])
    r = len(base.noise_std)
    acc = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, "imu_acc")
    acc_adr = slice(int(model.sensor_adr[acc]), int(model.sensor_adr[acc]) + 3)

    def bind(data: mujoco.MjData):
        read_base = base.bind(data)
        buf = np.zeros(r + 6)  # (R+6,) base readings, the accelerometer, the command
        command, sensordata = data.userdata[:3], data.sensordata

        def read() -> np.ndarray:
            buf[:r] = read_base()
            buf[r : r + 3] = sensordata[acc_adr]
            buf[r + 3 :] = command
            return buf

        return read

    def bind_batch(batch: mujoco.batch.Batch):
        read_base = base.bind_batch(batch)
        raw = np.zeros((batch.nsim, r + 6))  # (n, R+6) as `read` fills each row
        sensordata, userdata = batch.bind("sensordata"), batch.bind("userdata")

        def read() -> np.ndarray:
            raw[:, :r] = read_base()
            raw[:, r : r + 3] = sensordata[:, acc_adr]
            raw[:, r + 3 :] = userdata[:, :3]
            return raw

        return read

    def features_into(raw: np.ndarray, out: np.ndarray) -> None:
        out[:nj] = raw[:nj] - standing  # in float64, then stored: as the robot-side builder rounds
        out[nj : len(raw)] = raw[nj:]

    noise = np.concatenate([base.noise_std, np.full(3, ACC_NOISE), np.zeros(3)])  # the command is exact
    names = (*base.names, *ACC_NAMES, *COMMAND_NAMES)
    return SensorSuite(names, noise, bind, features_into, bind_batch)


def make_task(randomization: dict | None = None, **kwargs: Any):
    return RandomizedTask(Go2Env(**kwargs), go2_suite, randomization, "go2")


def make_rough_task(randomization: dict | None = None, **kwargs: Any):
    """The Go2 on `envs.terrain`'s map (seed 0), starting on the difficulty its `terrain_level` picks."""
    return RandomizedTask(Go2Env(rough.generate(0), **kwargs), go2_suite, randomization, "go2_rough")
