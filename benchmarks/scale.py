"""Collection throughput of the Ray backend with N workers vs the local backend, in one run.

Each measurement collects `--episodes-per-worker × N` episodes (weak scaling: every worker has the
same work whatever N) into a fresh store in a temporary directory, with the same seeds as the local
backend. The time is that of the whole collection after start-up: tasks (each a vector env of
`--n-envs` envs writing its own shard), the driver's merge into the store and the shards' removal.
Ray is started once (a local instance with max(N, cores) CPUs) and warmed up with a small collection
on every worker, so worker start-up and imports are not timed. Efficiency is
(steps/s with N) / (N × steps/s with 1); the goal on a 16-core machine is ≥ 0.7 up to 16 workers.
On a machine with fewer cores than N the workers share cores and efficiency falls below cores / N.

    python benchmarks/scale.py [--workers 1 2 8 16] [--episodes-per-worker 200] [--n-envs 4]
                               [--task pendulum] [--teacher-dir runs/pendulum] [--rounds 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch

from sim2real.config import Config, LoggerConfig, TaskConfig
from sim2real.data.collect import _absolute, attach_source, collect, source_entry
from sim2real.data.config import CollectConfig
from sim2real.data.ray_collect import collect_ray
from sim2real.data.rollout import VectorRollout, make_vector_env, task_spec
from sim2real.data.store import DemoStore
from sim2real.metrics import MetricLogger
from sim2real.ray_backend import session
from sim2real.teacher.config import ExpertConfig
from sim2real.teacher.experts import load_expert


def config(args, tmp: Path, episodes: int, workers: int) -> Config:
    expert = ExpertConfig(kind="teacher" if args.teacher_dir else "scripted")
    c = CollectConfig(episodes=episodes, n_envs=args.n_envs, progress=False, backend="ray", workers=workers)
    run_dir = args.teacher_dir or tmp
    cfg = Config(run_dir=str(run_dir), task=TaskConfig(args.task), expert=expert, collect=c)
    return _absolute(dataclasses.replace(cfg, logger=LoggerConfig("none")))


def timed(cfg: Config, path: Path, backend: str) -> tuple[int, float]:
    """(env steps, seconds) of one collection of `cfg.collect.episodes` into a new store at `path`."""
    spec = task_spec(cfg.task.name, cfg.task.ranges())
    expert = load_expert(cfg.expert, cfg.run_dir, cfg.task.name)
    logger = MetricLogger(LoggerConfig("none"), path.parent, "scale")
    venv = (
        make_vector_env(cfg.task.name, cfg.task.ranges(), cfg.collect.n_envs) if backend == "local" else None
    )
    with DemoStore.create(path, spec) as store:
        sid, seed_base = attach_source(store, source_entry(expert, cfg))
        start = time.perf_counter()
        if venv is None:
            steps = collect_ray(store, cfg, sid, seed_base, spec, logger).steps
        else:
            rollout = VectorRollout(venv, expert)
            collect(store, rollout, cfg.collect, sid, seed_base, logger)
            steps = rollout.steps
        seconds = time.perf_counter() - start
        assert store.num_episodes == cfg.collect.episodes
    if venv is not None:
        venv.close()
    return steps, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--episodes-per-worker", type=int, default=200, help="default: the pipeline's demos")
    p.add_argument("--n-envs", type=int, default=4, help="envs per worker (and of the local backend)")
    p.add_argument("--task", default="pendulum")
    p.add_argument("--teacher-dir", type=Path, help="run dir whose teacher acts (default: scripted pendulum)")
    p.add_argument("--rounds", type=int, default=1, help="timed repeats per row; the best counts")
    args = p.parse_args()
    if args.task != "pendulum" and args.teacher_dir is None:
        p.error("the scripted expert is pendulum-only; pass --teacher-dir")
    torch.set_num_threads(1)
    workers = sorted(set(args.workers))
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir, session(None, max(workers), "ray_address"):
        tmp = Path(tmp_dir)
        n = iter(range(10**6))

        def best(cfg: Config, backend: str) -> tuple[int, float]:
            runs = [timed(cfg, tmp / f"{backend}-{next(n)}.zarr", backend) for _ in range(args.rounds)]
            return max(runs, key=lambda r: r[0] / r[1])

        timed(config(args, tmp, 2 * max(workers), max(workers)), tmp / "warmup.zarr", "ray")
        e1 = args.episodes_per_worker
        rows.append(("local", 1, e1, *best(config(args, tmp, e1, 1), "local")))
        for w in workers:
            rows.append(("ray", w, e1 * w, *best(config(args, tmp, e1 * w, w), "ray")))
    base = next((s / t for b, w, _, s, t in rows if b == "ray" and w == 1), None)
    print(f"task {args.task}, {args.n_envs} envs per worker, {os.cpu_count()} cores on this machine")
    print("| backend | workers | episodes | env steps | seconds | steps/s | efficiency |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for backend, w, eps, steps, secs in rows:
        rate = steps / secs
        eff = f"{rate / (w * base):.2f}" if backend == "ray" and base else "-"
        print(f"| {backend} | {w} | {eps} | {steps:,} | {secs:.2f} | {rate:,.0f} | {eff} |")


if __name__ == "__main__":
    main()
