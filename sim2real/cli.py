"""`sim2real <stage> [hydra overrides]`: the one module that touches Hydra.

Each stage is a function `run(cfg: Config) -> None` in its own module, imported only when
called, so `sim2real --help` stays fast and a stage that is not built yet says so.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path

from sim2real.stages import STAGES, dealias, expand, load

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

# stages that take plain arguments instead of Hydra overrides: stage -> module:function(argv)
PLAIN_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("sim2real.data.cli:main", "info PATH | merge OUT SHARD... | to-mcap PATH OUT.mcap"),
    "sweep-summary": ("sim2real.sweep.summary:main", "sweep-summary DIR: one table + figure over a -m sweep"),
}
# `sim2real <stage> <sub> ...` commands with plain arguments (Hydra would reject the bare word)
SUBCOMMANDS: dict[tuple[str, str], tuple[str, str]] = {
    ("deploy", "replay"): ("sim2real.deploy.replay:main", "log=PATH.zarr: re-run a policy over a deploy log"),
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
    commands = {**{n: (s.target, s.doc) for n, s in STAGES.items()}, **PLAIN_COMMANDS}
    for name, (target, doc) in commands.items():
        mark = "" if _available(target) else "  [planned, not built yet]"
        lines.append(f"  {name:<14} {doc}{mark}")
    for (name, sub), (_, doc) in SUBCOMMANDS.items():
        lines.append(f"  {name + ' ' + sub:<14} {doc}")
    lines += [
        "",
        "common overrides: task=pendulum|hopper|walker2d|halfcheetah|ant|go2  run_dir=PATH  seed=N",
        "                  logger=none|local|wandb",
        "sweeps: sim2real pipeline -m seed=0,1,2 [hydra/launcher=local|slurm|ray_cluster]  (docs/sweeps.md)",
        "`sim2real <stage> --cfg job` prints the resolved config; `--help` after a stage lists groups.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    stage, rest = argv[0], argv[1:]
    if stage in PLAIN_COMMANDS:
        return int(load(PLAIN_COMMANDS[stage][0])(rest) or 0)
    if (stage, rest[0] if rest else "") in SUBCOMMANDS:
        return int(load(SUBCOMMANDS[stage, rest[0]][0])(rest[1:]) or 0)
    if stage not in STAGES:
        print(f"sim2real: unknown stage {stage!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if not _available(STAGES[stage].target):
        print(f"sim2real: stage {stage!r} is planned but not built yet", file=sys.stderr)
        return 2
    from sim2real.deploy.signals import terminations

    with terminations():  # SIGTERM/SIGHUP stop a stage as Ctrl-C does: checkpoint saved, resumable
        try:
            return _run_hydra(stage, rest)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP raised as `Stopped`
            return _stopped(stage, getattr(e, "reason", "sigint"))


def _stopped(stage: str, reason: str) -> int:
    """One line, not a traceback, for a stage stopped on purpose; the shell's 128 + signal number."""
    from tqdm import tqdm

    again = "rerun with collect.resume=true" if stage == "collect" else "rerun the same command"
    tqdm.write(  # on a line of its own, above any progress bar still drawn
        f"sim2real {stage}: stopped by {reason.upper()}; finished stages, checkpoints and committed episodes "
        f"stay in the run dir ({again} to continue)",
        file=sys.stderr,
    )
    return 128 + int(signal.Signals[reason.upper()])


def _run_hydra(stage: str, overrides: list[str]) -> int:
    import hydra

    from sim2real.config import register

    register()
    overrides = [e for o in overrides for e in expand(dealias(o))]
    multirun = any(o in ("-m", "--multirun") for o in overrides)
    try:
        overrides = multirun_overrides(overrides) if multirun else overrides
        problem = config_problem(overrides) or run_dir_problem(overrides)
    except ValueError as e:
        problem = str(e)
    if problem:
        print(f"sim2real {stage}: bad config: {problem}", file=sys.stderr)
        return 2
    for extra in [f"stage={stage}", *_worker_overrides()]:
        overrides = _with_override(overrides, extra)
    sys.argv = [f"sim2real {stage}", *overrides]

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def _entry(cfg) -> None:
        _run_stage(stage, cfg)

    _entry()
    return 0


def _with_override(args: list[str], extra: str) -> list[str]:
    """Insert `extra` before the first override: argparse needs Hydra's overrides in one block."""
    first = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), 0)
    return [*args[:first], extra, *args[first:]]


