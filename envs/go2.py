"""Go2: a Go2-class quadruped tracking a commanded base velocity (vx, vy, yaw rate).

The model (`envs/assets/go2.xml`) is this project's own MJCF from Unitree's published figures. Control
is as on the robot: the policy (50 Hz) gives joint position offsets from the standing pose (action
scale 0.25 rad, as `conf/robot/go2.yaml`), and the motors' PD law (kp 20, kd 0.5) turns them into
torques at every 200 Hz physics step, clipped at the published torque limits. The rewards are the
velocity-tracking terms of legged-locomotion work (legged_gym): tracking kernels, vertical velocity,
roll/pitch rate, orientation, torques, joint accelerations, action rate, feet air time, collisions.
The command is resampled during the episode and kept in `MjData.userdata`, so the student reads it as
a named reading (`command/vx`, ...) like every other input.

The rules are written once, on (n, ...) arrays (`Go2Rules`): the single env (`envs.go2_env.Go2Env`) is a
batch of one, and `envs.batched_go2` steps n simulations with `mujoco.batch` under the same rules. On
rough ground (`envs.terrain`) the rules measure heights from the map, and the teacher gets a height scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import mujoco
import numpy as np

from envs import terrain as rough
from envs.spec import along_command, walked_share

XML = Path(__file__).parent / "assets" / "go2.xml"
LEGS = ("FR", "FL", "RR", "RL")  # the vendor's motor order: leg x (hip, thigh, calf)
JOINTS = tuple(f"{leg}_{part}_joint" for leg in LEGS for part in ("hip", "thigh", "calf"))
# standing pose (rad), legged_gym's Go2 default joint angles; conf/robot/go2.yaml holds the same numbers
STANDING = {
    "FR_hip_joint": -0.1, "FR_thigh_joint": 0.8, "FR_calf_joint": -1.5,
    "FL_hip_joint": 0.1, "FL_thigh_joint": 0.8, "FL_calf_joint": -1.5,
    "RR_hip_joint": -0.1, "RR_thigh_joint": 1.0, "RR_calf_joint": -1.5,
    "RL_hip_joint": 0.1, "RL_thigh_joint": 1.0, "RL_calf_joint": -1.5,
}  # fmt: skip
KP, KD, ACTION_SCALE = 20.0, 0.5, 0.25
ACTION_LIMIT = 4.0  # |offset| ≤ 1 rad from the standing pose
FRAME_SKIP = 4  # 200 Hz physics, 50 Hz policy
COMMAND_NAMES = ("command/vx", "command/vy", "command/yaw_rate")
COMMAND_LOW = np.array([-1.0, -0.5, -1.0])  # m/s, m/s, rad/s
COMMAND_HIGH = np.array([1.0, 0.5, 1.0])
COMMAND_PERIOD = 500  # control steps (10 s) between command draws
PUSH_PERIOD, PUSH_STEPS = 150, 10  # a push every 3 s, lasting 0.2 s (strength: the episode's push_accel)
STANDING_COMMAND_PROB = 0.1  # share of draws that command standing still
RESET_JOINT_NOISE = 0.1  # rad, uniform, around the standing pose
RESET_VEL_NOISE = 0.2  # m/s, uniform, trunk vx and vy

# reward weights, each multiplied by the control period (as legged_gym does)
REWARD = {
    "tracking_lin_vel": 1.0,
    "tracking_ang_vel": 0.5,
    "lin_vel_z": -2.0,
    "ang_vel_xy": -0.05,
    "orientation": -1.0,
    "torques": -2e-4,
    "dof_acc": -2.5e-7,
    "action_rate": -0.01,
    "feet_air_time": 1.0,
    "collision": -1.0,
}
# the step's total is clipped at 0 (legged_gym's only_positive_rewards): with negative steps the shortest
# episode would be the best one, and early in training the penalties outweigh the tracking terms
TRACKING_SIGMA = 0.25
AIR_TIME_TARGET = 0.5  # s: a foot that lands after longer earns the difference
CONTACT_FORCE = 1.0  # N: a touch sensor above this is a contact
MIN_TRUNK_HEIGHT = 0.12  # m; lower, or tilted past 60°, or trunk or hip touching the ground: a fall
MAX_TILT_GRAVITY_Z = -0.5  # gravity's trunk-frame z above this: tilted past 60°

# privileged base observation layout (the robot sees none of it directly)
BASE_OBS = (
    [f"base_lin_vel/{c}" for c in "xyz"]
    + [f"base_ang_vel/{c}" for c in "xyz"]
    + [f"gravity/{c}" for c in "xyz"]
    + [f"command/{c}" for c in ("vx", "vy", "yaw_rate")]
    + [f"joint_pos/{j}" for j in JOINTS]
    + [f"joint_vel/{j}" for j in JOINTS]
    + [f"last_action/{j}" for j in JOINTS]
    + [f"foot_force/{leg}" for leg in LEGS]
    + ["base_height"]
    + [f"push/{c}" for c in "xy"]  # the push in force (m/s² of the nominal mass), trunk frame
)
# rough terrain only: the trunk's height above the ground at five points around each foot (centre, ±10 cm
# in x and y), what legged_gym's teachers get from their height scan
SCAN = np.array([[0.0, 0.0], [0.1, 0.0], [-0.1, 0.0], [0.0, 0.1], [0.0, -0.1]])  # (5, 2) world-frame xy
SCAN_OBS = [f"ground/{leg}/{k}" for leg in LEGS for k in range(len(SCAN))]
LIN_VEL, ANG_VEL, GRAVITY, COMMAND = 0, 3, 6, 9  # first columns of those blocks (envs.TASKS["go2"] metrics)


class Sim(Protocol):
    """n simulations' live (n, ...) views of MjData fields, and one physics step of all of them."""

    qpos: np.ndarray
    qvel: np.ndarray
    ctrl: np.ndarray
    actuator_force: np.ndarray
    sensordata: np.ndarray
    xmat: np.ndarray  # (n, nbody, 9)
    userdata: np.ndarray
    qfrc_applied: np.ndarray
    geom_xpos: np.ndarray  # (n, ngeom, 3)

    def advance(self) -> None: ...


