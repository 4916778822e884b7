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

# sub-directory (or file) of the run dir each stage writes
STAGE_DIRS = {
    "train-teacher": "teacher",
    "collect": "demos.zarr",
    "distill": "student",
    "export": "export",
    "validate": "validation",
}
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


def code_version() -> dict[str, str | None]:
    return {"package": sim2real.__version__, "git_sha": git_sha()}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temp file and rename, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def read_manifest(stage_dir: str | Path) -> dict[str, Any] | None:
    p = Path(stage_dir) / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else None


def inputs_key(config: Mapping[str, Any], parents: Mapping[str, str]) -> str:
    """Identity of a stage's inputs: its config and its parents' hashes."""
    blob = json.dumps({"config": config, "parents": dict(parents)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def is_finished(stage_dir: str | Path, key: str) -> bool:
    m = read_manifest(stage_dir)
    return bool(m) and m.get("status") == "finished" and m.get("inputs_key") == key


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
        "started": _now(),
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
            ended=_now(), seconds=round(time.monotonic() - start, 2), outputs=run.outputs, summary=run.summary
        )
        write_json_atomic(out_dir / "manifest.json", manifest)
