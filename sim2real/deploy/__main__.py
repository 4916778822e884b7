"""`python -m sim2real.deploy EXPORT_DIR --host H --port P`: the controller against a UDP robot (or a DDS
robot with `--dds MAPPING [--interface eth0]`), with no Hydra and no simulator (what the lean deploy
image runs on a robot's computer).

The validation gate applies as in `sim2real deploy`: the report is looked for in
`<run dir>/validation/report.json` (run dir: the export dir's parent unless --run-dir says).
The loop's flags are `deploy.*` options (`FLAGS`: same names' meaning and defaults as `sim2real
deploy`, built into the same DeployConfig). SIGINT, SIGTERM and SIGHUP stop it cleanly: safe action,
the robot's stop message, log committed, exit 0 with the summary line. An error is one line, exit 2.
`python -m sim2real.deploy replay log=PATH.zarr export=DIR` replays a deployment log through an
export (see `sim2real.deploy.replay`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim2real.deploy import signals
from sim2real.deploy.cli import check_validated, controller_config, open_log, summary_line
from sim2real.deploy.config import DeployConfig
from sim2real.deploy.controller import Controller
from sim2real.deploy.policy import load_policy
from sim2real.deploy.udp import UdpRobot
from sim2real.errors import UserError

# flag -> (DeployConfig field, type, scale of the flag's unit to the field's, help)
FLAGS: dict[str, tuple[str, type, float, str]] = {
    "--host": ("host", str, 1.0, "the robot's address"),
    "--port": ("port", int, 1.0, "the robot's UDP port"),
    "--rate-hz": ("rate_hz", float, 1.0, "control rate (default: 1 / the policy's control_dt)"),
    "--steps": ("steps", int, 1.0, "stop after this many steps"),
    "--duration": ("duration_s", float, 1.0, "stop after this many seconds"),
    "--soft-start": ("soft_start_s", float, 1.0, "ramp from the safe action, s (default: export's, 0.5)"),
    "--stale-after": ("stale_after_s", float, 1.0, "sensor watchdog timeout, seconds"),
    "--max-action-rate": ("max_action_rate", float, 1.0, "per second (default: the export's)"),
    "--rt-priority": ("realtime_priority", int, 1.0, "SCHED_FIFO priority 1-99 of the loop (root)"),
    "--spin-ms": ("spin_s", float, 1e-3, "busy-wait before each deadline, ms"),
    "--action-filter": ("action_filter", float, 1.0, "exponential filter alpha in [0, 1) (default off)"),
    "--log-commit": ("log_commit_s", float, 1.0, "commit the running episode to the log this often, s"),
}
FLAGS_SCALE = {name: scale for name, _, scale, _ in FLAGS.values() if scale != 1.0}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sim2real.deploy", description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir", type=Path)
    p.add_argument("--run-dir", type=Path, default=None, help="for the validation report")
    defaults = DeployConfig()
    for flag, (name, kind, scale, text) in FLAGS.items():
        default = getattr(defaults, name)
        default = round(default / scale, 9) if default is not None and scale != 1.0 else default
        metavar = flag[2:].upper().replace("-", "_")
        p.add_argument(
            flag, dest=name, metavar=metavar, type=kind, default=default, help=f"{text} [{default}]"
        )
    p.add_argument("--safe-action", dest="safe_action", type=float, nargs="+", default=None, help="[zeros]")
    p.add_argument(
        "--bind", default="127.0.0.1", help="local address to send from (0.0.0.0 to reach another host)"
    )
    p.add_argument(
        "--dds", metavar="MAPPING", default=None, help="a DDS robot: conf/robot/ name or YAML path (not UDP)"
    )
    p.add_argument("--domain", type=int, default=None, help="DDS domain id (default: the mapping's, 0)")
    p.add_argument("--interface", default=None, help="DDS network interface (default: loopback only)")
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=None,
        help="s to wait for the robot (default: UDP 5, DDS the mapping's)",
    )
    p.add_argument("--log-dir", type=Path, default=None, help="write <dir>/<timestamp>.zarr (needs zarr)")
    p.add_argument("--force", action="store_true", help="deploy without a passing validation report")
    return p.parse_args(argv)


def deploy_config(args: argparse.Namespace) -> DeployConfig:
    """The flags as the DeployConfig `sim2real deploy` builds from `deploy.*` (checked the same way)."""
    values = {name: getattr(args, name) for name, _, _, _ in FLAGS.values()}
    values = {n: v * FLAGS_SCALE[n] if v is not None and n in FLAGS_SCALE else v for n, v in values.items()}
    robot = "dds" if args.dds else "udp"
    return DeployConfig(robot=robot, force=args.force, safe_action=args.safe_action, **values)


def flag_names(message: str) -> str:
    """A message about `deploy.<field>` in this CLI's words (`--rate-hz`)."""
    for flag, (name, *_) in FLAGS.items():
        message = message.replace(f"deploy.{name}=", f"{flag}=").replace(f"deploy.{name}", flag)
    return message.replace("deploy.force=true", "--force")


def make_robot(args: argparse.Namespace, d: DeployConfig, policy):
    """UDP by default; `--dds MAPPING` a DDS robot (the mapping checked against the policy first)."""
    if args.dds is None:
        wait = {} if args.connect_timeout is None else {"timeout_s": args.connect_timeout / 10, "retries": 10}
        return UdpRobot(d.host, d.port, bind=args.bind, **wait)
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
        with signals.interrupts():  # SIGTERM/SIGHUP outside the loop: as SIGINT (KeyboardInterrupt)
            return run(args)
    except signals.Stopped as e:
        print(f"deploy: stopped by {e.reason} before the control loop ran", file=sys.stderr)
        return 0
    except (UserError, OSError) as e:  # bad input, missing robot, full disk: one line
        print(f"deploy: error: {flag_names(str(e))}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    d = deploy_config(args)
    gate = check_validated(args.export_dir, args.run_dir or args.export_dir.parent, d.force)
    policy = load_policy(args.export_dir)
    robot, log = make_robot(args, d, policy), None
    try:
        robot.connect()
        if args.log_dir is not None:
            log = open_log(args.log_dir, policy, robot, gate, d)
        controller = Controller(policy, robot, controller_config(d), log)
        if controller.rate_note:
            print(controller.rate_note, file=sys.stderr)
        stats = controller.run(steps=d.steps, duration=d.duration_s)
        print(summary_line(0, stats), flush=True)
    finally:
        with signals.shielded():
            _close(robot, log, args.dds is not None)
    return 0


def _close(robot, log, dds: bool) -> None:
    try:
        robot.close()
    finally:
        if dds:
            print(f"deploy: dds link: {robot.stats.summary()}")
        if log is not None:
            log.close()
            print(f"deploy: log {log.path}")


if __name__ == "__main__":
    sys.exit(main())
