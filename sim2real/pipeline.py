"""`sim2real pipeline`: teacher → demos → student (+ DAgger) → export → validate, in one command.

A stage is skipped when its manifest says it finished and the identity of its inputs (its config
sections and the identity of the stage before it) is unchanged. A stage killed mid-way has a manifest
that says "running" and is run again; teacher training and collection pick up where they stopped.
Outputs of a stage whose inputs changed are moved aside (`<run_dir>/.stale/`), never silently reused.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from sim2real.artifacts import STAGE_DIRS, inputs_key, read_manifest, write_json_atomic
from sim2real.cli import STAGES, _load
from sim2real.config import Config

# stage -> the config sections that decide its output
SECTIONS: dict[str, tuple[str, ...]] = {
    "train-teacher": ("task", "teacher", "seed"),
    "collect": ("task", "expert", "collect", "seed"),
    "distill": ("task", "student", "distill", "pipeline", "seed"),
    "export": ("export",),
    "validate": ("task", "validate", "expert"),
}
# fields that say how a stage runs, not what it produces: changing them does not rerun the stage
EXECUTION_ONLY: dict[str, tuple[str, ...]] = {
    "collect": ("backend", "ray_address", "workers", "progress", "commit_seconds"),
    "validate": ("backend", "ray_address", "workers"),
    "distill": ("ddp_backend", "ddp_timeout_s", "log_every"),
}
STATE_FILE = "pipeline.json"


def run(cfg: Config) -> None:
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = _read_state(run_dir)
    parent_key, timings = "", {}
    stages = [s for s in SECTIONS if s != "train-teacher" or cfg.expert.kind == "teacher"]
    for i, stage in enumerate(stages, 1):
        key = _stage_key(cfg, stage, parent_key)
        out = run_dir / STAGE_DIRS[stage]
        if _finished(out, state.get(stage), key):
            print(f"[{i}/{len(stages)}] {stage}: finished earlier with the same inputs, skipped")
            timings[stage] = 0.0
        else:
            timings[stage] = _run_stage(cfg, stage, out, state.get(stage), key, i, len(stages))
            state[stage] = key
            write_json_atomic(run_dir / STATE_FILE, state)
        parent_key = key
    _summary(run_dir, timings)


def _stage_key(cfg: Config, stage: str, parent_key: str) -> str:
    conf = {s: _plain(getattr(cfg, s)) for s in SECTIONS[stage]}
    for section, fields in EXECUTION_ONLY.items():
        if isinstance(conf.get(section), dict):
            conf[section] = {k: v for k, v in conf[section].items() if k not in fields}
    return inputs_key(conf, {"parent": parent_key})


def _plain(v):
    return dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v


def _finished(out: Path, recorded: str | None, key: str) -> bool:
    m = read_manifest(out) if out.is_dir() else None
    return recorded == key and bool(m) and m.get("status") == "finished"


def _run_stage(cfg: Config, stage: str, out: Path, recorded: str | None, key: str, i: int, n: int) -> float:
    if out.exists() and recorded not in (None, key):
        _move_aside(out)
    resuming = out.exists()
    note = " (resuming an unfinished run)" if resuming else ""
    print(f"[{i}/{n}] {stage}{note}...", flush=True)
    stage_cfg = dataclasses.replace(cfg, stage=stage)
    if stage == "collect" and resuming:
        stage_cfg = dataclasses.replace(stage_cfg, collect=dataclasses.replace(cfg.collect, resume=True))
    if stage == "distill":
        if not resuming:
            _drop_dagger_episodes(out.parent)
        rounds = cfg.pipeline.dagger_rounds
        stage_cfg = dataclasses.replace(
            stage_cfg, distill=dataclasses.replace(cfg.distill, dagger_rounds=rounds)
        )
    start = time.monotonic()
    _load(STAGES[stage][0])(stage_cfg)
    seconds = time.monotonic() - start
    print(f"[{i}/{n}] {stage}: done in {seconds:.0f}s", flush=True)
    return seconds


def _drop_dagger_episodes(run_dir: Path) -> None:
    """A distill re-run starts from the collected demonstrations, not an earlier run's DAgger rounds."""
    from sim2real.data.store import DemoStore

    collected = (read_manifest(run_dir / STAGE_DIRS["collect"]) or {}).get("summary", {}).get("episodes")
    if collected is None:
        return
    with DemoStore.open(run_dir / STAGE_DIRS["collect"], mode="a") as store:
        if store.num_episodes > collected:
            print(f"distill: dropping {store.num_episodes - collected} DAgger episodes of an earlier run")
            store.truncate(collected)


def _move_aside(out: Path) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    dest = out.parent / ".stale" / f"{out.name}-{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(out), dest)
    print(f"inputs changed: moved the old {out.name} to {dest}")


def _read_state(run_dir: Path) -> dict:
    p = run_dir / STATE_FILE
    return json.loads(p.read_text()) if p.exists() else {}


def _summary(run_dir: Path, timings: dict[str, float]) -> None:
    rep_path = run_dir / "validation" / "report.json"
    print("\n== pipeline summary ==")
    if rep_path.exists():
        rep = json.loads(rep_path.read_text())
        train = rep["metrics"].get("train", {})
        for policy in ("teacher", "student", "random"):
            if policy in train:
                s = train[policy]
                print(
                    f"{policy:>8} return (training randomization): {s['mean']:.1f} "
                    f"[{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}], failure {s['failure_rate']:.0%}"
                )
        if "ratio" in train:
            print(f"student score vs teacher: {train['ratio']['mean']:.3f} (1 = teacher, 0 = random)")
        print(f"gate: {'PASSED' if rep['gate']['passed'] else 'FAILED'}")
        print(f"artifact: {rep['artifact']} (sha256 {rep['artifact_sha256'][:16]}...)")
        print(f"report: {run_dir / 'validation' / 'report.md'}")
    print("time per stage: " + ", ".join(f"{s} {t:.0f}s" for s, t in timings.items()))