def multirun_overrides(overrides: list[str]) -> list[str]:
    """Under `-m`, every job gets its own run_dir: Hydra's job dir `<sweep dir>/<job number>`.

    A fixed `run_dir=PATH` names the sweep's root (`hydra.sweep.dir`) instead; a swept one
    (`run_dir=a,b`) is left to the user.
    """
    own = "run_dir=${hydra:runtime.output_dir}"
    given = [o for o in overrides if o.startswith("run_dir=")]
    if not given:
        return _with_override(overrides, own)
    root = given[-1].partition("=")[2]
    if "," in root or "${" in root:
        return overrides
    if any(o.startswith("hydra.sweep.dir=") for o in overrides):
        raise ValueError(f"under -m give either run_dir={root} (the sweep's root) or hydra.sweep.dir")
    rest = [o for o in overrides if o not in given]
    return _with_override(_with_override(rest, own), f"hydra.sweep.dir={root}")


def _worker_overrides() -> list[str]:
    """Under torchrun only rank 0 writes Hydra's run dir (`<run_dir>/logs/`): no config copy or log file."""
    if os.environ.get("RANK", "0") == "0":
        return []
    return ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=none"]


def config_problem(overrides: list[str]) -> str | None:
    """Compose the config once to turn Hydra/OmegaConf's multi-line errors into one line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from sim2real.config import register

    register()
    hydra_flags = [o for o in overrides if o.startswith("-")]
    if set(hydra_flags) - {"-m", "--multirun"}:
        return None  # --cfg, --help, --info...: let Hydra handle them
    try:
        if hydra_flags:
            overrides = _first_job(overrides)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            OmegaConf.to_object(compose("config", overrides=overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        return _one_line(e) + _plugin_hint(str(e))
    return None


def run_dir_problem(overrides: list[str]) -> str | None:
    """A `run_dir=PATH` that cannot be created or written (a full disk, /proc/...): one line now, where
    Hydra's config save would end in a traceback. Swept or interpolated run dirs are left to Hydra."""
    given = [o.partition("=")[2] for o in overrides if o.startswith("run_dir=")]
    if not given or "${" in given[-1] or "," in given[-1]:
        return None
    import tempfile

    try:
        path = Path(given[-1]).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path) as f:  # a full disk fails here, not only at mkdir
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return f"run_dir={given[-1]} cannot be written ({e.strerror or e}): pick a writable directory"
    return None


def _plugin_hint(msg: str) -> str:
    """A launcher config whose Hydra plugin is not installed (conf/hydra/launcher/, docs/sweeps.md)."""
    plugins = {
        "'hydra/launcher/submitit_": "hydra-submitit-launcher",
        "'hydra/launcher/ray": "hydra-ray-launcher",
        "'hydra/launcher/joblib": "hydra-joblib-launcher (sim2real's scale extra)",
    }
    pip = [p for key, p in plugins.items() if f"Could not load {key}" in msg]
    return f" (plugin not installed: pip install {pip[0]}; see docs/sweeps.md)" if pip else ""


def _first_job(overrides: list[str]) -> list[str]:
    """The overrides of a -m sweep's first job (each swept key at its first value), to check them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    plain = [o for o in overrides if not o.startswith("-") and "${hydra:" not in o]
    out = []
    for o in OverridesParser.create().parse_overrides(plain):
        if o.is_sweep_override():
            first = next(iter(o.sweep_string_iterator()), "")
            out.append(f"{o.input_line.partition('=')[0]}={first}")
        else:
            out.append(o.input_line)
    return out


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
    typed.task_explicit = typed.task_explicit or names_task(_job_overrides())
    try:
        load(STAGES[stage].target)(typed)
    except (UserError, ValueError, FileNotFoundError) as e:
        if os.environ.get("SIM2REAL_DEBUG"):
            raise
        job = _sweep_job()
        print(f"sim2real {stage}{job}: error: {e}", file=sys.stderr)
        if job:  # a failed job must not stop the sweep's other jobs; Hydra reports it at the end
            from hydra.errors import CompactHydraException

            raise CompactHydraException(f"sim2real {stage}{job} failed: {e}") from None
        sys.exit(2)


def names_task(overrides: list[str]) -> bool:
    """Whether the command line chose the task (`task=NAME`, `task.name=NAME`), rather than the default:
    foreign data is bound to a task only on the user's word (`sim2real.data.binding`)."""
    return any(o.partition("=")[0].lstrip("+") in ("task", "task.name") for o in overrides if "=" in o)


def _job_overrides() -> list[str]:
    """This job's command-line overrides (a -m sweep's job: its own values)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task)


def _sweep_job() -> str:
    """' job N' when Hydra runs this as job N of a -m sweep, '' in a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return f" job {hc.job.num}" if hc.mode == RunMode.MULTIRUN else ""
