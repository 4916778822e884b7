"""Students' envs stepped one by one (Gymnasium) or batched (`mujoco.batch`): env steps/s, one run.

Two workloads per task, each timed on both kinds of `envs.lockstep` taking turns, so one run gives the
ratio: `envs` steps n envs with random actions and reads both observations (what the simulation side
costs), `finetune` is fine-tuning's rollout (`EnvRunner.collect`: the student's streaming step, its
Gaussian exploration and the critic on every step) with an untrained student of the task's recipe size.
Both kinds give the same episodes bit for bit (tests/test_lockstep.py), so only the time differs.

    python benchmarks/lockstep.py [--tasks hopper walker2d halfcheetah ant go2] [--envs 16] [--steps 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from envs import lockstep
from sim2real.cli import CONF_DIR
from sim2real.config import register
from sim2real.finetune.ppo import Critic
from sim2real.finetune.rollout import EnvRunner
from sim2real.student.checkpoint import build_model
from sim2real.student.model import ModelConfig

KINDS = ("gym", "batch")


def student_of(task: str, sims: lockstep.Lockstep) -> torch.nn.Module:
    """An untrained transformer of the task's recipe size (`student.*` after `task=<task>`)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_object(compose("config", overrides=[f"task={task}"]))
    s = cfg.student
    sims.reset(range(sims.n), list(range(sims.n)))
    ds, da = sims.observe()[0].shape[1], len(sims.action_low)
    names = [f"o{i}" for i in range(ds)], [f"a{i}" for i in range(da)]
    model = ModelConfig.from_student(s, *names, task=task, control_dt=0.01)
    torch.manual_seed(0)
    return build_model(model).eval()


def time_envs(sims: lockstep.Lockstep, steps: int) -> float:
    """Env steps/s of `steps` lockstep steps with random actions, ended episodes reset."""
    rng, seed = np.random.default_rng(0), 1000
    sims.reset(range(sims.n), list(range(sims.n)))
    t0 = time.perf_counter()
    for _ in range(steps):
        sims.observe()
        act = rng.uniform(-1, 1, (sims.n, len(sims.action_low))).astype(np.float32)
        _, term, trunc = sims.step(act)
        ended = np.flatnonzero(term | trunc)
        sims.reset(ended, list(range(seed, seed + ended.size)))
        seed += ended.size
    return steps * sims.n / (time.perf_counter() - t0)


def time_finetune(sims: lockstep.Lockstep, student: torch.nn.Module, steps: int) -> float:
    """Env steps/s of fine-tuning's rollouts: `steps` control steps of every env in rollouts of 128."""
    critic = Critic(sims.privileged_dim)
    runner = EnvRunner(sims, student, iter(range(10**6)), student.receptive_field() - 1)
    log_std = torch.full((len(sims.action_low),), np.log(0.1))
    t0 = time.perf_counter()
    for _ in range(max(1, steps // 128)):
        runner.collect(128, log_std, critic, 0.99)
    return max(1, steps // 128) * 128 * sims.n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["hopper", "walker2d", "halfcheetah", "ant", "go2"])
    p.add_argument("--envs", type=int, default=16, help="envs in lockstep (finetune.n_envs: 16)")
    p.add_argument("--steps", type=int, default=512, help="control steps of every env per measurement")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (finetune.threads)")
    args = p.parse_args()
    register()
    torch.set_num_threads(args.threads)
    print(f"{args.envs} envs, {args.steps} control steps each, torch threads {args.threads}")
    print("| task | workload | gym env steps/s | batch env steps/s | batch / gym |")
    print("|---|---|---|---|---|")
    for task in args.tasks:
        sims = {k: lockstep.make(task, None, args.envs, k) for k in KINDS}
        student = student_of(task, sims["gym"])
        for name, run in (("envs", time_envs), ("finetune", time_finetune)):
            rate = {}
            for k in KINDS:  # a short warm-up, then the timed run, taking turns
                args_ = (sims[k], student) if name == "finetune" else (sims[k],)
                run(*args_, 128)
                rate[k] = run(*args_, args.steps)
            print(f"| {task} | {name} | {rate['gym']:,.0f} | {rate['batch']:,.0f} | "
                  f"{rate['batch'] / rate['gym']:.2f} |", flush=True)  # fmt: skip
        for s in sims.values():
            s.close()


if __name__ == "__main__":
    main()
