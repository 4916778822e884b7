"""`sim2real release run_dir=R`: copy a validated artifact into `release/<task>/` for users to deploy.

A release is what a user runs without training: `policy.onnx` and `policy.json` from `R/export/`, the
validation report that cleared that very file (`validation/report.json`, `report.md`, figures), and
`manifest.json` naming the command, seed, commit and config that made it. Only an artifact whose
report passed its gate is released; the folder is written next to its final place and renamed in,
so a stopped release never leaves half a folder.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

from sim2real.artifacts import (
    POLICY_JSON,
    POLICY_ONNX,
    RunLayout,
    git_sha,
    read_manifest,
    sha256_file,
    utc_now,
)
from sim2real.errors import UserError
from sim2real.validate.verdict import read_report, verdict

MAX_BYTES = 5 * 1024 * 1024  # a release lives in git: keep each folder small
MANIFEST = "manifest.json"


@dataclasses.dataclass
class ReleaseConfig:
    """`sim2real release`: where the run's validated export goes (`release/<task>` by default)."""

    out: str | None = None
    command: str | None = None  # the command that made the run, recorded in the manifest


def release(run_dir: str | Path, out: str | Path, task: str, seed: int, config: dict, command: str) -> Path:
    """Copy the cleared export of `run_dir` to `out`; returns `out`. UserError if it is not cleared."""
    layout = RunLayout(run_dir)
    cleared, reason = verdict(layout.export, layout.report)
    if not cleared:
        raise UserError(f"not released: {reason}")
    out = Path(out)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in (POLICY_ONNX, POLICY_JSON):
        shutil.copy2(layout.export / name, tmp / name)
    shutil.copytree(layout.validation, tmp / "validation")
    report = read_report(layout.report) or {}  # verdict read it already: a JSON object
    code = (read_manifest(layout.export) or {}).get("code", {})
    manifest = {
        "task": task,
        "command": made_by(layout) or command,  # the command that made the run
        "seed": seed,
        "commit": code.get("git_sha"),  # the code that exported the artifact
        "commit_dirty": code.get("dirty"),  # tracked files differed from that commit (None: unknown)
        "released_by": command,
        "released_at": git_sha(),
        "created": utc_now(),
        "artifact_sha256": sha256_file(tmp / POLICY_ONNX),
        "gate": report.get("gate", {}).get("passed"),
        "train_ratio": report.get("metrics", {}).get("train", {}).get("ratio"),
        "config": config,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
    if size > MAX_BYTES:
        shutil.rmtree(tmp)
        mb, limit = size / 2**20, MAX_BYTES / 2**20
        raise UserError(f"not released: {mb:.1f} MB is over the {limit:.0f} MB a release may take")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _hydra_dir(layout: RunLayout) -> tuple[str, Path] | None:
    """(stage, .hydra folder) of the newest pipeline run in the run dir, else of its export."""
    for stage in ("pipeline", "export"):
        runs = sorted(layout.logs(stage).glob("*/.hydra/overrides.yaml"))
        if runs:
            return stage, runs[-1].parent
    return None


def made_by(layout: RunLayout) -> str | None:
    """The command line of the newest pipeline run in the run dir (else of its export), from the
    overrides Hydra recorded there: `sim2real pipeline task=hopper run_dir=...`."""
    found = _hydra_dir(layout)
    if found is None:
        return None
    stage, hydra = found
    text = (hydra / "overrides.yaml").read_text()
    lines = [ln[2:].strip() for ln in text.splitlines() if ln.startswith("- ")]
    return " ".join(["sim2real", stage, *(a for a in lines if not a.startswith("stage="))])


def run_config(layout: RunLayout) -> dict | None:
    """The config the run was made with (what Hydra recorded for `made_by`'s command), or None."""
    import yaml

    found = _hydra_dir(layout)
    path = found[1] / "config.yaml" if found else None
    return yaml.safe_load(path.read_text()) if path is not None and path.exists() else None


def run(cfg) -> None:
    """Release the run's export under the artifact's own task, with the seed and config of the run
    that made it (the release command's own are the fallback)."""
    layout = RunLayout(cfg.run_dir)
    policy_json = layout.export / POLICY_JSON
    meta = json.loads(policy_json.read_text()) if policy_json.exists() else {}
    task = meta.get("task") or cfg.task.name
    config = run_config(layout) or dataclasses.asdict(cfg)
    out = cfg.release.out or str(Path("release") / task)
    command = cfg.release.command or " ".join(["sim2real", *sys.argv[1:]])
    path = release(cfg.run_dir, out, task, int(config.get("seed", cfg.seed)), config, command)
    print(f"released {layout.policy_onnx} ({task}) -> {path}")
