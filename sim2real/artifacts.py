"""Run directories and manifests: every stage's output carries its resolved config, code and
library versions, seed, the hashes of what it read, timing and status.

`stage_run` writes `manifest.json` with status "running" when a stage starts, and "finished" or
"failed" when it ends, so a crashed stage is visible and the pipeline can tell finished work
(same inputs) from work to redo.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import sim2real

# file names inside an export directory (which may be copied away from its run dir)
POLICY_ONNX, POLICY_JSON, POLICY_WINDOW_ONNX = "policy.onnx", "policy.json", "policy_window.onnx"


@dataclass(frozen=True)
class RunLayout:
    """Where everything of one run directory lives: every stage, the deploy runtime and the sweep
    summary read paths from here, so a new artifact is one property, not a string in ten files."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def teacher(self) -> Path:
        return self.root / "teacher"

    @property
    def demos(self) -> Path:
        return self.root / "demos.zarr"

    @property
    def training(self) -> Path:
        """`teacher.record_episodes`: every episode the teacher trained on (a demo store)."""
        return self.root / "training.zarr"

    @property
    def student(self) -> Path:
        return self.root / "student"

    @property
    def finetune(self) -> Path:
        """`sim2real finetune`: the PPO-tuned student (same files as `student`)."""
        return self.root / "finetune"

    def final_student(self, finetuned: bool) -> Path:
        """The student export takes: the fine-tuned one when fine-tuning is configured."""
        return self.finetune if finetuned else self.student

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def policy_onnx(self) -> Path:
        return self.export / POLICY_ONNX

    @property
    def validation(self) -> Path:
        return self.root / "validation"

    @property
    def report(self) -> Path:
        return self.validation / "report.json"

    @property
    def report_md(self) -> Path:
        return self.validation / "report.md"

    @property
    def deploy(self) -> Path:
        """Deployment logs, `<timestamp>.zarr` each."""
        return self.root / "deploy"

    @property
    def identify(self) -> Path:
        """`sim2real identify`: fitted dynamics, figures and re-centred ranges."""
        return self.root / "identify"

    @property
    def pipeline_state(self) -> Path:
        return self.root / "pipeline.json"

    @property
    def stale(self) -> Path:
        """Where the pipeline moves outputs it redoes, instead of deleting them."""
        return self.root / ".stale"

    @property
    def hydra_overrides(self) -> Path:
        return self.root / ".hydra" / "overrides.yaml"

    def logs(self, name: str) -> Path:
        """Metric logs of one stage (`teacher`, `collect`, `distill`)."""
        return self.root / "logs" / name

    def stage(self, stage: str) -> Path:
        """Output directory (or store) of a pipeline stage, by its command name."""
        from sim2real.stages import STAGES

        return getattr(self, STAGES[stage].output)


_LIBS = ("torch", "mujoco", "gymnasium", "stable-baselines3", "zarr", "hydra-core", "numpy", "onnxruntime")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(path: str | Path, exclude: tuple[str, ...] = ("manifest.json",)) -> str:
    """Hash of a file, or of a directory's relative paths and file contents (sorted)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file() and q.name not in exclude):
        if any(part.startswith(".") for part in p.relative_to(path).parts):
            continue
        h.update(str(p.relative_to(path)).encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def git_sha() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for lib in _LIBS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[lib] = metadata.version(lib)
    return versions


def code_version() -> dict[str, Any]:
    """The package version, the commit, and whether tracked files differed from it (None: no git)."""
    return {"package": sim2real.__version__, "git_sha": git_sha(), "dirty": git_dirty()}


def git_dirty() -> bool | None:
    """Whether tracked files differ from HEAD: an artifact made so is not exactly its commit."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def utc_now() -> str:
    """Timestamp of manifests and store attributes: UTC, ISO 8601, whole seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temp file and rename, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def read_manifest(stage_dir: str | Path) -> dict[str, Any] | None:
    """A stage's manifest, None when there is none; a garbled one is an error naming the file."""
    p = Path(stage_dir) / "manifest.json"
    if not p.exists():
        return None
    try:
        manifest = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        from sim2real.errors import UserError

        raise UserError(f"{p}: not valid JSON ({e}); remove it to redo the stage") from e
    if not isinstance(manifest, dict):
        from sim2real.errors import UserError

        raise UserError(f"{p}: not a manifest (a JSON object); remove it to redo the stage")
    return manifest


def inputs_key(config: Mapping[str, Any], parents: Mapping[str, str]) -> str:
    """Identity of a stage's inputs: its config and its parents' hashes."""
    blob = json.dumps({"config": config, "parents": dict(parents)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class StageRun:
    """What a running stage adds to its manifest (output hashes, summary figures)."""

    outputs: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def stage_run(
    out_dir: str | Path,
    stage: str,
    config: Mapping[str, Any],
    seed: int,
    parents: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """Create `out_dir`, keep its manifest.json current, and mark it finished or failed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parents = dict(parents or {})
    manifest: dict[str, Any] = {
        "stage": stage,
        "status": "running",
        "config": dict(config),
        "seed": seed,
        "parents": parents,
        "inputs_key": inputs_key(config, parents),
        "code": code_version(),
        "libraries": library_versions(),
        "started": utc_now(),
        "ended": None,
    }
    write_json_atomic(out_dir / "manifest.json", manifest)
    run = StageRun()
    start = time.monotonic()
    try:
        yield run
    except BaseException as e:
        manifest.update(status="failed", error=f"{type(e).__name__}: {e}")
        raise
    else:
        manifest["status"] = "finished"
    finally:
        manifest.update(
            ended=utc_now(),
            seconds=round(time.monotonic() - start, 2),
            outputs=run.outputs,
            summary=run.summary,
        )
        write_json_atomic(out_dir / "manifest.json", manifest)
