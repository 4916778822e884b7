"""Beat the demonstrators from data alone: BC, filtered BC, return-conditioned and fine-tuned students.

The demonstrations are a capable controller executed at several quality levels: at level ε each step's
action is replaced, with probability ε, by a uniform random one (D4RL-style "noisy" data). The store
keeps no expert labels (`expert_action` is NaN), so only the executed actions and rewards can teach.
Each method distils a student from that store alone (`sim2real distill data=...`, no expert; default
student settings, `DISTILL` below), exports it, and runs the same evaluation episodes under the training
randomization (seeds apart from the data's and from distill's own). The last row continues each RvS
student online (`sim2real finetune`, no expert, `--finetune` env steps) on a copy of the store.
Scores are normalized per task: (return − random) / (reference − random) on those episodes, the
reference being the controller the data came from at ε=0 (or, with --data, the teacher named).

    python benchmarks/offline.py                                  # pendulum, scripted controller (~25 min)
    python benchmarks/offline.py --task hopper --data runs/h/training.zarr --expert runs/h  # RL record

Goals (issue "Beat the demonstrators"): a student ≥ 1.2× the demonstrators' mean normalized return and
≥ their 90th percentile; online fine-tuning ≥ 10% above the offline student.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import envs
from envs import parameters as dr
from sim2real.artifacts import RunLayout, read_manifest
from sim2real.data.rollout import VectorRollout, make_vector_env, task_spec
from sim2real.data.store import DemoStore
from sim2real.teacher.config import ExpertConfig
from sim2real.teacher.experts import load_expert
from sim2real.validate.rollout import PolicySource, run_all
from sim2real.validate.scenarios import Episode

LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)
METHODS = {  # name -> distill overrides
    "BC": [],
    "filtered BC 10%": ["distill.keep_top_fraction=0.1"],
    "RvS (return-conditioned)": ["student.rtg=true"],
}
# Data-only distillation has no DAgger rounds to add steps: the pendulum student trained 1,000 steps (the
# default, sized for DAgger) scored -836 on clean scripted data and -486 at 4,000 (distill's own eval)
DISTILL = ("distill.steps=10000", "distill.eval_every=0")  # eval_every: rollouts only for logs
D4RL_REF = {  # D4RL's random / expert reference returns (d4rl/infos.py), for its normalized score
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "halfcheetah": (-280.178953, 12135.0),
    "ant": (-325.6, 3879.7),
}
FINETUNE_STEPS = 40_000  # online fine-tuning budget (pendulum: 8 rounds of 25 episodes)
DATA_SEED = 8_000_000  # demonstrations
EVAL_SEED = 9_000_000  # evaluation episodes, apart from the data's and distill's own


class EpsilonRandom:
    """The expert, but each step's action is uniform random with probability `eps`."""

    def __init__(self, expert, eps: float, seed: int):
        self.expert, self.eps, self.rng = expert, eps, np.random.default_rng(seed)
        self.name = f"{expert.name}+eps{eps}"

    def act(self, privileged_obs: np.ndarray) -> np.ndarray:
        a = np.asarray(self.expert.act(privileged_obs), dtype=np.float32)  # (B, Da)
        swap = self.rng.random(a.shape[0]) < self.eps  # (B,)
        a[swap] = self.rng.uniform(-1, 1, size=(int(swap.sum()), a.shape[1]))
        return a


def make_store(path: Path, task: str, expert, per_level: int, n_envs: int) -> None:
    """Episodes of every level, labels removed; one source per level (the student never reads it)."""
    if path.exists():
        return
    ranges = dr.make_ranges(None, envs.task_ranges(task), task=task)
    venv = make_vector_env(task, ranges, n_envs)
    with DemoStore.create(path, task_spec(task, ranges)) as store:
        for li, eps in enumerate(LEVELS):
            seeds = range(DATA_SEED + li * 100_000, DATA_SEED + li * 100_000 + per_level)
            rollout = VectorRollout(venv, EpsilonRandom(expert, eps, DATA_SEED + li))
            eps_ = [ep for _, ep in rollout.episodes(iter(enumerate(seeds)))]
            for ep in eps_:
                ep.expert_action = np.full_like(ep.action, np.nan)
            store.append_episodes(eps_, {"kind": "benchmark", "level_epsilon": eps})
            print(f"level eps={eps}: {per_level} episodes, return {np.mean([e.ret for e in eps_]):.1f}",
                  flush=True)  # fmt: skip
    venv.close()


