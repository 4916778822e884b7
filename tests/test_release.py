"""`sim2real release`: a cleared export becomes a deployable `release/<task>/`; a failed gate, not."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from test_deploy_policy import tiny_export

import envs
from sim2real.artifacts import sha256_file
from sim2real.deploy import load_policy
from sim2real.errors import UserError
from sim2real.release import MANIFEST, release
from sim2real.validate.verdict import require_validated

ROOT = Path(__file__).resolve().parent.parent
RELEASES = sorted(p.parent for p in (ROOT / "release").glob("*/policy.onnx"))


@pytest.mark.parametrize("folder", RELEASES, ids=lambda p: p.name)
def test_committed_release_is_the_file_its_report_cleared_and_acts_in_its_task(folder):
    report = json.loads((folder / "validation" / "report.json").read_text())
    assert report["artifact_sha256"] == sha256_file(folder / "policy.onnx") and report["gate"]["passed"]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["command"].startswith("sim2real ") and manifest["commit"] and "seed" in manifest
    assert require_validated(folder, folder.parent)["validated"]
    policy = load_policy(folder)  # through the deploy API, as a robot's computer loads it
    env = gym.make(envs.env_id(policy.spec.task))
    obs, _ = env.reset(seed=0)
    policy.reset()
    for _ in range(50):
        action = policy.act(obs["student"])
        assert action.shape == (policy.spec.action_dim,) and np.isfinite(action).all()
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    env.close()


def _validated_run(tmp_path: Path, passed: bool = True) -> Path:
    run = tmp_path / "run"
    export = tiny_export(run / "export")
    (run / "validation").mkdir()
    report = {
        "artifact_sha256": sha256_file(export / "policy.onnx"),
        "gate": {"passed": passed, "checks": []},
    }
    (run / "validation" / "report.json").write_text(json.dumps(report))
    (run / "validation" / "report.md").write_text("# report\n")
    return run


def test_release_copies_a_cleared_export_with_its_report_and_manifest(tmp_path):
    run = _validated_run(tmp_path)
    out = release(run, tmp_path / "release" / "pendulum", "pendulum", 3, {"seed": 3}, "sim2real pipeline")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "policy.json", "policy.onnx", "validation"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "sim2real pipeline" and manifest["seed"] == 3 and manifest["gate"] is True
    assert manifest["artifact_sha256"] == sha256_file(out / "policy.onnx")
    assert load_policy(out).spec.task == "pendulum"
    # the deploy gate finds the report inside the release folder (its parent holds none)
    assert require_validated(out, out.parent)["validated"]
    assert not (tmp_path / "release" / ".pendulum.partial").exists()


def test_release_refuses_an_export_whose_gate_failed_and_leaves_no_folder(tmp_path):
    run = _validated_run(tmp_path, passed=False)
    with pytest.raises(UserError, match="not released: validation gate failed"):
        release(run, tmp_path / "out", "pendulum", 0, {}, "x")
    assert not (tmp_path / "out").exists()


def test_release_names_the_command_and_commit_that_made_the_artifact(tmp_path):
    run = _validated_run(tmp_path)
    logs = run / "logs" / "pipeline" / "2026-01-01_00-00-00" / ".hydra"
    logs.mkdir(parents=True)
    (logs / "overrides.yaml").write_text("- stage=pipeline\n- task=pendulum\n- seed=3\n")
    code = {"git_sha": "abc123", "dirty": False, "package": "0.1.0"}
    (run / "export" / "manifest.json").write_text(json.dumps({"status": "finished", "code": code}))
    out = release(run, tmp_path / "rel", "pendulum", 3, {}, "sim2real release run_dir=run")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "sim2real pipeline task=pendulum seed=3"
    assert manifest["commit"] == "abc123" and manifest["commit_dirty"] is False
    assert manifest["released_by"] == "sim2real release run_dir=run"


def test_release_cli_files_the_artifact_under_its_own_task_with_the_runs_seed(tmp_path, monkeypatch):
    """`sim2real release run_dir=R` with no task= names the folder after the artifact's task and records
    the seed and config the run was made with, not the release command's defaults."""
    from sim2real.config import Config
    from sim2real.release import run as release_cli

    run = _validated_run(tmp_path)
    meta = json.loads((run / "export" / "policy.json").read_text())
    (run / "export" / "policy.json").write_text(json.dumps({**meta, "task": "go2"}))
    hydra = run / "logs" / "pipeline" / "2026-01-01_00-00-00" / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "overrides.yaml").write_text("- task=go2\n- seed=7\n")
    (hydra / "config.yaml").write_text("seed: 7\ntask:\n  name: go2\n")
    cfg = Config()  # the release command's own: task pendulum, seed 0
    cfg.run_dir = str(run)
    monkeypatch.chdir(tmp_path)
    release_cli(cfg)
    manifest = json.loads((tmp_path / "release" / "go2" / MANIFEST).read_text())
    assert manifest["task"] == "go2" and manifest["seed"] == 7 and manifest["config"]["task"]["name"] == "go2"
    assert manifest["command"] == "sim2real pipeline task=go2 seed=7"
    assert not (tmp_path / "release" / "pendulum").exists()
