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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sim2real.artifacts import RunLayout, inputs_key, read_manifest, write_json_atomic
from sim2real.config import Config
from sim2real.stages import PIPELINE, STAGES, decisive_config, load


def run(cfg: Config) -> None:
    layout = RunLayout(cfg.run_dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    state = _read_state(layout)
    parent_key, timings = "", {}
    stages = [s for s in PIPELINE if _runs(cfg, s)]
    # every stage's code imported now: an edit to the checkout during a long run cannot give its later
    # stages other code than its first (a validate stage once met a changed signature an hour in)
    runners = {stage: load(STAGES[stage].target) for stage in stages}
    for i, stage in enumerate(stages, 1):
        key = _stage_key(cfg, stage, parent_key)
        out = layout.stage(stage)
        if _finished(out, state.get(stage), key):
            print(f"[{i}/{len(stages)}] {stage}: finished earlier with the same inputs, skipped")
            timings[stage] = 0.0
        else:
            runner, recorded = runners[stage], state.get(stage)
            timings[stage] = _run_stage(cfg, runner, stage, out, recorded, key, i, len(stages))
            state[stage] = key
            write_json_atomic(layout.pipeline_state, state)
        parent_key = key
    _summary(layout, timings)


def _runs(cfg: Config, stage: str) -> bool:
    """Optional stages: the teacher only for `expert=teacher`, fine-tuning only when configured."""
    if stage == "train-teacher":
        return cfg.expert.kind == "teacher"
    return stage != "finetune" or cfg.finetune.enabled


def _stage_key(cfg: Config, stage: str, parent_key: str) -> str:
    """Identity of a stage's inputs: what decides its output, and the stage before it."""
    return inputs_key(decisive_config(cfg, stage), {"parent": parent_key})


def _finished(out: Path, recorded: str | None, key: str) -> bool:
    m = read_manifest(out) if out.is_dir() else None
    return recorded == key and bool(m) and m.get("status") == "finished"


def _run_stage(
    cfg: Config,
    runner: Callable[[Config], None],
    stage: str,
    out: Path,
    recorded: str | None,
    key: str,
    i: int,
    n: int,
) -> float:
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
            _drop_dagger_episodes(RunLayout(cfg.run_dir))
        rounds = cfg.pipeline.dagger_rounds
        stage_cfg = dataclasses.replace(
            stage_cfg, distill=dataclasses.replace(cfg.distill, dagger_rounds=rounds)
        )
    start = time.monotonic()
    runner(stage_cfg)
    seconds = time.monotonic() - start
    print(f"[{i}/{n}] {stage}: done in {seconds:.0f}s", flush=True)
    return seconds


def _drop_dagger_episodes(layout: RunLayout) -> None:
    """A distill re-run starts from the collected demonstrations, not an earlier run's DAgger rounds."""
    from sim2real.data.store import DemoStore

    collected = (read_manifest(layout.demos) or {}).get("summary", {}).get("episodes")
    if collected is None:
        return
    with DemoStore.open(layout.demos, mode="a") as store:
        if store.num_episodes > collected:
            print(f"distill: dropping {store.num_episodes - collected} DAgger episodes of an earlier run")
            store.truncate(collected)


def _move_aside(out: Path) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    dest = RunLayout(out.parent).stale / f"{out.name}-{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(out), dest)
    print(f"inputs changed: moved the old {out.name} to {dest}")


def _read_state(layout: RunLayout) -> dict:
    p = layout.pipeline_state
    return json.loads(p.read_text()) if p.exists() else {}


def _summary(layout: RunLayout, timings: dict[str, float]) -> None:
    rep_path = layout.report
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
        pub = rep.get("published")
        if pub and "student" in pub:
            print(f"student vs {pub['label']} on nominal dynamics: {pub['student']:.2f} (same normalization)")
        print(f"gate: {'PASSED' if rep['gate']['passed'] else 'FAILED'}")
        print(f"artifact: {rep['artifact']} (sha256 {rep['artifact_sha256'][:16]}...)")
        print(f"report: {layout.report_md}")
    print("time per stage: " + ", ".join(f"{s} {t:.0f}s" for s, t in timings.items()))
