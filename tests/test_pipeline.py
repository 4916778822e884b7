"""End-to-end: the one-command pipeline on tiny budgets, stage skipping, and resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

TINY = [
    "task=pendulum",
    "logger=none",
    "teacher.total_timesteps=600",
    "teacher.eval_freq=0",
    "teacher.checkpoint_freq=0",
    "teacher.progress=false",
    "collect.episodes=8",
    "collect.progress=false",
    "distill.steps=40",
    "distill.val_every=20",
    "distill.eval_episodes=2",
    "pipeline.dagger_rounds=1",
    "distill.dagger_episodes=2",
    "distill.dagger_steps=20",
    "validate.episodes=4",
    "validate.sweeps=false",
    "validate.stress=false",
    "validate.workers=1",
]


def _pipeline(run_dir: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sim2real", "pipeline", f"run_dir={run_dir}", *TINY, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_pipeline_runs_every_stage_then_skips_finished_ones(tmp_path):
    run = tmp_path / "run"
    first = _pipeline(run)
    for path in (
        "teacher/manifest.json",
        "demos.zarr",
        "student/model.safetensors",
        "export/policy.onnx",
        "validation/report.json",
        "validation/report.md",
    ):
        assert (run / path).exists(), path
    assert "pipeline summary" in first.stdout and "gate:" in first.stdout
    report = json.loads((run / "validation/report.json").read_text())
    from sim2real.artifacts import sha256_file

    assert report["artifact_sha256"] == sha256_file(run / "export/policy.onnx")
    second = _pipeline(run)
    assert second.stdout.count("skipped") == 5, second.stdout
    third = _pipeline(run, "validate.episodes=5")
    assert third.stdout.count("skipped") == 4 and "validate: gate" in third.stdout


@pytest.mark.slow
def test_pipeline_resumes_after_a_killed_collection(tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "sim2real",
        "pipeline",
        f"run_dir={run}",
        *TINY,
        "collect.episodes=60",
        "collect.commit_seconds=0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    store = run / "demos.zarr"
    deadline = time.monotonic() + 300
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            committed = zarr.open_group(str(store), mode="r")["meta/episode_ends"].shape[0]
        except Exception:
            committed = 0
        if committed >= 2:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    proc.wait(timeout=30)
    assert committed >= 2, "collection never committed two episodes before the deadline"
    before = np.asarray(zarr.open_group(str(store), mode="r")["data/student_obs"][:10])
    out = _pipeline(run, "collect.episodes=60", "collect.commit_seconds=0")
    assert "train-teacher: finished earlier with the same inputs, skipped" in out.stdout
    assert "collect (resuming" in out.stdout
    g = zarr.open_group(str(store), mode="r")
    assert g["meta/episode_ends"].shape[0] >= 60
    assert np.array_equal(np.asarray(g["data/student_obs"][:10]), before)


def test_switching_to_ray_or_more_workers_does_not_rerun_a_finished_stage():
    import dataclasses

    from sim2real.config import Config
    from sim2real.pipeline import _stage_key

    base = Config()
    ray = dataclasses.replace(
        base, collect=dataclasses.replace(base.collect, backend="ray", workers=8, ray_address="auto")
    )
    more = dataclasses.replace(
        base, collect=dataclasses.replace(base.collect, episodes=base.collect.episodes + 1)
    )
    assert _stage_key(ray, "collect", "p") == _stage_key(base, "collect", "p")
    assert _stage_key(more, "collect", "p") != _stage_key(base, "collect", "p")
    assert _stage_key(base, "collect", "q") != _stage_key(base, "collect", "p")


def test_pipeline_imports_every_stage_before_running_the_first(tmp_path, monkeypatch):
    """A stage whose code cannot load stops the pipeline before the teacher trains: no stage later in
    the run imports code the checkout has since changed."""
    import dataclasses

    from sim2real import pipeline, stages
    from sim2real.config import Config, LoggerConfig

    broken = dataclasses.replace(stages.STAGES["validate"], target="sim2real.no_such_module:run")
    monkeypatch.setitem(stages.STAGES, "validate", broken)
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        pipeline.run(Config(run_dir=str(tmp_path / "run"), logger=LoggerConfig("none")))
    assert not (tmp_path / "run" / "teacher").exists()


def test_summary_places_the_student_against_the_tasks_published_agent(tmp_path, capsys):
    from sim2real.artifacts import RunLayout
    from sim2real.pipeline import _summary

    layout = RunLayout(tmp_path)
    layout.report.parent.mkdir(parents=True)
    pub = {"label": "RL Zoo PPO Hopper-v3", "mean_return": 2410.4, "student": 0.6634, "teacher": 0.52}
    rep = {"metrics": {}, "gate": {"passed": True}, "artifact": "a.onnx", "artifact_sha256": "0" * 64}
    layout.report.write_text(json.dumps({**rep, "published": pub}))
    _summary(layout, {})
    assert "student vs RL Zoo PPO Hopper-v3 on nominal dynamics: 0.66" in capsys.readouterr().out
    layout.report.write_text(json.dumps(rep))  # a task with no published agent: no such line
    _summary(layout, {})
    assert "RL Zoo" not in capsys.readouterr().out
