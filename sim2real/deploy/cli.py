"""`sim2real deploy run_dir=R deploy.robot=sim|udp|dds`: run the exported policy's controller against a robot.

`deploy.robot=sim` runs the task's simulator in-process (`MujocoRobot`, dynamics fixed with
`deploy.dynamics.<name>=value`); `deploy.robot=udp` talks to `sim2real robot-sim` (or a robot speaking
the wire format) at `deploy.host:deploy.port`; `deploy.robot=dds` drives a DDS robot through the mapping
`robot=<name>` (conf/robot/; loopback unless `robot.interface=eth0`). Every step goes to
`<R>/deploy/<timestamp>.zarr`, committed at least every `deploy.log_commit_s`.
SIGINT, SIGTERM and SIGHUP stop it the same way: safe action, the robot's stop message, log
committed, exit 0 with the summary.
Unlike the runtime modules, this one may import the simulator (lazily, for robot=sim only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim2real.artifacts import RunLayout
from sim2real.deploy import signals
from sim2real.deploy.config import ROBOTS, controller_settings
from sim2real.deploy.controller import Controller, ControllerConfig, ControllerStats
from sim2real.deploy.log import DeployLog, log_attrs, log_path
from sim2real.deploy.policy import Policy, load_policy
from sim2real.errors import UserError


def check_validated(export_dir: Path, run_dir: Path, force: bool) -> dict[str, Any]:
    """The validation gate: refuse an export without a passing report for this very file, unless
    `force`; the returned record (validated, forced, reason) goes into the deployment log."""
    from sim2real.validate.verdict import NotValidated, require_validated

    try:
        return require_validated(export_dir, run_dir, force)
    except NotValidated as e:
        raise UserError(str(e)) from e


def controller_config(d) -> ControllerConfig:
    """The controller's options from `deploy.*` (a DeployConfig): the shared LoopSettings fields."""
    return ControllerConfig(**controller_settings(d))


def make_robot(cfg, policy: Policy):
    d = cfg.deploy
    if d.robot == "sim":
        from sim2real.sim_robot import MujocoRobot

        task = policy.spec.task or cfg.task.name
        return MujocoRobot(task, d.dynamics.fixed(), cfg.task.ranges(), seed=cfg.seed)
    if d.robot == "udp":
        from sim2real.deploy.udp import UdpRobot

        return UdpRobot(d.host, d.port)
    if d.robot == "dds":
        from sim2real.deploy.dds.mapping import check_policy, mapping_for
        from sim2real.deploy.dds.robot import DdsRobot

        mapping = mapping_for(cfg.robot, profile=cfg.profile)
        check_policy(mapping, policy.spec, f"robot mapping {mapping.name or '(config)'}")
        return DdsRobot(mapping)
    raise UserError(f"deploy.robot={d.robot!r} is not one of {ROBOTS}")


def open_log(log_dir: Path, policy: Policy, robot, gate: dict[str, Any], d, **extra: Any) -> DeployLog:
    """A new deployment log `<log_dir>/<timestamp>.zarr` for `policy` on `robot` (`d`: DeployConfig)."""
    spec = policy.spec
    attrs = log_attrs(spec, d.robot, gate, deploy={"action_filter": d.action_filter, **extra}, **_code())
    return DeployLog(
        log_path(log_dir),
        attrs,
        spec.obs_names,
        spec.action_names,
        privileged_dim=getattr(robot, "privileged_dim", 0),
        dynamics_names=getattr(robot, "dynamics_names", ()),
        commit_s=d.log_commit_s,
    )


def _code() -> dict[str, Any]:
    from sim2real.artifacts import code_version

    return {"code_version": code_version()}


def _plain(obj: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def summary_line(episode: int, stats: ControllerStats) -> str:
    faults = ", ".join(f"{f.kind}@{f.step}" for f in stats.faults) or "none"
    return (
        f"deploy: episode {episode}: {stats.steps} steps, return {stats.episode_return:.1f}, "
        f"overruns {stats.overruns}, max lateness {stats.max_lateness_s * 1e3:.2f} ms, faults {faults}, "
        f"stopped by {stats.stop_reason}"
    )


def ends_session(stats: ControllerStats) -> bool:
    """A stop signal or an e-stop ends the whole session, not only the episode."""
    return stats.stop_reason in (*signals.STOP_REASONS, "estop")


def run(cfg) -> None:
    d = cfg.deploy
    layout = RunLayout(cfg.run_dir)
    with signals.interrupts():  # SIGTERM/SIGHUP outside the loop: as SIGINT (KeyboardInterrupt)
        try:
            gate = check_validated(layout.export, layout.root, d.force)
            policy = load_policy(layout.export)
            _session(cfg, policy, gate, layout)
        except signals.Stopped as e:
            print(f"deploy: stopped by {e.reason} before the control loop ran")


def _session(cfg, policy: Policy, gate: dict[str, Any], layout: RunLayout) -> None:
    """Connect, run the episodes, and always: close the robot (its stop message) and commit the log."""
    d = cfg.deploy
    robot, log, episodes = make_robot(cfg, policy), None, []
    try:
        robot.connect()
        log = open_log(layout.deploy, policy, robot, gate, d, config=_plain(d)) if d.log else None
        controller = Controller(policy, robot, controller_config(d), log)
        if controller.rate_note:
            print(controller.rate_note)
        for ep in range(d.episodes):
            stats = controller.run(steps=d.steps, duration=d.duration_s, seed=cfg.seed + ep)
            print(summary_line(ep, stats))
            episodes.append(_episode_record(stats))
            if ends_session(stats):
                break
    finally:
        with signals.shielded():
            _close(robot, log, d.robot == "dds", {"episodes": episodes})


def _close(robot, log: DeployLog | None, dds: bool, summary: dict[str, Any]) -> None:
    try:
        robot.close()
    finally:
        if dds:  # link health: CRC errors, tick gaps, states received
            print(f"deploy: dds link: {robot.stats.summary()}")
            summary["dds_link"] = _plain(robot.stats)
        if log is not None:
            log.close(summary)
            print(f"deploy: log {log.path}")


def _episode_record(stats: ControllerStats) -> dict[str, Any]:
    import dataclasses

    return {**dataclasses.asdict(stats), "faults": [dataclasses.asdict(f) for f in stats.faults]}
