"""Is distillation worth it? Returns of teacher, students and a student-observation RL baseline,
and the training throughput of the real data pipeline against synthetic tensors.

For one task: the expert collects `--demos` episodes into a Zarr store; then, each from a fresh copy
of that store, a BC transformer, a DAgger transformer (`distill.dagger_rounds`, default 4) and an
MLP student (current observation only, with DAgger; with and without the previous action, which the
transformer does not see by default) are trained with the `distill` defaults; the
student-observation baseline is SB3 with the teacher's recipe (algorithm, hyperparameters, env-step
budget, normalization) on `obs["student"]` stacked over 8 frames. Every policy is evaluated on the
same `--episodes` randomized episodes (training ranges; seeds EVAL_SEED_BASE + i): mean return ± 95% CI
and a normalized score 100·(R − R_random)/(R_teacher − R_random), with R_random the uniform-random policy.
Goals: DAgger student ≥ 95 (normalized); the transformer beats the MLP student and the RL baseline.

Throughput: the same model and optimizer step fed by the WindowSampler (real data, on `--device`)
vs pre-made synthetic tensors of the same shapes, alternating blocks in one run (goal ≥ 0.9).

    python benchmarks/distill.py [--device cpu|cuda] [--episodes 50] [--demos 100] [hydra overrides...]
    python benchmarks/distill.py --device cuda --only throughput student.n_embd=128 student.n_layer=3 \
        distill.batch_size=4096          # ~0.6M parameters, the issue's GPU figure
    python benchmarks/distill.py task=halfcheetah expert=sb3_zip \
        expert.path=../shared/experts/sac_HalfCheetah.zip --nominal --rl-algos none  # a published oracle
"""

from __future__ import annotations

import argparse
import copy
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from envs import parameters
from sim2real.cli import CONF_DIR
from sim2real.config import Config, register
from sim2real.data.sampler import WindowBatch
from sim2real.data.schema import StoreSpec
from sim2real.data.store import DemoStore
from sim2real.student.rollout import evaluate, make_envs, rollout
from sim2real.student.train import EVAL_SEED_BASE, Trainer
from sim2real.teacher.experts import load_expert


def compose(overrides: list[str]) -> Config:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_object(hydra_compose("config", overrides=overrides))


