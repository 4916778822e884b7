"""Robustness past the training ranges: score against how far past every declared range at once.

At distance k every parameter sits at `nominal + k × (edge − nominal)` of the task's declared range (the
table's and the task's own defaults, what a user states about the robot), one edge drawn per episode and
parameter (the edge away from the nominal where the nominal is an edge). k ≤ 1 lies inside the declared
ranges; k = 1.5 is "1.5× outside every range at once". Score per k: (student − random) / (privileged −
random) on the same episodes, the privileged reference knowing the dynamics (the pendulum's scripted
controller). Every `--run` is trained first when missing (`sim2real pipeline`, its extra overrides; the
pipeline skips finished stages), then all are evaluated on the same episodes, in one run.

    python benchmarks/robustness.py                       # default vs the previous default (~12 min)
    python benchmarks/robustness.py --run base=runs/rob/base --run w2=runs/rob/w2:task.widen=2.0
    python benchmarks/robustness.py --task halfcheetah --run hc=runs/halfcheetah   # reference: its teacher

Where the task has no scripted controller (locomotion), the privileged reference is the first run's own
teacher (`--reference teacher`): it knows the dynamics too, but was trained on the declared ranges and
degrades past them itself, so a score above 1 there means the student held up better than its teacher.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import envs
from envs import parameters
from sim2real.artifacts import RunLayout
from sim2real.teacher.experts import SCRIPTED
from sim2real.validate.rollout import PolicySource, run_all
from sim2real.validate.scenarios import Episode

DISTANCES = (0.0, 0.5, 1.0, 1.25, 1.5)
PREVIOUS = (  # the main job before it trained past its ranges: 6 DAgger rounds on them (0.42 at k = 1.5)
    "task.widen=null:teacher.sac.total_timesteps=7000:distill.steps=1000:distill.dagger_episodes=25"
    ":distill.dagger_steps=400:pipeline.dagger_rounds=6:student.drop_prev_action=true"
)
DEFAULT_RUNS = ("default=runs/rob/default", f"previous=runs/rob/previous:{PREVIOUS}")
SEED_BASE = 5_000_000  # apart from training, distill and validation seeds


def shell(task: str, k: float, rng: np.random.Generator) -> dict[str, float]:
    """One episode's dynamics at distance k past the declared ranges (k = 0: nominal)."""
    declared = parameters.make_ranges(None, envs.task_ranges(task), task=task)
    stretched = parameters.stretch(declared, k)
    out = {}
    for name, r in stretched.items():
        nominal = parameters.TABLE[name].nominal
        edges = [e for e in (r.low, r.high) if e != nominal] or [nominal]
        out[name] = edges[int(rng.integers(len(edges)))]
    return out


def episodes(task: str, n: int) -> list[Episode]:
    rng = np.random.default_rng(SEED_BASE)
    seeds = iter(range(SEED_BASE, SEED_BASE + 1_000_000))
    return [Episode(f"k={k}", k, next(seeds), shell(task, k, rng)) for k in DISTANCES for _ in range(n)]


def ensure_run(run_dir: Path, extra: list[str]) -> None:
    print(f"== pipeline run_dir={run_dir} {' '.join(extra)}", flush=True)
    cmd = [sys.executable, "-m", "sim2real", "pipeline", f"run_dir={run_dir}", "logger=none", *extra]
    subprocess.run(cmd, check=True)


def mean_by_k(results: list[dict]) -> dict[float, float]:
    return {k: float(np.mean([r["return"] for r in results if r["value"] == k])) for k in DISTANCES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", help="NAME=RUN_DIR[:override ...] (repeatable)")
    ap.add_argument("--task", default="pendulum")
    ap.add_argument("--episodes", type=int, default=30, help="per distance")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--reference", choices=("scripted", "teacher"), default=None,
        help="privileged reference: the task's scripted controller, or the first run's teacher "
        "(default: scripted where the task has one)",
    )  # fmt: skip
    args = ap.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    runs = []
    for spec in args.run or DEFAULT_RUNS:
        name, rest = spec.split("=", 1)
        run_dir, *extra = rest.split(":")
        ensure_run(Path(run_dir), [f"task={args.task}", *extra])
        runs.append((name, Path(run_dir), extra))
    eps = episodes(args.task, args.episodes)
    src = dict(task=args.task, ranges={})
    rand = mean_by_k(run_all(PolicySource("random", **src), eps, args.workers))
    reference = args.reference or ("scripted" if args.task in SCRIPTED else "teacher")
    ref_src = PolicySource("teacher", **src, expert_kind=reference, run_dir=str(runs[0][1]))
    priv = mean_by_k(run_all(ref_src, eps, args.workers))
    print(f"\n{args.task}: {args.episodes} episodes per distance k past every declared range at once (seeds "
          f"{SEED_BASE}+); score = (student - random) / (privileged - random), privileged: {reference}"
          + (f" of {runs[0][1]}" if reference == "teacher" else ""))  # fmt: skip
    print(f"{'k':>6} {'random':>9} {'privileged':>11} " + " ".join(f"{n:>16}" for n, _, _ in runs))
    students = {}
    for name, run_dir, _ in runs:
        student = PolicySource("student", **src, export_dir=str(RunLayout(run_dir).export))
        students[name] = mean_by_k(run_all(student, eps, args.workers))
    for k in DISTANCES:
        cells = []
        for name, _, _ in runs:
            s = students[name][k]
            cells.append(f"{s:8.1f} ({(s - rand[k]) / (priv[k] - rand[k]):.3f})")
        print(f"{k:>6} {rand[k]:9.1f} {priv[k]:11.1f} " + " ".join(f"{c:>16}" for c in cells))
    for name, run_dir, extra in runs:
        print(f"{name}: {run_dir} {' '.join(extra) or '(defaults)'}")


if __name__ == "__main__":
    main()
