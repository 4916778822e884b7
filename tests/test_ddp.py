"""Data-parallel distillation: 2 processes under torchrun (gloo, CPU) follow the 1-process trajectory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from omegaconf import OmegaConf
from safetensors.torch import load_file

from sim2real.config import Config
from sim2real.data.sampler import WindowSampler
from sim2real.data.schema import StoreSpec
from sim2real.data.store import DemoStore
from sim2real.errors import UserError
from sim2real.student import checkpoint as ckpt
from sim2real.student.config import StudentConfig
from sim2real.student.distributed import World, resolve_backend, shard, sharded_masked_mse
from sim2real.student.model import ModelConfig
from sim2real.student.optim import masked_mse
from sim2real.student.rollout import make_envs, rollout
from sim2real.student.train import run
from sim2real.teacher.expert import ScriptedPendulumExpert

DDP_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
DISTILL = [
    "task=pendulum", "expert=scripted", "logger=local", "student.n_embd=16", "student.n_head=2",
    "distill.batch_size=32", "distill.warmup_steps=5", "distill.log_every=1", "distill.val_every=0",
    "distill.eval_every=0", "distill.eval_episodes=0", "distill.checkpoint_every=0",
    "distill.steps=12", "distill.dagger_rounds=1", "distill.dagger_steps=8", "distill.dagger_episodes=2",
]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A real Zarr store of 4 scripted-expert pendulum episodes under the default randomization."""
    path = tmp_path_factory.mktemp("demos") / "demos.zarr"
    ranges = OmegaConf.to_object(OmegaConf.structured(Config)).task.ranges()
    env_list = make_envs("pendulum", ranges, 4)
    eps = rollout(env_list, [0, 1, 2, 3], expert=ScriptedPendulumExpert(), beta=1.0)
    with DemoStore.create(path, StoreSpec.from_env(env_list[0])) as demos:
        demos.append_episodes(eps, source={"kind": "expert", "expert": "scripted:pendulum"})
    return path


def distill(launcher: list[str], run_dir: Path, data: Path, cwd: Path) -> Path:
    """`sim2real distill` in a subprocess (one process, or torchrun's workers); returns the student dir."""
    env = {k: v for k, v in os.environ.items() if k not in DDP_ENV}
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="disabled", MUJOCO_GL="disable")
    cwd.mkdir()
    args = [*launcher, "-m", "sim2real", "distill", f"run_dir={run_dir}", f"data={data}", *DISTILL]
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    assert not any(cwd.iterdir()), "a process wrote into its working directory"
    return run_dir / "student"


def losses(student: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (student / "distill.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def files(run_dir: Path) -> set[str]:
    """Relative paths, with the timestamped Hydra log dir named by its depth only."""
    out = set()
    for p in run_dir.rglob("*"):
        parts = list(p.relative_to(run_dir).parts)
        if parts[:2] == ["logs", "distill"] and len(parts) > 2:
            parts[2] = "<time>"
        out.add("/".join(parts))
    return out


@pytest.mark.slow
def test_two_torchrun_processes_follow_the_one_process_loss_trajectory(tmp_path, store):
    one_data, two_data = tmp_path / "one.zarr", tmp_path / "two.zarr"
    shutil.copytree(store, one_data), shutil.copytree(store, two_data)  # the DAgger round appends
    one = distill([sys.executable], tmp_path / "one", one_data, tmp_path / "cwd1")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    two = distill(torchrun, tmp_path / "two", two_data, tmp_path / "cwd2")

    a, b = losses(one), losses(two)
    assert sorted(a) == sorted(b) == list(range(1, 21))  # BC steps 1..12, DAgger round 1 steps 13..20
    np.testing.assert_allclose([b[s] for s in a], [a[s] for s in a], rtol=1e-4, atol=0)
    wa, wb = load_file(str(one / ckpt.MODEL_FILE)), load_file(str(two / ckpt.MODEL_FILE))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5, msg=k)
    # rank 0 alone ran the DAgger rollouts and wrote: the same files, one Hydra log dir, one manifest
    assert DemoStore.open(two_data).num_episodes == DemoStore.open(one_data).num_episodes == 4 + 2
    assert files(tmp_path / "two") == files(tmp_path / "one")
    assert len(list((tmp_path / "two" / "logs" / "distill").iterdir())) == 1
    assert json.loads((two / "manifest.json").read_text())["status"] == "finished"


def test_batch_not_divisible_by_the_processes_is_an_error_naming_the_key(tmp_path, store, monkeypatch):
    (
        monkeypatch.setenv("WORLD_SIZE", "3"),
        monkeypatch.setenv("RANK", "0"),
        monkeypatch.setenv("LOCAL_RANK", "0"),
    )
    conf = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.from_dotlist(["distill.batch_size=32"]))
    cfg = OmegaConf.to_object(conf)
    cfg.run_dir, cfg.data = str(tmp_path / "run"), str(store)
    with pytest.raises(UserError, match=r"distill\.batch_size=32 .*WORLD_SIZE=3"):
        run(cfg)
    assert not dist.is_initialized() and not (tmp_path / "run").exists()


def test_sharded_losses_average_to_the_full_batch_gradient(store):
    """Shards with different label counts (padding at episode starts): the mean of the ranks' gradients
    is the full-batch gradient only with the global-count normalization."""
    with DemoStore.open(store) as demos:
        spec, arrays = demos.spec, demos.load_arrays()
    torch.manual_seed(0)
    mc = ModelConfig.from_student(StudentConfig(), spec.student_names, spec.action_names, "pendulum", 0.05)
    model = ckpt.build_model(mc)
    batch = WindowSampler(arrays, 16).gather(torch.tensor([0, 1, 2, 3, 50, 90, 130, 170]))
    assert shard(batch, World(0, 2)).mask.sum() != shard(batch, World(1, 2)).mask.sum()

    def grads(loss: torch.Tensor) -> list[torch.Tensor]:
        return torch.autograd.grad(loss, list(model.parameters()))

    full = masked_mse(model(batch.obs, batch.mask), model.normalizer.action(batch.action), batch.mask)
    parts = []
    for rank in (0, 1):
        part = shard(batch, World(rank, 2))
        target = model.normalizer.action(part.action)
        parts.append(
            sharded_masked_mse(model(part.obs, part.mask), target, part.mask, batch.mask, World(rank, 2))
        )
    torch.testing.assert_close((parts[0] + parts[1]) / 2, full)
    for g_full, g0, g1 in zip(grads(full), grads(parts[0]), grads(parts[1]), strict=True):
        torch.testing.assert_close((g0 + g1) / 2, g_full)


def test_world_comes_from_torchrun_environment_and_backend_from_device(monkeypatch):
    for key in DDP_ENV:
        monkeypatch.delenv(key, raising=False)
    assert World.from_env() == World(0, 1, 0) and not World.from_env().distributed
    (
        monkeypatch.setenv("WORLD_SIZE", "4"),
        monkeypatch.setenv("RANK", "3"),
        monkeypatch.setenv("LOCAL_RANK", "1"),
    )
    assert World.from_env() == World(rank=3, size=4, local_rank=1)
    assert resolve_backend(None, torch.device("cpu")) == "gloo"
    assert resolve_backend(None, torch.device("cuda", 0)) == "nccl"
    with pytest.raises(UserError, match=r"distill\.ddp_backend=nccl"):
        resolve_backend("nccl", torch.device("cpu"))
    with pytest.raises(UserError, match=r"distill\.ddp_backend='tcp'"):
        resolve_backend("tcp", torch.device("cpu"))