def ci95(x: np.ndarray) -> float:
    return float(1.96 * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


class RandomPolicy:
    name = "random"

    def __init__(self, action_dim: int, seed: int):
        self.action_dim, self.rng = action_dim, np.random.default_rng(seed)

    def act(self, privileged_obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1, 1, (len(np.atleast_2d(privileged_obs)), self.action_dim)).astype(
            np.float32
        )


# name -> (row label, overrides; "R" stands for --dagger-rounds)
STUDENTS = {
    "bc": ("BC transformer", {"distill__dagger_rounds": 0}),
    "dagger": ("DAgger transformer ({r} rounds)", {"distill__dagger_rounds": "R"}),
    "mlp": ("MLP student, DAgger ({r} rounds)", {"distill__dagger_rounds": "R", "student__arch": "mlp"}),
    "mlp_prev": (  # the MLP's best chance: the previous action is its only hint of velocity
        "MLP student + prev_action, DAgger ({r} rounds)",
        {"distill__dagger_rounds": "R", "student__arch": "mlp", "student__drop_prev_action": False},
    ),
    "mlp_bc": ("MLP student, BC", {"distill__dagger_rounds": 0, "student__arch": "mlp"}),
    # the DAgger transformer, then PPO on its own observations (`sim2real finetune`, the recipe's steps)
    "finetune": (
        "DAgger transformer ({r} rounds) + PPO fine-tuning",
        {"distill__dagger_rounds": "R", "finetune": 1},
    ),
}


def collect_demos(cfg: Config, expert, n: int, path: Path, seed: int) -> Path:
    env_list = make_envs(cfg.task.name, cfg.task.ranges(), min(25, n))
    seeds = [seed * 1_000_000 + i for i in range(n)]
    with DemoStore.create(path, StoreSpec.from_env(env_list[0])) as store:
        for start in range(0, n, len(env_list)):
            eps = rollout(env_list, seeds[start : start + len(env_list)], expert=expert, beta=1.0)
            store.append_episodes(eps, source={"kind": "expert", "expert": expert.name, "seed": seed})
    return path


def train_student(cfg: Config, demos: Path, work: Path, name: str, expert, **over) -> tuple[Trainer, float]:
    """A student trained from a fresh copy of the demos (DAgger appends to its own copy)."""
    c = copy.deepcopy(cfg)
    tune = bool(over.pop("finetune", False)) and c.finetune.enabled
    for key, value in over.items():
        group, field = key.split("__")
        setattr(getattr(c, group), field, value)
    c.distill.eval_episodes, c.distill.eval_every, c.logger.kind = 0, 0, "none"
    run = work / name
    shutil.copytree(demos, run / "demos.zarr")
    c.run_dir = str(run)
    t0 = time.monotonic()
    trainer = Trainer(
        c, run / "demos.zarr", run / "student", expert=expert if c.distill.dagger_rounds else None
    )
    trainer.fit()
    if tune:  # PPO from the distilled student; the kept one replaces it in the trainer
        from sim2real.finetune.stage import Finetuner
        from sim2real.student.checkpoint import load_student

        Finetuner(c, run / "student", run / "finetune", "benchmark").fit()
        trainer.model = load_student(run / "finetune")
    return trainer, time.monotonic() - t0


def returns_table(cfg: Config, args, expert, demos: Path, work: Path) -> None:
    seeds = [EVAL_SEED_BASE + i for i in range(args.episodes)]
    task, ranges = cfg.task.name, cfg.task.ranges()
    rows: list[tuple[str, np.ndarray, str]] = []
    rows.append(("teacher (" + expert.name + ")", evaluate(task, ranges, seeds, expert=expert), "-"))
    rand = RandomPolicy(len(make_envs(task, ranges, 1)[0].action_space.low), args.seed)
    rows.append(("random policy", evaluate(task, ranges, seeds, expert=rand), "-"))
    rounds = args.dagger_rounds
    students = [(STUDENTS[k][0].format(r=rounds), STUDENTS[k][1]) for k in args.students.split(",")]
    for name, over in students:
        over = {k: (rounds if v == "R" else v) for k, v in over.items()}
        trainer, secs = train_student(cfg, demos, work, name.split()[0] + str(len(rows)), expert, **over)
        trainer.model.eval()
        rows.append((name, evaluate(task, ranges, seeds, student=trainer.model), f"{secs:.0f}s"))
        print(f"  {name}: trained in {secs:.0f}s", flush=True)
    for algo in [a for a in args.rl_algos.split(",") if a != "none"]:
        rows.append(rl_baseline(cfg, algo, args, task, ranges, seeds))
    print_table(rows, args, cfg)


def rl_baseline(cfg: Config, algo: str, args, task, ranges, seeds) -> tuple[str, np.ndarray, str]:
    from sim2real.student.baselines import evaluate_student_rl, train_student_rl

    t0 = time.monotonic()
    policy = train_student_rl(
        cfg.task.name, cfg.task.ranges(), cfg.teacher, frames=8, seed=args.seed, algo=algo
    )
    secs = time.monotonic() - t0
    name = f"{algo.upper()} on student obs (8 frames, {policy.timesteps} steps)"
    print(f"  {name}: trained in {secs:.0f}s", flush=True)
    return name, evaluate_student_rl(policy, task, ranges, seeds), f"{secs:.0f}s"


def print_table(rows, args, cfg: Config) -> None:
    teacher, rand = rows[0][1].mean(), rows[1][1].mean()
    where = "nominal dynamics" if args.nominal else "training randomization"
    print(f"\n{cfg.task.name}: {args.episodes} episodes, {where}, eval seeds {EVAL_SEED_BASE}+i, "
          f"training seed {args.seed}, {args.demos} demonstration episodes")  # fmt: skip
    print("| policy | return (mean ± 95% CI) | normalized | train time |\n|---|---|---|---|")
    for name, r, secs in rows:
        score = 100 * (r.mean() - rand) / (teacher - rand) if teacher != rand else float("nan")
        print(f"| {name} | {r.mean():.1f} ± {ci95(r):.1f} | {score:.1f} | {secs} |")


def throughput(cfg: Config, demos: Path, work: Path, args) -> None:
    """Sequences/s of `train_step` fed by the sampler vs by synthetic tensors, alternating blocks."""
    c = copy.deepcopy(cfg)
    c.logger.kind, c.distill.checkpoint_every, c.run_dir = "none", 0, str(work / "throughput")
    trainer = Trainer(c, demos, work / "throughput" / "student")
    B, dev = c.distill.batch_size, trainer.device
    real = trainer.sampler.sample(B)
    K = real.obs.shape[1]
    synth = WindowBatch(
        obs=torch.randn(B, K, real.obs.shape[2], device=dev),
        action=torch.randn(B, K, real.action.shape[2], device=dev),
        mask=torch.ones(B, K, dtype=torch.bool, device=dev),
        rtg=torch.zeros(B, K, device=dev),
    )
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def block(feed) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(args.throughput_steps):
            trainer.train_step(feed(), c.distill.lr)
        sync()
        return args.throughput_steps * B / (time.perf_counter() - t0)

    block(lambda: trainer.sampler.sample(B)), block(lambda: synth)  # warm-up (and compile)
    rates = {"real": [], "synthetic": []}
    for _ in range(args.throughput_rounds):
        rates["real"].append(block(lambda: trainer.sampler.sample(B)))
        rates["synthetic"].append(block(lambda: synth))
    r, s = np.median(rates["real"]), np.median(rates["synthetic"])
    params = sum(p.numel() for p in trainer.model.parameters())
    print(f"\nthroughput on {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}), "
          f"{params} parameters, batch {B} × {K} steps, {args.throughput_rounds} alternating blocks of "
          f"{args.throughput_steps} steps (median):")  # fmt: skip
    print(f"  real data pipeline: {r:,.0f} sequences/s | synthetic tensors: {s:,.0f} sequences/s | "
          f"ratio {r / s:.3f} (goal ≥ 0.9)")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--episodes", type=int, default=50, help="evaluation episodes per policy")
    p.add_argument("--demos", type=int, default=None, help="expert episodes (default: collect.episodes)")
    p.add_argument("--dagger-rounds", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rl-algos", default="teacher", help="comma list of ppo,sac; 'teacher': its algo; none")
    p.add_argument("--nominal", action="store_true", help="nominal dynamics throughout (no randomization)")
    default = "bc,dagger,finetune,mlp,mlp_prev"
    p.add_argument(
        "--students", default=default, help=f"comma list of {', '.join(STUDENTS)} (default {default})"
    )
    p.add_argument("--only", choices=("returns", "throughput"), default=None)
    p.add_argument("--throughput-steps", type=int, default=50)
    p.add_argument("--throughput-rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args, overrides = p.parse_known_args()
    torch.set_num_threads(args.threads)
    cfg = compose(["logger=none", "expert=scripted", *overrides] if "expert=" not in " ".join(overrides)
                  else ["logger=none", *overrides])  # fmt: skip
    cfg.device, cfg.seed = args.device, args.seed
    args.demos = args.demos or cfg.collect.episodes
    if args.rl_algos == "teacher":
        args.rl_algos = cfg.teacher.algo
    if args.nominal:  # collection, DAgger and evaluation alike
        for name, value in parameters.nominal(cfg.task.name).items():
            setattr(cfg.task.randomization, name, [value, value])
    expert = load_expert(cfg.expert, cfg.run_dir, cfg.task.name)
    with tempfile.TemporaryDirectory(prefix="s2r-bench-distill-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        demos = collect_demos(cfg, expert, args.demos, work / "demos.zarr", args.seed)
        print(
            f"collected {args.demos} episodes with {expert.name} in {time.monotonic() - t0:.0f}s", flush=True
        )
        if args.only != "throughput":
            returns_table(cfg, args, expert, demos, work)
        if args.only != "returns":
            throughput(cfg, demos, work, args)


if __name__ == "__main__":
    main()
