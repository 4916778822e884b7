"""Every `sim2real` command in one table: where it lives, what it writes, which config decides it.

Standard library only, so `sim2real --help` and the pipeline read it without importing any stage.
A pipeline stage names the `RunLayout` attribute it writes and the root config sections that decide
its output; a config field that only says how a stage runs (workers, progress, backends) is marked
where it is declared, with `field(..., metadata=EXECUTION_ONLY)`, and changing it reruns nothing.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

EXECUTION_ONLY = {"execution_only": True}  # dataclass field metadata: no effect on what a stage writes


@dataclass(frozen=True)
class Stage:
    target: str  # module:function taking the typed Config
    doc: str  # one line for `sim2real --help`
    output: str | None = None  # pipeline stages: the RunLayout attribute it writes
    decided_by: tuple[str, ...] = ()  # root config sections that decide that output


STAGES: dict[str, Stage] = {
    "train-teacher": Stage(
        "sim2real.teacher.train:run",
        "train the privileged teacher (SB3 PPO/SAC)",
        "teacher",
        ("task", "teacher", "seed"),
    ),
    "collect": Stage(
        "sim2real.data.collect:run",
        "collect demonstrations from an expert into demos.zarr",
        "demos",
        ("task", "expert", "collect", "seed"),
    ),
    "import": Stage(
        "sim2real.data.importers:run", "import a foreign dataset (Diffusion Policy, D4RL, Minari)"
    ),
    "distill": Stage(
        "sim2real.student.train:run",
        "distil the observation-only student (BC / DAgger)",
        "student",
        ("task", "student", "distill", "pipeline", "seed"),
    ),
    "finetune": Stage(
        "sim2real.finetune.stage:run",
        "PPO on the distilled student in the randomized simulator (finetune.steps > 0)",
        "finetune",
        ("task", "finetune", "expert", "seed"),
    ),
    "export": Stage(
        "sim2real.export:run",
        "export the student to ONNX with metadata and a parity check",
        "export",
        ("export",),
    ),
    "validate": Stage(
        "sim2real.validate.stage:run",
        "validate the exported policy under randomization; gate",
        "validation",
        ("task", "validate", "expert"),
    ),
    "identify": Stage(
        "sim2real.identify.stage:run", "log=PATH.zarr: fit dynamics to a deployment log; re-centred ranges"
    ),
    "release": Stage(
        "sim2real.release:run", "copy a validated export to release/<task>/ with its report and manifest"
    ),
    "deploy": Stage("sim2real.deploy.cli:run", "run the controller against a robot (sim, udp or dds)"),
    "robot-sim": Stage("sim2real.deploy.robot_sim:run", "serve a MuJoCo robot over UDP (or transport=dds)"),
    "pipeline": Stage(
        "sim2real.pipeline:run", "teacher -> collect -> distill [-> finetune] -> export -> validate"
    ),
    "inspect": Stage(
        "sim2real.inspect_task:run", "short randomized rollout showing observations and dynamics"
    ),
}
PIPELINE: tuple[str, ...] = tuple(name for name, s in STAGES.items() if s.output)
# command-line spellings of the contracts (DESIGN.md) -> the config section that holds them
ALIASES: dict[str, str] = {
    "source": "importer.source",
    "format": "importer.format",
    "out": "importer.out",
    "keys": "importer.keys",
    "steps": "inspect.steps",
    "log": "identify.log",
}


def expand(override: str) -> list[str]:
    """`task.randomization=FILE.yaml` -> one override per range in the file (what identify writes)."""
    head, _, value = override.partition("=")
    if head.lstrip("+") != "task.randomization" or not value.endswith((".yaml", ".yml")):
        return [override]
    from sim2real.identify.ranges import read_ranges

    return [f"task.randomization.{k}=[{lo},{hi}]" for k, (lo, hi) in read_ranges(value).items()]


def dealias(override: str) -> str:
    """`source=X` -> `importer.source=X`, `keys.action=K` -> `importer.keys.action=K`; others unchanged."""
    if override.startswith("-"):
        return override
    head, eq, value = override.partition("=")
    prefix = head[: len(head) - len(head.lstrip("+~"))]
    key = head[len(prefix) :]
    root, dot, rest = key.partition(".")
    if not eq or root not in ALIASES:
        return override
    return f"{prefix}{ALIASES[root]}{dot}{rest}={value}"


def load(target: str) -> Any:
    """The function behind `module:function`, imported on first use."""
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def output_fields(section: Any) -> Any:
    """A config section as plain data without its execution-only fields (dataclasses recursively)."""
    if not dataclasses.is_dataclass(section):
        return section
    return {
        f.name: output_fields(getattr(section, f.name))
        for f in dataclasses.fields(section)
        if not f.metadata.get("execution_only")
    }


def decisive_config(cfg: Any, stage: str) -> dict[str, Any]:
    """What decides a pipeline stage's output: its sections, execution-only fields dropped."""
    return {s: output_fields(getattr(cfg, s)) for s in STAGES[stage].decided_by}
