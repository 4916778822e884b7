"""`sim2real export` on a real (untrained, perturbed) student: files, metadata, parity, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnx
import pytest
import torch
from torch import nn

import envs
from sim2real.artifacts import read_manifest, sha256_file
from sim2real.config import Config, LoggerConfig
from sim2real.deploy import load_policy, load_window_policy
from sim2real.errors import UserError
from sim2real.export import ExportError, build_metadata, parity_check, run, write_export
from sim2real.student.checkpoint import build_model, save_student
from sim2real.student.model import ModelConfig

ROOT = Path(__file__).resolve().parent.parent


def make_student(student_dir: Path, arch: str = "transformer", seed: int = 0) -> nn.Module:
    env = gym.make(envs.env_id("pendulum"))
    u = env.unwrapped
    cfg = ModelConfig(
        arch=arch,
        obs_dim=len(u.student_names),
        action_dim=len(u.action_names),
        attn_window=6,
        n_layer=2,
        n_head=2,
        n_embd=16,
        obs_names=list(u.student_names),
        action_names=list(u.action_names),
        task="pendulum",
        control_dt=u.dt,
        history=16,
    )
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():  # an untrained student acts ~0; perturb it so parity compares real signals
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    save_student(student_dir, model)
    return model.eval()


def config(run_dir: Path, **export) -> Config:
    cfg = Config(run_dir=str(run_dir), logger=LoggerConfig(kind="none"))
    cfg.export.parity_episodes = 1
    for k, v in export.items():
        setattr(cfg.export, k, v)
    return cfg


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("export") / "run"
    model = make_student(run_dir / "student")
    run(config(run_dir))
    return run_dir, model


def test_export_writes_every_format_and_records_parity(exported):
    run_dir, _ = exported
    out = run_dir / "export"
    for name in ("policy.onnx", "policy_window.onnx", "policy.pt", "policy.json", "manifest.json"):
        assert (out / name).is_file(), name
    manifest = read_manifest(out)
    assert manifest["status"] == "finished"
    summary = manifest["summary"]
    assert summary["steps"] == 200 and summary["episodes"] == 1
    for fmt in ("onnx", "window_onnx", "torchscript"):
        assert summary[f"max_abs_{fmt}"] <= 1e-4
    assert manifest["parents"]["student"] == sha256_file(run_dir / "student" / "model.safetensors")


def test_metadata_names_the_checkpoint_the_file_and_the_layout(exported):
    run_dir, model = exported
    out = run_dir / "export"
    meta = json.loads((out / "policy.json").read_text())
    assert meta["checkpoint_sha256"] == sha256_file(run_dir / "student" / "model.safetensors")
    assert meta["onnx_sha256"] == meta["artifact_sha256"] == sha256_file(out / "policy.onnx")
    assert meta["obs_names"] == ["pole/cos", "pole/sin", "prev_action/torque"]
    assert meta["history"] == model.receptive_field() > 1 and meta["state_dim"] == model.state_size()
    assert meta["model"]["arch"] == "transformer" and meta["control_dt"] == 0.05
    assert meta["action_low"] == [-1.0] and meta["action_high"] == [1.0]
    props = {p.key: p.value for p in onnx.load(str(out / "policy.onnx")).metadata_props}
    inner = json.loads(props["sim2real"])
    assert inner["checkpoint_sha256"] == meta["checkpoint_sha256"] and "onnx_sha256" not in inner
    extra = {"policy.json": ""}
    with warnings.catch_warnings():  # torch.jit is deprecated; still the second format asked for
        warnings.simplefilter("ignore")
        torch.jit.load(str(out / "policy.pt"), _extra_files=extra)
    assert json.loads(extra["policy.json"])["obs_names"] == meta["obs_names"]


def test_runtime_matches_torch_and_window_recompute_beyond_the_receptive_field(exported):
    run_dir, model = exported
    policy, window = load_policy(run_dir / "export"), load_window_policy(run_dir / "export")
    stream, state = model.streaming(), torch.zeros(1, model.state_size())
    obs = np.random.default_rng(1).normal(size=(60, 3)).astype(np.float32)  # longer than H
    with torch.no_grad():
        for o in obs:
            ref, state = stream(torch.from_numpy(o)[None], state)
            a = policy.act(o)
            np.testing.assert_allclose(a, ref[0].numpy(), atol=1e-4)
            np.testing.assert_allclose(window.act(o), a, atol=1e-4)


def test_export_failing_parity_fails_loudly_and_leaves_nothing_loadable(tmp_path):
    make_student(tmp_path / "student", seed=1)
    with pytest.raises(ExportError, match=r"parity check failed \(atol 1e-12\): onnx: max \|torch - onnx\|"):
        run(config(tmp_path, parity_atol=1e-12, torchscript=False))
    assert read_manifest(tmp_path / "export")["status"] == "failed"
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "export")


class _Branchy(nn.Module):
    """Python control flow on data: tracing records one branch, so the ONNX file computes another."""

    def __init__(self):
        super().__init__()
        from test_deploy_policy import TinyPolicy

        self.inner = TinyPolicy(history=1)
        self.cfg = self.inner.cfg

    def receptive_field(self):
        return 1

    def state_size(self):
        return 1

    def streaming(self):
        return _BranchyStep()

    def window(self):
        return self.inner.window()


class _BranchyStep(nn.Module):
    def forward(self, obs, state):
        if obs.sum() > 0:  # traced with zeros: the export always takes the else branch
            return torch.tanh(obs[:, :1]), state
        return -torch.tanh(obs[:, :1]), state


def test_parity_check_catches_an_export_that_computes_something_else(tmp_path):
    model = _Branchy()
    write_export(
        tmp_path, model, build_metadata(model, [-1.0], [1.0], "0" * 64), window=False, torchscript=False
    )
    env = gym.make(envs.env_id("pendulum"))
    with pytest.raises(
        ExportError, match=r"onnx: max \|torch - onnx\| = .* at episode 0 \(seed 0\) step \d+"
    ):
        parity_check(tmp_path, model, env, episodes=1, seed=0, atol=1e-4)


def test_missing_student_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="sim2real distill"):
        run(config(tmp_path))


def test_student_of_unfinished_training_is_refused(tmp_path):
    make_student(tmp_path / "student")
    (tmp_path / "student" / "manifest.json").write_text(json.dumps({"stage": "distill", "status": "running"}))
    with pytest.raises(UserError, match="status 'running'"):
        run(config(tmp_path))


def test_student_of_another_task_is_refused(tmp_path):
    make_student(tmp_path / "student")
    cfg = config(tmp_path)
    cfg.task.name = "hopper"
    with pytest.raises(UserError, match="task 'pendulum', not task='hopper'"):
        run(cfg)


def test_mlp_student_exports_with_its_unused_state(tmp_path):
    make_student(tmp_path / "student", arch="mlp")
    run(config(tmp_path, window=False, torchscript=False))
    policy = load_policy(tmp_path / "export")
    assert policy.spec.state_dim == 1 and policy.spec.history == 1


@pytest.mark.slow
def test_cli_deploy_sim_runs_the_export_and_logs_privileged_data(exported):
    run_dir, _ = exported
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim2real",
            "deploy",
            f"run_dir={run_dir}",
            "logger=none",
            "deploy.force=true",
            "deploy.rate_hz=1000",
            "deploy.dynamics.mass_scale=1.2",
            "deploy.soft_start_s=0",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "deploy: episode 0: 200 steps" in out.stdout and "faults none" in out.stdout
    from sim2real.data.store import DemoStore

    store = DemoStore.open(next((run_dir / "deploy").glob("*.zarr")))
    arrays = store.load_arrays()
    assert arrays["privileged_obs"].shape == (200, 7)
    assert arrays["episode_dynamics"][0, store.spec.dynamics_names.index("mass_scale")] == pytest.approx(1.2)
    assert np.isfinite(arrays["reward"]).all() and store.sources[0]["forced"] is True


def test_cli_deploy_refuses_an_unvalidated_export(exported):
    run_dir, _ = exported
    out = subprocess.run(
        [sys.executable, "-m", "sim2real", "deploy", f"run_dir={run_dir}", "logger=none"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert out.returncode == 2 and "validation report" in out.stderr and "deploy.force=true" in out.stderr


def test_bare_export_beside_a_finetuned_student_says_which_one_it_ships(tmp_path, capsys):
    run_dir = tmp_path / "run"
    make_student(run_dir / "student", seed=0)
    make_student(run_dir / "finetune", seed=1)  # what `sim2real finetune finetune.steps=N` leaves
    run(config(run_dir))  # finetune.steps=0: the distilled student, and a line saying so
    err = capsys.readouterr().err
    assert f"{run_dir / 'finetune'} holds a fine-tuned student" in err and "finetune.steps=N" in err
    meta = json.loads((run_dir / "export" / "policy.json").read_text())
    assert meta["checkpoint_sha256"] == sha256_file(run_dir / "student" / "model.safetensors")
