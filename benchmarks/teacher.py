"""Teacher training: env steps/s during training, and the trained teacher's return under the training
randomization and under nominal dynamics at the end of a stated budget.

Each run is `sim2real train-teacher` in-process (the task's conf/teacher/<task>.yaml plus the flags
below) in a temporary run dir. "steps/s" counts env steps per wall second of `model.learn`,
evaluations and checkpoints included; "wall s" is the whole stage after imports (env start-up,
training, publishing, final evaluation). Returns are of the published teacher loaded back with
`load_teacher`, over `--eval-episodes` fresh seeds, mean ± std. Reference rows: the scripted
controller (pendulum) and, with `--reference-zip`, a published SB3 zip acting on the Gymnasium slice.
`--baseline-teacher NAME` trains a second teacher with `teacher=NAME` (for example `hopper_zoo`, the
RL Zoo's settings) in the same run, so the two rates are measured on the same machine state;
`--variant "OVERRIDES"` (repeatable) trains the task's teacher again with those Hydra overrides on top,
at the same budget (for example the settings a default replaced).
`--env-rate` also prints raw randomized-env stepping rates of the batched, Dummy and Subproc VecEnvs.

    python benchmarks/teacher.py --task pendulum
    python benchmarks/teacher.py --task hopper --baseline-teacher hopper_zoo --baseline-timesteps 100000
    python benchmarks/teacher.py --task hopper --timesteps 300000 --variant \
        "teacher.ppo.n_envs=16 teacher.ppo.hyperparams.n_steps=128 teacher.ppo.hyperparams.batch_size=256"
    python benchmarks/teacher.py --task hopper --timesteps 1000000 \
        --reference-zip ../shared/experts/sac_Hopper.zip
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from envs import batched
from sim2real.cli import CONF_DIR
from sim2real.config import Config, register
from sim2real.teacher.config import ExpertConfig
from sim2real.teacher.evaluate import ExpertEvaluator
from sim2real.teacher.experts import load_expert
from sim2real.teacher.policy import load_teacher
from sim2real.teacher.train import train
from sim2real.teacher.vec import make_training_env, resolve_vec_kind

EVAL_SEED = 7_000_000  # unseen by training (seeds 0..) and by its evaluations (1_000_000..)


def config(
    args: argparse.Namespace, run_dir: str, teacher: str | None = None, extra: tuple[str, ...] = ()
) -> Config:
    overrides = [f"task={args.task}", f"run_dir={run_dir}", "logger=none", f"seed={args.seed}"]
    if teacher is not None:  # the baseline: its own config as written, only the budget may be cut
        overrides += [f"teacher={teacher}"]
        if args.baseline_timesteps is not None:
            overrides.append(f"teacher.total_timesteps={args.baseline_timesteps}")
    else:
        for key, value in (("algo", args.algo), ("total_timesteps", args.timesteps), ("n_envs", args.n_envs)):
            if value is not None:
                overrides.append(f"teacher.{key}={value}")
        if args.vec_env:
            overrides.append(f"teacher.vec_env={args.vec_env}")
        overrides += extra
    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_object(compose("config", overrides=overrides))


def returns(expert, cfg: Config, episodes: int) -> tuple[str, str]:
    evaluator = ExpertEvaluator(cfg.task.name, cfg.task.ranges(), episodes, EVAL_SEED)
    try:
        cells = [evaluator(expert), evaluator(expert, nominal=True)]
    finally:
        evaluator.close()
    return tuple(f"{r.mean():9.1f} ± {r.std():6.1f}" for r in cells)


def env_rate(cfg: Config, kind: str, n_envs: int, seconds: float = 3.0) -> float:
    venv = make_training_env(cfg.task.name, cfg.task.ranges(), n_envs, kind, seed=0)
    venv.reset()
    rng = np.random.default_rng(0)
    shape = (n_envs, *venv.action_space.shape)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        venv.step(rng.uniform(-1, 1, shape).astype(np.float32))
        steps += n_envs
    rate = steps / (time.perf_counter() - start)
    venv.close()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="pendulum")
    p.add_argument("--algo", choices=("ppo", "sac"), help="default: the task's conf/teacher/<task>.yaml")
    p.add_argument("--timesteps", type=int, help="default: the task's budget")
    p.add_argument("--n-envs", type=int)
    p.add_argument("--vec-env", choices=("auto", "batch", "dummy", "subproc"))
    p.add_argument("--baseline-teacher", help="also train with teacher=NAME (e.g. hopper_zoo), same run")
    p.add_argument("--baseline-timesteps", type=int, help="budget of the baseline (default: its config's)")
    p.add_argument(
        "--variant", action="append", default=[], metavar="OVERRIDES",
        help="also train the task's teacher with these Hydra overrides (space-separated), same budget",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--reference-zip", help="a published SB3 zip for the task's Gymnasium env (reference row)")
    p.add_argument(
        "--env-rate", action="store_true", help="also time raw batched, Dummy and Subproc VecEnv stepping"
    )
    p.add_argument("--keep", help="run dir to keep (default: a temporary one)")
    args = p.parse_args()
    torch.set_num_threads(1)

    runs = [(args.task, None, ())] + [(f"{args.task} + {v}", None, tuple(v.split())) for v in args.variant]
    if args.baseline_teacher:
        runs.append((args.baseline_teacher, args.baseline_teacher, ()))
    train_rows, rows, configs = [], [], []
    for label, teacher_name, extra in runs:
        with tempfile.TemporaryDirectory(prefix="s2r-bench-teacher-") as tmp:
            main_row = teacher_name is None and not extra  # only the task's own teacher is kept
            run_dir = args.keep if (args.keep and main_row) else tmp
            cfg = config(args, run_dir, teacher_name, extra)
            configs.append(cfg)
            tc = cfg.teacher
            start = time.perf_counter()
            summary = train(cfg, Path(run_dir) / "teacher").summary
            wall = time.perf_counter() - start
            teacher = load_teacher(Path(run_dir) / "teacher")
            kind = resolve_vec_kind(tc.vec_env, tc.num_envs(), cfg.task.name)
            train_rows.append(
                f"| teacher={label} | {tc.algo} | {tc.num_envs()} ({kind}) | {summary['num_timesteps']} | "
                f"{wall:.1f} | {summary['steps_per_second']:.0f} |"
            )
            kept = f"kept {summary['checkpoint']} @ {summary['checkpoint_step']}"
            rows.append((f"teacher={label} ({tc.algo}, {summary['num_timesteps']} steps, {kept})",))
            rows[-1] += returns(teacher, cfg, args.eval_episodes)
    cfg = configs[0]  # the task's own teacher config: reference rows and env rates use it
    if cfg.task.name == "pendulum":
        rows.append(
            (
                "scripted:pendulum (reference)",
                *returns(load_expert(ExpertConfig("scripted"), "", "pendulum"), cfg, args.eval_episodes),
            )
        )
    if args.reference_zip:
        zexp = load_expert(ExpertConfig("sb3_zip", args.reference_zip), "", cfg.task.name)
        rows.append((f"{zexp.name} (reference)", *returns(zexp, cfg, args.eval_episodes)))

    print(
        f"\nteacher benchmark: task {cfg.task.name}, {os.cpu_count()} CPU cores, torch threads 1, "
        f"seed {cfg.seed}"
    )
    print("| config | algo | envs (vec) | env steps | wall s (stage) | env steps/s (learn) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(train_rows) + "\n")
    print(f"| policy | return, training randomization ({args.eval_episodes} ep) | return, nominal dynamics |")
    print("|---|---|---|")
    for name, rand, nom in rows:
        print(f"| {name} | {rand} | {nom} |")
    if args.env_rate:
        n = cfg.teacher.num_envs() if cfg.teacher.num_envs() > 1 else 4
        print(f"\nraw randomized env stepping, {n} envs, random actions (steps/s):")
        kinds = ("batch", "dummy", "subproc") if batched.supports(cfg.task.name) else ("dummy", "subproc")
        for kind in kinds:
            print(f"  {kind:8s} {env_rate(cfg, kind, n):8.0f}")


if __name__ == "__main__":
    main()