def sim2real(run_dir: Path, stages: list[list[str]], common: list[str]) -> None:
    """`sim2real <stage> <common> <stage's own>` for each stage, into `<run_dir>.log` (one log per run:
    trainings run concurrently)."""
    with open(run_dir.with_suffix(".log"), "a") as log:
        for stage, *own in stages:
            cmd = [sys.executable, "-m", "sim2real", stage, *common, *own]
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)


def train(store: Path, run_dir: Path, task: str, seed: int, extra: list[str]) -> None:
    if (RunLayout(run_dir).export / "policy.onnx").exists():
        return
    # finetune.steps=0: export takes the distilled student (a task's recipe may turn fine-tuning on)
    common = [f"task={task}", f"run_dir={run_dir}", f"seed={seed}", "logger=none", "finetune.steps=0"]
    done = (read_manifest(RunLayout(run_dir).student) or {}).get("status") == "finished"
    stages = [] if done else [["distill", f"data={store}", *extra]]
    sim2real(run_dir, [*stages, ["export"]], common)
    print(f"trained {run_dir} ({' '.join(extra)})", flush=True)


def finetune(
    rvs: Path, run_dir: Path, store: Path, task: str, seed: int, method: str, steps: int, extra: list[str]
) -> None:
    """The RvS student fine-tuned (`sim2real finetune`, no expert): online rounds appended to a copy of
    the store, or PPO at its deployment return target; `extra`: the distill overrides (online rounds
    train with distill's settings, e.g. its threads)."""
    if (RunLayout(run_dir).export / "policy.onnx").exists():
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(RunLayout(rvs).student, RunLayout(run_dir).student)
    data = []
    if method == "online":
        shutil.copytree(store, run_dir / "data.zarr")
        data = [f"data={run_dir / 'data.zarr'}"]
    common = [f"task={task}", f"run_dir={run_dir}", f"seed={seed}", "logger=none", "student.rtg=true",
              f"finetune.steps={steps}", f"finetune.method={method}", *extra]  # fmt: skip
    sim2real(run_dir, [["finetune", *data], ["export"]], common)
    print(f"fine-tuned {run_dir} ({method}, {steps} env steps)", flush=True)


T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def tag(method: str) -> str:
    return method.split(" (")[0].replace(" ", "_").replace("%", "pct")


def ci95(x: np.ndarray) -> float:
    """Half-width of the Student-t 95% interval of the mean over seeds (few seeds: t, not 1.96)."""
    if len(x) < 2:
        return float("nan")
    return float(T975.get(len(x) - 1, 1.96) * x.std(ddof=1) / np.sqrt(len(x)))


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="pendulum")
    ap.add_argument("--expert", default="scripted", help="scripted, or a run dir whose teacher acts")
    data_help = "distil from this store (e.g. <run_dir>/training.zarr); --expert is then the reference only"
    ap.add_argument("--data", type=Path, default=None, help=data_help)
    ap.add_argument("--per-level", type=int, default=40, help="episodes per quality level")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--episodes", type=int, default=50, help="evaluation episodes")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="default runs/offline/<task>")
    ap.add_argument(
        "--distill", default=":".join(DISTILL), help="distill overrides of every method, ':'-separated"
    )
    ap.add_argument("--finetune", type=int, default=FINETUNE_STEPS, help="env steps of online fine-tuning "
                    "of the RvS student (0: no such row)")  # fmt: skip
    ap.add_argument("--ppo", type=int, default=0, help="env steps of PPO fine-tuning of the RvS student "
                    "(finetune.method=ppo; 0: no such row)")  # fmt: skip
    ap.add_argument("--jobs", type=int, default=2, help="trainings at once (each uses one core)")
    tags = [tag(m) for m in METHODS]
    ap.add_argument("--methods", nargs="+", default=tags, choices=tags, metavar="M",
                    help=f"rows to train, of {' '.join(tags)} (default all)")  # fmt: skip
    return ap.parse_args()


