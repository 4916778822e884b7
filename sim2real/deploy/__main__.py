"""`python -m sim2real.deploy EXPORT_DIR --host H --port P`: the controller against a UDP robot (or a DDS
robot with `--dds MAPPING [--interface eth0]`), with no Hydra and no simulator (what the lean deploy
image runs on a robot's computer).

The validation gate applies as in `sim2real deploy`: the report is looked for in
`<run dir>/validation/report.json` (run dir: the export dir's parent unless --run-dir says).
`python -m sim2real.deploy replay log=PATH.zarr export=DIR` replays a deployment log through an
export (see `sim2real.deploy.replay`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim2real.deploy.cli import check_validated, summary_line
from sim2real.deploy.controller import Controller, ControllerConfig
from sim2real.deploy.policy import load_policy
from sim2real.deploy.udp import DEFAULT_PORT, UdpRobot
from sim2real.errors import UserError


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sim2real.deploy", description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir", type=Path)
    p.add_argument("--run-dir", type=Path, default=None, help="for the validation report")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument(
        "--bind", default="127.0.0.1", help="local address to send from (0.0.0.0 to reach another host)"
    )
    p.add_argument("--rate-hz", type=float, default=None, help="default: 1 / the policy's control_dt")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--duration", type=float, default=None, help="seconds")
    p.add_argument("--soft-start", type=float, default=0.5, help="seconds")
    p.add_argument("--stale-after", type=float, default=None, help="sensor watchdog timeout, seconds")
    p.add_argument("--rt-priority", type=int, default=0, help="SCHED_FIFO priority 1-99 of the loop (root)")
    p.add_argument("--spin-ms", type=float, default=0.2, help="busy-wait before each deadline, ms")
    p.add_argument(
        "--action-filter", type=float, default=None, help="exponential filter alpha in [0, 1) (default off)"
    )
    p.add_argument(
        "--dds", metavar="MAPPING", default=None, help="a DDS robot: conf/robot/ name or YAML path (not UDP)"
    )
    p.add_argument("--domain", type=int, default=None, help="DDS domain id (default: the mapping's, 0)")
    p.add_argument("--interface", default=None, help="DDS network interface (default: loopback only)")
    p.add_argument("--connect-timeout", type=float, default=None, help="DDS: seconds to wait for a state")
    p.add_argument("--log-dir", type=Path, default=None, help="write <dir>/<timestamp>.zarr (needs zarr)")
    p.add_argument("--force", action="store_true", help="deploy without a passing validation report")
    return p.parse_args(argv)


def make_robot(args: argparse.Namespace, policy):
    """UDP by default; `--dds MAPPING` a DDS robot (the mapping checked against the policy first)."""
    if args.dds is None:
        return UdpRobot(args.host, args.port, bind=args.bind)
    from sim2real.deploy.dds.mapping import check_policy, load_mapping
    from sim2real.deploy.dds.robot import DdsRobot

    link = {"domain": args.domain, "interface": args.interface, "connect_timeout": args.connect_timeout}
    mapping = load_mapping(args.dds, **link)
    check_policy(mapping, policy.spec, f"robot mapping {args.dds}")
    return DdsRobot(mapping)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["replay"]:  # `python -m sim2real.deploy replay log=PATH.zarr export=DIR`
        from sim2real.deploy.replay import main as replay

        return replay(argv[1:])
    args = parse(argv)
    try:
        gate = check_validated(args.export_dir, args.run_dir or args.export_dir.parent, args.force)
        policy = load_policy(args.export_dir)
    except (UserError, FileNotFoundError) as e:
        print(f"deploy: error: {str(e).replace('deploy.force=true', '--force')}", file=sys.stderr)
        return 2
    try:
        robot = make_robot(args, policy)
        robot.connect()
    except UserError as e:
        print(f"deploy: error: {e}", file=sys.stderr)
        return 2
    log = None
    try:
        if args.log_dir is not None:
            from sim2real.deploy.log import DeployLog, log_attrs, log_path

            spec = policy.spec
            attrs = log_attrs(
                spec, "dds" if args.dds else "udp", gate, deploy={"action_filter": args.action_filter}
            )
            log = DeployLog(log_path(args.log_dir), attrs, spec.obs_names, spec.action_names)
        cfg = ControllerConfig(
            rate_hz=args.rate_hz,
            stale_after_s=args.stale_after,
            soft_start_s=args.soft_start,
            action_filter=args.action_filter,
            spin_s=args.spin_ms / 1e3,
            realtime_priority=args.rt_priority,
        )
        stats = Controller(policy, robot, cfg, log).run(steps=args.steps, duration=args.duration)
        print(summary_line(0, stats))
    finally:
        robot.close()
        if args.dds:
            print(f"deploy: dds link: {robot.stats.summary()}")
        if log is not None:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
