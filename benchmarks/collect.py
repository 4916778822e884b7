"""Collection throughput with an expert vs the same envs stepped with random actions (goal: ratio >= 0.7).

Both sides use one vector env (`collect.n_envs` randomized copies, autoreset off, each env reset
with its own seed). "collect" is the whole of `sim2real collect` after start-up: batched expert
inference, per-step buffering and the commits to a Zarr store in a temporary directory. "random"
steps the same envs with random actions and does nothing else. Rounds alternate; each side's best
round gives its steps/s. Experts: the scripted pendulum controller, and the run's teacher when
`--teacher-dir` names a run dir (or its teacher/ dir).

    python benchmarks/collect.py [--task pendulum] [--steps 16000] [--rounds 3] [--n-envs 4]
                                 [--teacher-dir runs/pendulum]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sim2real.config import LoggerConfig
from sim2real.data.collect import collect
from sim2real.data.config import CollectConfig
from sim2real.data.rollout import VectorRollout, make_vector_env
from sim2real.data.schema import StoreSpec
from sim2real.data.store import DemoStore
from sim2real.metrics import MetricLogger
from sim2real.teacher.config import ExpertConfig
from sim2real.teacher.experts import load_expert


def random_steps_per_s(venv, steps: int, seed: int) -> float:
    n = venv.num_envs
    rng = np.random.default_rng(seed)
    space = venv.single_action_space
    venv.reset(seed=[seed + i for i in range(n)])
    start, done_steps = time.perf_counter(), 0
    while done_steps < steps:
        action = rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(np.float32)
        _, _, term, trunc, _ = venv.step(action)
        done_steps += n
        done = term | trunc
        if done.any():
            venv.reset(options={"reset_mask": done})
    return done_steps / (time.perf_counter() - start)


def collect_steps_per_s(venv, expert, steps: int, episode_steps: int, seed: int) -> float:
    c = CollectConfig(episodes=math.ceil(steps / episode_steps), progress=False)
    with (
        tempfile.TemporaryDirectory() as tmp,
        DemoStore.create(Path(tmp) / "d.zarr", StoreSpec.from_env(venv)) as store,
    ):
        sid = store.add_source({"kind": "expert", "expert": expert.name})
        rollout = VectorRollout(venv, expert)
        logger = MetricLogger(LoggerConfig("none"), tmp, "collect")
        start = time.perf_counter()
        collect(store, rollout, c, sid, seed * 10**6, logger)
        return rollout.steps / (time.perf_counter() - start)


def bench(task: str, expert, args) -> tuple[float, float]:
    venv = make_vector_env(task, None, args.n_envs)
    episode_steps = venv.get_attr("spec")[0].max_episode_steps or 1000
    random_steps_per_s(venv, 400, 0)  # warm-up
    best = {"collect": 0.0, "random": 0.0}
    for r in range(args.rounds):
        sides = [
            ("collect", lambda r=r: collect_steps_per_s(venv, expert, args.steps, episode_steps, r)),
            ("random", lambda r=r: random_steps_per_s(venv, args.steps, r)),
        ]
        for name, fn in sides if r % 2 == 0 else sides[::-1]:
            best[name] = max(best[name], fn())
    venv.close()
    return best["collect"], best["random"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="pendulum")
    p.add_argument("--steps", type=int, default=16_000, help="env steps per timed round and side")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n-envs", type=int, default=4)
    p.add_argument("--teacher-dir", type=Path, help="run dir (or its teacher/ dir) whose teacher to time")
    args = p.parse_args()
    torch.set_num_threads(1)
    experts = []
    if args.task == "pendulum":
        experts.append(load_expert(ExpertConfig(kind="scripted"), ".", "pendulum"))
    if args.teacher_dir is not None:
        run_dir = args.teacher_dir.parent if args.teacher_dir.name == "teacher" else args.teacher_dir
        experts.append(load_expert(ExpertConfig(kind="teacher"), run_dir, args.task))
    if not experts:
        p.error("no expert to time: the scripted expert is pendulum-only; pass --teacher-dir")
    print("| task | expert | n_envs | collect (steps/s) | random actions (steps/s) | ratio | ≥ 0.7 |")
    print("|---|---|---:|---:|---:|---:|:---:|")
    for expert in experts:
        fast, base = bench(args.task, expert, args)
        ratio = fast / base
        ok = "yes" if ratio >= 0.7 else "no"
        cells = [args.task, expert.name, args.n_envs, f"{fast:,.0f}", f"{base:,.0f}", f"{ratio:.2f}", ok]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