def main() -> None:
    args = parse()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    out = args.out or Path("runs/offline") / args.task
    out.mkdir(parents=True, exist_ok=True)
    scripted = args.expert == "scripted"
    cfg = ExpertConfig(kind="scripted") if scripted else ExpertConfig(kind="teacher", path=args.expert)
    store = args.data or out / "mixed.zarr"
    if args.data is None:
        make_store(store, args.task, load_expert(cfg, args.expert, args.task), args.per_level, n_envs=8)
    extra = [e for e in args.distill.split(":") if e]
    names = [m for m in METHODS if tag(m) in args.methods]
    runs = {(name, seed): out / f"{tag(name)}_s{seed}" for name in names for seed in args.seeds}
    with ThreadPoolExecutor(args.jobs) as pool:
        jobs = [
            pool.submit(train, store, d, args.task, seed, [*METHODS[name], *extra])
            for (name, seed), d in runs.items()
        ]
        for job in jobs:
            job.result()
        rvs = next(n for n in METHODS if n.startswith("RvS"))
        for method, steps in (("online", args.finetune), ("ppo", args.ppo)):
            if not steps or rvs not in names:
                continue
            name = f"RvS + {method}, {steps // 1000}k steps"
            runs |= {(name, seed): out / f"RvS_{method}_{steps // 1000}k_s{seed}" for seed in args.seeds}
            jobs = [pool.submit(finetune, runs[rvs, seed], runs[name, seed], store, args.task, seed, method,
                                steps, extra) for seed in args.seeds]  # fmt: skip
            for job in jobs:
                job.result()

    ranges = dr.make_ranges(None, envs.task_ranges(args.task), task=args.task)
    rng = np.random.default_rng(EVAL_SEED)
    seeds = range(EVAL_SEED, EVAL_SEED + args.episodes)
    eval_eps = [Episode("train", None, s, dr.resolve(rng, ranges, None)) for s in seeds]
    src = dict(task=args.task, ranges={})

    def returns(policy: PolicySource) -> np.ndarray:
        return np.asarray([r["return"] for r in run_all(policy, eval_eps, args.workers)], dtype=np.float64)

    rand = returns(PolicySource("random", **src)).mean()
    ref = returns(PolicySource("teacher", **src, expert_kind=cfg.kind, expert_path=cfg.path)).mean()
    with DemoStore.open(store) as s:
        demo = s.meta("episode_return").astype(np.float64)
        levels = [(src.get("level_epsilon"), s.meta("episode_source") == src["id"]) for src in s.sources]
    rows = {}
    for name in dict.fromkeys(n for n, _ in runs):
        exports = [RunLayout(runs[name, seed]).export for seed in args.seeds]
        rows[name] = np.asarray(
            [returns(PolicySource("student", **src, export_dir=str(e))).mean() for e in exports]
        )

    what = f"{store}" if args.data else (f"{args.per_level} per level, ε = {', '.join(map(str, LEVELS))}, "
                                          f"seeds {DATA_SEED}+, labels removed")  # fmt: skip
    who = "scripted controller" if scripted else f"teacher of {args.expert}"
    print(f"\n{args.task}: {len(demo)} demonstrations ({what}); {args.episodes} evaluation episodes under "
          f"the training randomization (seeds {EVAL_SEED}+); distill {' '.join(extra)}")  # fmt: skip
    print(f"normalized return = (R - random {rand:.1f}) / (reference {ref:.1f} - random); reference: {who}")
    table(demo, rows, args.seeds, lambda x: (np.asarray(x) - rand) / (ref - rand), "normalized")
    by_level = [f"ε={e}: {(demo[m].mean() - rand) / (ref - rand):.3f}" for e, m in levels if e is not None]
    if by_level:
        print("demonstrators by level (mean normalized): " + ", ".join(by_level))
    if args.task in D4RL_REF:
        low, high = D4RL_REF[args.task]
        print(f"\nD4RL-normalized (100 × (R - {low}) / ({high} - {low}), D4RL's random/expert references):")
        table(demo, rows, args.seeds, lambda x: 100 * (np.asarray(x) - low) / (high - low), "D4RL")


def table(demo: np.ndarray, rows: dict[str, np.ndarray], seeds: list[int], norm, unit: str) -> None:
    """Demonstrators' mean and 90th percentile, then each method's mean over seeds with its 95% CI."""
    d = norm(demo)
    mean, p90 = d.mean(), np.quantile(d, 0.9)
    print(
        f"{unit:26} {'score ± 95% CI':>18} {'× demo mean':>12} {'/ demo p90':>11}   per seed {tuple(seeds)}"
    )
    print(f"{'demonstrators':26} {mean:9.3f} (p90 {p90:.3f})")
    for name, r in rows.items():
        s = norm(r)
        m = s.mean()
        cells = " ".join(f"{v:.3f}" for v in s)
        print(f"{name:26} {m:9.3f} ± {ci95(s):<6.3f} {m / mean:11.2f}x {m / p90:10.2f}   {cells}")


if __name__ == "__main__":
    main()
