"""`sim2real deploy run_dir=R deploy.robot=sim|udp|dds`: run the exported policy's controller against a robot.

`deploy.robot=sim` runs the task's simulator in-process (`MujocoRobot`, dynamics fixed with
`deploy.dynamics.<name>=value`); `deploy.robot=udp` talks to `sim2real robot-sim` (or a robot speaking
the wire format) at `deploy.host:deploy.port`; `deploy.robot=dds` drives a DDS robot through the mapping
`robot=<name>` (conf/robot/; loopback unless `robot.interface=eth0`). Every step goes to
`<R>/deploy/<timestamp>.zarr`.
Unlike the runtime modules, this one may import the simulator (lazily, for robot=sim only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim2real.deploy.controller import Controller, ControllerConfig, ControllerStats
from sim2real.deploy.log import DeployLog, log_attrs, log_path
from sim2real.deploy.policy import Policy, load_policy
from sim2real.errors import UserError

ROBOTS = ("sim", "udp", "dds")


def check_validated(export_dir: Path, run_dir: Path, force: bool) -> dict[str, Any]:
    """The validation gate: refuse an export without a passing report for this very file, unless
    `force`; the returned record (validated, forced, reason) goes into the deployment log."""
    from sim2real.validate.verdict import NotValidated, require_validated

    try:
        return require_validated(export_dir, run_dir, force)
    except NotValidated as e:
        raise UserError(str(e)) from e


def controller_config(d) -> ControllerConfig:
    return ControllerConfig(
        rate_hz=d.rate_hz,
        stale_after_s=d.stale_after_s,
        safe_action=None if d.safe_action is None else tuple(d.safe_action),
        soft_start_s=d.soft_start_s,
        max_action_rate=d.max_action_rate,
        action_filter=d.action_filter,
        spin_s=d.spin_s,
        realtime_priority=d.realtime_priority,
    )


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


def open_log(run_dir: Path, policy: Policy, robot, gate: dict[str, Any], cfg) -> DeployLog:
    from sim2real.artifacts import code_version

    spec = policy.spec
    attrs = log_attrs(
        spec,
        cfg.deploy.robot,
        gate,
        code_version=code_version(),
        deploy={"config": _plain(cfg.deploy), "action_filter": cfg.deploy.action_filter},
    )
    return DeployLog(
        log_path(run_dir / "deploy"),
        attrs,
        spec.obs_names,
        spec.action_names,
        privileged_dim=getattr(robot, "privileged_dim", 0),
        dynamics_names=getattr(robot, "dynamics_names", ()),
    )


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


def run(cfg) -> None:
    d = cfg.deploy
    if d.robot not in ROBOTS:
        raise UserError(f"deploy.robot={d.robot!r} is not one of {ROBOTS}")
    run_dir = Path(cfg.run_dir)
    export_dir = run_dir / "export"
    gate = check_validated(export_dir, run_dir, d.force)
    policy = load_policy(export_dir)
    robot = make_robot(cfg, policy)
    robot.connect()
    log = None
    episodes: list[dict[str, Any]] = []
    try:
        log = open_log(run_dir, policy, robot, gate, cfg) if d.log else None
        controller = Controller(policy, robot, controller_config(d), log)
        for ep in range(d.episodes):
            stats = controller.run(steps=d.steps, duration=d.duration_s, seed=cfg.seed + ep)
            print(summary_line(ep, stats))
            episodes.append(_episode_record(stats))
            if stats.stop_reason in ("sigint", "estop"):
                break
    finally:
        robot.close()
        link = {}
        if d.robot == "dds":  # link health: CRC errors, tick gaps, states received
            print(f"deploy: dds link: {robot.stats.summary()}")
            link = {"dds_link": _plain(robot.stats)}
        if log is not None:
            log.close({"episodes": episodes, **link})
            print(f"deploy: log {log.path}")


def _episode_record(stats: ControllerStats) -> dict[str, Any]:
    import dataclasses

    return {**dataclasses.asdict(stats), "faults": [dataclasses.asdict(f) for f in stats.faults]}
