"""Robot-side runtime: load an exported policy and run it against a robot at a fixed rate.

Imports only the standard library, numpy and onnxruntime (and the pure-numpy observation builder
`envs.observations`): never torch, mujoco, Hydra or SB3, so it runs on a robot's computer and in
the lean deploy image. `zarr` is optional (deployment logs only, imported when a log is opened);
`MujocoRobot` (sim2sim) imports the simulator when it is first used.

    from sim2real.deploy import load_policy
    policy = load_policy("runs/pendulum/export")  # checks hashes and metadata
    policy.reset(); action = policy.act(obs)      # (Ds,) -> (Da,) float32
"""

from sim2real.deploy.controller import Controller, ControllerConfig, ControllerFault, ControllerStats, Fault
from sim2real.deploy.log import DeployLog
from sim2real.deploy.policy import Policy, WindowPolicy, load_policy, load_window_policy
from sim2real.deploy.robot import EpisodicRobot, Robot
from sim2real.deploy.spec import PolicyMismatch, PolicySpec
from sim2real.deploy.udp import LinkConfig, RobotServer, UdpRobot

__all__ = [
    "Controller",
    "ControllerConfig",
    "ControllerFault",
    "ControllerStats",
    "DeployLog",
    "EpisodicRobot",
    "Fault",
    "LinkConfig",
    "MujocoRobot",
    "Policy",
    "PolicyMismatch",
    "PolicySpec",
    "Robot",
    "RobotServer",
    "UdpRobot",
    "WindowPolicy",
    "load_policy",
    "load_window_policy",
]


def __getattr__(name: str):
    if name == "MujocoRobot":  # needs gymnasium + mujoco: imported on first use only
        from sim2real.sim_robot import MujocoRobot

        return MujocoRobot
    raise AttributeError(f"module 'sim2real.deploy' has no attribute {name!r}")
