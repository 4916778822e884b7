"""`sim2real <stage> [hydra overrides]`: the one module that touches Hydra.

Each stage is a function `run(cfg: Config) -> None` in its own module, imported only when
called, so `sim2real --help` stays fast and a stage that is not built yet says so.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

# stage -> (module:function, one-line description)
STAGES: dict[str, tuple[str, str]] = {
    "train-teacher": ("sim2real.teacher.train:run", "train the privileged teacher (SB3 PPO/SAC)"),
    "collect": ("sim2real.data.collect:run", "collect demonstrations from an expert into demos.zarr"),
    "import": ("sim2real.data.importers:run", "import a foreign dataset (Diffusion Policy, D4RL, Minari)"),
    "distill": ("sim2real.student.train:run", "distil the observation-only student (BC / DAgger)"),
    "export": ("sim2real.export:run", "export the student to ONNX with metadata and a parity check"),
    "validate": ("sim2real.validate.stage:run", "validate the exported policy under randomization; gate"),
    "deploy": ("sim2real.deploy.cli:run", "run the controller against a robot (sim or udp)"),
    "robot-sim": ("sim2real.deploy.robot_sim:run", "serve a MuJoCo robot over UDP for deploy robot=udp"),
    "pipeline": ("sim2real.pipeline:run", "teacher -> collect -> distill -> export -> validate"),
    "inspect": ("sim2real.inspect_task:run", "short randomized rollout showing observations and dynamics"),
}
# stages that take plain arguments instead of Hydra overrides: stage -> module:function(argv)
PLAIN_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("sim2real.data.cli:main", "data info PATH | data merge OUT SHARD... (dataset tools)"),
}


def _available(target: str) -> bool:
    module = target.partition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return False
    return spec is not None


def usage() -> str:
    lines = [
        "usage: sim2real <stage> [key=value ...]   (Hydra overrides, e.g. task=hopper run_dir=runs/h)",
        "",
    ]
    lines.append("stages:")
    for name, (target, doc) in {**STAGES, **PLAIN_COMMANDS}.items():
        mark = "" if _available(target) else "  [planned, not built yet]"
        lines.append(f"  {name:<14} {doc}{mark}")
    lines += [
        "",
        "common overrides: task=pendulum|hopper|walker2d|halfcheetah|ant  run_dir=PATH  seed=N",
        "                  logger=none|local|wandb",
        "`sim2real <stage> --cfg job` prints the resolved config; `--help` after a stage lists groups.",
    ]
    return "\n".join(lines)


def _load(target: str):
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    stage, rest = argv[0], argv[1:]
    if stage in PLAIN_COMMANDS:
        return int(_load(PLAIN_COMMANDS[stage][0])(rest) or 0)
    if stage not in STAGES:
        print(f"sim2real: unknown stage {stage!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if not _available(STAGES[stage][0]):
        print(f"sim2real: stage {stage!r} is planned but not built yet", file=sys.stderr)
        return 2
    return _run_hydra(stage, rest)


def _run_hydra(stage: str, overrides: list[str]) -> int:
    import hydra

    from sim2real.config import register

    register()
    problem = config_problem(overrides)
    if problem:
        print(f"sim2real {stage}: bad config: {problem}", file=sys.stderr)
        return 2
    sys.argv = [f"sim2real {stage}", f"stage={stage}", *overrides]

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def _entry(cfg) -> None:
        _run_stage(stage, cfg)

    _entry()
    return 0


def config_problem(overrides: list[str]) -> str | None:
    """Compose the config once to turn Hydra/OmegaConf's multi-line errors into one line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from sim2real.config import register

    register()
    hydra_flags = [o for o in overrides if o.startswith("-")]
    if hydra_flags:
        return None  # --cfg, --help, --multirun...: let Hydra handle them
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            OmegaConf.to_object(compose("config", overrides=overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        return _one_line(e)
    return None


def _one_line(e: BaseException) -> str:
    cause = e.__cause__ or e
    msg = getattr(cause, "msg", None) or str(cause)
    first = msg.strip().splitlines()[0] if msg.strip() else type(cause).__name__
    key = getattr(cause, "full_key", None)
    if "Available options" in str(e) or "Could not find" in str(e):
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        opts = [
            ln for ln in lines if ln and not ln.startswith(("In ", "Available", "Config search", "provider="))
        ]
        return f"{lines[0]} (available: {', '.join(opts[:20])})"
    return f"{first} (key: {key})" if key and key not in first else first


def _run_stage(stage: str, cfg) -> None:
    from omegaconf import OmegaConf

    from sim2real.errors import UserError

    typed = OmegaConf.to_object(cfg)
    try:
        _load(STAGES[stage][0])(typed)
    except (UserError, ValueError, FileNotFoundError) as e:
        if os.environ.get("SIM2REAL_DEBUG"):
            raise
        print(f"sim2real {stage}: error: {e}", file=sys.stderr)
        sys.exit(2)