@dataclass
class MotorCommand:
    """What a Go2 motor takes each tick: targets, gains and feed-forward torque; (n, 12) or broadcast."""

    q: np.ndarray | float
    kp: np.ndarray | float
    kd: np.ndarray | float
    dq: np.ndarray | float = 0.0
    tau: np.ndarray | float = 0.0


@dataclass
class State:
    """What the rules remember between control steps, per simulation."""

    action: np.ndarray  # (n, 12) last action
    dq: np.ndarray  # (n, 12) joint velocities at the last control step
    air_time: np.ndarray  # (n, 4) seconds each foot has been off the ground
    steps: np.ndarray  # (n,) control steps into the episode
    gains: np.ndarray  # (n, 2) the motors' kp and kd against the commanded ones (episode parameters)
    push_accel: np.ndarray  # (n,) the episode's push strength, m/s²
    push: np.ndarray  # (n, 2) the push in force, world frame, m/s² of the nominal mass
    push_left: np.ndarray  # (n,) control steps it still lasts
    commanded: np.ndarray  # (n,) metres the episode's commands asked for (while moving)
    walked: np.ndarray  # (n,) metres walked along the commanded direction, body frame

    @classmethod
    def zeros(cls, n: int) -> State:
        return cls(
            np.zeros((n, 12)), np.zeros((n, 12)), np.zeros((n, 4)), np.zeros(n, dtype=np.int64),
            np.ones((n, 2)), np.zeros(n), np.zeros((n, 2)), np.zeros(n, dtype=np.int64), np.zeros(n),
            np.zeros(n),
        )  # fmt: skip

    def start(self, row: int, dynamics: dict[str, float]) -> None:
        """Row `row` begins an episode under `dynamics` (the rules' parameters; absent ones nominal)."""
        self.action[row], self.air_time[row], self.steps[row] = 0.0, 0.0, 0
        self.gains[row] = dynamics.get("kp_scale", 1.0), dynamics.get("kd_scale", 1.0)
        self.push_accel[row] = dynamics.get("push_accel", 0.0)
        self.push[row], self.push_left[row] = 0.0, 0
        self.commanded[row], self.walked[row] = 0.0, 0.0

    def progress(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) the share of its commanded distance each episode walked so far, as the task metric
        `walked` counts it (`envs.spec.walked_share`: NaN under a metre commanded)."""
        return walked_share(self.commanded[rows], self.walked[rows])


class Go2Rules:
    """Control, measurement, reward, termination and observation of n simulations of the Go2 model."""

    def __init__(self, model: mujoco.MjModel, terrain: rough.Terrain | None = None):
        self.terrain = terrain
        # control steps between command draws; a teacher may train on more changes than the task has
        # (`teacher.command_period`: its falls come just after one), evaluation keeps `COMMAND_PERIOD`
        self.command_period = COMMAND_PERIOD
        self.foot_geoms = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{leg}_foot") for leg in LEGS]
        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in JOINTS]
        self.qadr = np.array([model.jnt_qposadr[j] for j in ids])  # (12,)
        self.dadr = np.array([model.jnt_dofadr[j] for j in ids])  # (12,)
        self.standing = np.array([STANDING[j] for j in JOINTS])  # (12,)
        self.trunk = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "trunk")
        free = int(model.jnt_dofadr[model.body_jntadr[self.trunk]])
        self.push_dofs = slice(free, free + 2)  # the free joint's world-frame x, y force
        self.mass = float(model.body_mass.sum())  # nominal: a push's force is accel x this
        self.dt = float(model.opt.timestep) * FRAME_SKIP

        def sensor(name: str, dim: int) -> slice:
            i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, name)
            if i < 0:
                raise ValueError(f"{XML}: no sensor {name!r}")
            return slice(int(model.sensor_adr[i]), int(model.sensor_adr[i]) + dim)

        self.lin_vel, self.ang_vel = sensor("trunk_lin_vel", 3), sensor("trunk_ang_vel", 3)
        self.feet = slice(sensor("FR_foot_touch", 1).start, sensor("RL_foot_touch", 1).stop)  # (4,)
        self.falls = [sensor(f"{leg}_hip_touch", 1).start for leg in LEGS] + [sensor("trunk_touch", 1).start]
        self.limbs = [sensor(f"{leg}_{p}_touch", 1).start for p in ("thigh", "calf") for leg in LEGS]

    def act(self, sim: Sim, command: MotorCommand, gains: np.ndarray) -> np.ndarray:
        """Run the motors' law `tau + kp (q - q_j) + kd (dq - dq_j)` on `command` for one control step, with
        the motors' own gains (n, 2) against the commanded; returns the mean squared joint torque sum (n,)."""
        c = command
        kp, kd = np.multiply(c.kp, gains[:, :1]), np.multiply(c.kd, gains[:, 1:])  # (n, 12) or (n, 1)
        torque_sq = np.zeros(len(sim.qpos))
        for _ in range(FRAME_SKIP):
            q, dq = sim.qpos[:, self.qadr], sim.qvel[:, self.dadr]
            sim.ctrl[:] = c.tau + kp * (c.q - q) + kd * (c.dq - dq)
            sim.advance()  # the actuators' ctrlrange clips at the torque limits; gear = motor strength
            torque_sq += np.square(sim.actuator_force).sum(1)
        return torque_sq / FRAME_SKIP

    def command_of(self, action: np.ndarray) -> MotorCommand:
        """The motor command a policy's action (n, 12) stands for: position targets, PD gains."""
        return MotorCommand(q=self.standing + ACTION_SCALE * action, kp=KP, kd=KD)

    def action_of(self, command: MotorCommand) -> np.ndarray:
        """The action (n, 12) whose targets a motor command holds (for the action-rate term)."""
        return (np.asarray(command.q) - self.standing) / ACTION_SCALE

    def gravity(self, sim: Sim) -> np.ndarray:
        """(n, 3) unit gravity direction in the trunk frame: minus the trunk rotation's third row."""
        return -sim.xmat[:, self.trunk, 6:9]

    def step(
        self, sim: Sim, state: State, action: np.ndarray, motors: MotorCommand | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """One control step of `action` (n, 12), already clipped, or of a raw motor command -> reward (n,),
        terminated (n,), reward terms {name: (n,)}. Updates `state`; the caller then `redraw`s and
        `observe`s."""
        if motors is None:
            motors = self.command_of(action)
        else:
            action = self.action_of(motors)
        pushing = (state.push_left > 0)[:, None]  # (n, 1)
        sim.qfrc_applied[:, self.push_dofs] = np.where(pushing, state.push * self.mass, 0.0)
        torque_sq = self.act(sim, motors, state.gains)
        np.maximum(state.push_left - 1, 0, out=state.push_left)
        touch = sim.sensordata
        feet = touch[:, self.feet] > CONTACT_FORCE  # (n, 4)
        limb_hits = (touch[:, self.limbs] > CONTACT_FORCE).sum(1)  # (n,)
        lin, ang, gravity = touch[:, self.lin_vel], touch[:, self.ang_vel], self.gravity(sim)
        command, dq = sim.userdata[:, :3], sim.qvel[:, self.dadr]
        first_contact = feet & (state.air_time > 0.0)
        speed, along = along_command(command[:, :2], lin[:, :2])  # (n,) m/s, zero when not moving
        moving = speed > 0.0
        state.commanded += speed * self.dt
        state.walked += along * self.dt
        terms = {
            "tracking_lin_vel": np.exp(-np.square(command[:, :2] - lin[:, :2]).sum(1) / TRACKING_SIGMA),
            "tracking_ang_vel": np.exp(-np.square(command[:, 2] - ang[:, 2]) / TRACKING_SIGMA),
            "lin_vel_z": np.square(lin[:, 2]),
            "ang_vel_xy": np.square(ang[:, :2]).sum(1),
            "orientation": np.square(gravity[:, :2]).sum(1),
            "torques": torque_sq,
            "dof_acc": np.square((dq - state.dq) / self.dt).sum(1),
            "action_rate": np.square(action - state.action).sum(1),
            "feet_air_time": ((state.air_time - AIR_TIME_TARGET) * first_contact).sum(1) * moving,
            "collision": limb_hits.astype(np.float64),
        }
        reward = np.maximum(self.dt * sum(REWARD[k] * v for k, v in terms.items()), 0.0)
        state.air_time = np.where(feet, 0.0, state.air_time + self.dt)
        state.action[:] = action
        state.dq[:] = dq
        state.steps += 1
        terminated = np.logical_or.reduce(list(self.falls_of(sim, touch, gravity).values()))
        return reward, terminated, terms

    def falls_of(self, sim: Sim, touch: np.ndarray, gravity: np.ndarray) -> dict[str, np.ndarray]:
        """Each way an episode ends in a fall -> (n,) whether it holds now: trunk or hip on the ground,
        tilted past 60°, trunk too low above the ground below it (the names `Go2Env` reports)."""
        hips = touch[:, self.falls[:4]] > CONTACT_FORCE  # (n, 4)
        height = sim.qpos[:, 2] - self.ground(sim.qpos[:, :2])  # (n,)
        return {
            "trunk_contact": touch[:, self.falls[4]] > CONTACT_FORCE,
            **{f"{leg}_hip_contact": hips[:, k] for k, leg in enumerate(LEGS)},
            "tilt": gravity[:, 2] > MAX_TILT_GRAVITY_Z,
            "low": height < MIN_TRUNK_HEIGHT,
        }

    def observe(self, sim: Sim, state: State, rows: Any = slice(None)) -> np.ndarray:
        """Privileged base observations (n, len(BASE_OBS)) of simulations `rows`."""
        s = sim.sensordata[rows]
        weight = 15.0 * 9.81  # nominal weight (N): foot forces as a share of it
        scan = []
        if self.terrain is not None:
            points = sim.geom_xpos[rows][:, self.foot_geoms, None, :2] + SCAN  # (n, 4, 5, 2)
            scan = [(sim.qpos[rows, 2:3] - self.ground(points).reshape(len(s), -1))]  # (n, 20)
        return np.concatenate(
            [
                s[:, self.lin_vel],
                s[:, self.ang_vel],
                -sim.xmat[rows, self.trunk, 6:9],
                sim.userdata[rows, :3],
                sim.qpos[rows][:, self.qadr] - self.standing,
                sim.qvel[rows][:, self.dadr],
                state.action[rows],
                s[:, self.feet] / weight,
                sim.qpos[rows, 2:3] - self.ground(sim.qpos[rows, None, :2]),  # above the ground under it
                self.push_in_trunk(sim, state, rows),
                *scan,
            ],
            axis=1,
        )

    def ground(self, xy: np.ndarray) -> np.ndarray:
        """Ground height (...,) under world points xy (..., 2): 0 on flat ground."""
        return np.zeros(xy.shape[:-1]) if self.terrain is None else self.terrain.height(xy)

    def push_in_trunk(self, sim: Sim, state: State, rows: Any = slice(None)) -> np.ndarray:
        """(n, 2) the push acting in the next step (m/s²), in the trunk frame's x and y."""
        push = np.where((state.push_left[rows] > 0)[:, None], state.push[rows], 0.0)  # (n, 2) world
        rot = sim.xmat[rows, self.trunk].reshape(-1, 3, 3)  # (n, 3, 3) trunk to world
        return np.einsum("nij,ni->nj", rot[:, :2, :2], push)  # R^T p, the planar part

    def redraw(self, sim: Sim, state: State, rngs: Sequence[np.random.Generator]) -> None:
        """Between control steps: each row's new command every `command_period` steps and a push every
        `PUSH_PERIOD`, drawn from its own episode stream `rngs[row]` in this order."""
        steps, period = state.steps, self.command_period
        for row in np.flatnonzero((steps % period == 0) | (steps % PUSH_PERIOD == 0)):
            rng = rngs[row]
            if steps[row] % period == 0:
                sim.userdata[row, :3] = draw_command(rng)
            if steps[row] % PUSH_PERIOD == 0:
                angle = rng.uniform(0.0, 2.0 * np.pi)  # drawn even when push_accel is 0: the stream stays
                state.push[row] = state.push_accel[row] * np.array([np.cos(angle), np.sin(angle)])
                state.push_left[row] = PUSH_STEPS


def draw_command(rng: np.random.Generator) -> np.ndarray:
    """(3,) a command: uniform in its ranges, or standing still with `STANDING_COMMAND_PROB`."""
    command = rng.uniform(COMMAND_LOW, COMMAND_HIGH)
    return np.zeros(3) if rng.random() < STANDING_COMMAND_PROB else command


def initial_state(
    rng: np.random.Generator, qpos0: np.ndarray, qvel0: np.ndarray, rules: Go2Rules, level: float = 0.0
):
    """(qpos, qvel, command) of a new episode: the standing pose with noise, drawn in a fixed order; on
    rough terrain, then a start on a tile of difficulty `level`, the feet just above its highest point."""
    qpos, qvel = qpos0.copy(), qvel0.copy()
    qpos[rules.qadr] += rng.uniform(-RESET_JOINT_NOISE, RESET_JOINT_NOISE, size=len(rules.qadr))
    qvel[:2] = rng.uniform(-RESET_VEL_NOISE, RESET_VEL_NOISE, size=2)
    command = draw_command(rng)
    if rules.terrain is not None:
        qpos[:2] = rules.terrain.spawn(rng, level)
        around = qpos[:2] + np.stack(np.meshgrid(*[np.linspace(-0.35, 0.35, 8)] * 2), -1)  # (8, 8, 2)
        qpos[2] += float(rules.ground(around).max())
    return qpos, qvel, command
