"""What sensor latency costs an expert that never met it: the expert acts on its observation k steps old.

Teachers act on the simulator's undelayed state, so a student gated against one under latency
randomization would be asked to beat a delay the teacher never had to. This prints, per delay k, the
expert's return and falls on the same seeds and nominal dynamics (the privileged observation is held
back k control steps, exactly as the student's sensors are by `latency_steps`).

    python benchmarks/latency.py --task hopper --expert runs/hopper/teacher
    python benchmarks/latency.py --task halfcheetah --sb3-zip ../shared/experts/sac_HalfCheetah.zip
"""

from __future__ import annotations

import argparse
import collections

import gymnasium as gym
import numpy as np

import envs
from sim2real.teacher.config import ExpertConfig
from sim2real.teacher.experts import load_expert


def delayed_return(env: gym.Env, expert, seed: int, delay: int) -> tuple[float, bool]:
    """One episode, nominal dynamics, the expert fed the privileged observation `delay` steps old."""
    obs, _ = env.reset(seed=seed, options={"dynamics": {"latency_steps": delay}})
    held = collections.deque([obs["privileged"]] * (delay + 1), maxlen=delay + 1)  # oldest first
    total, done, fell = 0.0, False, False
    while not done:
        obs, reward, fell, truncated, _ = env.step(expert.act(held[0])[0])
        held.append(obs["privileged"])
        total, done = total + reward, fell or truncated
    return total, fell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="hopper")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--expert", help="a teacher dir (or a run dir holding one)")
    src.add_argument("--sb3-zip", help="a published SB3 model file")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--delays", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    kind, path = ("teacher", args.expert) if args.expert else ("sb3_zip", args.sb3_zip)
    expert = load_expert(ExpertConfig(kind=kind, path=path), ".", args.task)
    env = gym.make(envs.env_id(args.task))
    dt = env.unwrapped.dt
    print(f"{args.task}: {expert.name}, nominal dynamics, {args.episodes} episodes per delay (seeds 555000+)")
    print("| delay (steps) | delay (ms) | return (mean ± 95% CI) | falls |")
    print("|---|---|---|---|")
    for k in args.delays:
        runs = [delayed_return(env, expert, 555_000 + i, k) for i in range(args.episodes)]
        ret = np.array([r for r, _ in runs])
        ci, falls = 1.96 * ret.std(ddof=1) / np.sqrt(len(ret)), sum(f for _, f in runs)
        print(f"| {k} | {1000 * k * dt:.0f} | {ret.mean():.0f} ± {ci:.0f} | {falls}/{len(runs)} |")
    env.close()


if __name__ == "__main__":
    main()
