"""How a teacher's episodes end: return, falls with a 95% interval, and for each fall its cause, step and
command (the Go2 reports which fall condition held: trunk or hip contact, tilt, low trunk).

    python scripts/episode_ends.py RUN_DIR/teacher --episodes 200 [--seed 777000] [--nominal]

Episodes run under the task's training randomization (or nominal dynamics), seeds `seed + i`, the teacher
acting deterministically on all live episodes at once. Thirty episodes cannot tell a 2% fall rate from 10%;
a few hundred can.
"""

from __future__ import annotations

import argparse
import collections
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import envs
from envs import parameters
from envs.go2 import COMMAND_PERIOD  # control steps between command draws
from sim2real.teacher.policy import load_teacher


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% score interval of a rate k/n: unlike k/n ± se it stays inside [0, 1] for rare events."""
    p, d = k / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def run(teacher_dir: Path, episodes: int, seed: int, nominal: bool, batch: int) -> None:
    teacher = load_teacher(teacher_dir)
    task = teacher.task
    options = {"dynamics": parameters.nominal(task)} if nominal else None
    returns, falls = np.zeros(episodes), []
    bar = tqdm(total=episodes, desc="episodes")
    for first in range(0, episodes, batch):
        ids = range(first, min(first + batch, episodes))
        envs_ = {i: gym.make(envs.env_id(task)) for i in ids}
        obs, infos = {}, {}
        for i, env in envs_.items():
            o, infos[i] = env.reset(seed=seed + i, options=options)
            obs[i] = o["privileged"]
        steps = collections.Counter()
        while envs_:
            live = list(envs_)
            actions = teacher.act(np.stack([obs[i] for i in live]))  # (B, Da)
            for i, action in zip(live, actions, strict=True):
                o, reward, terminated, truncated, info = envs_[i].step(action)
                obs[i], steps[i] = o["privileged"], steps[i] + 1
                returns[i] += reward
                if terminated:
                    falls.append((i, steps[i], info.get("falls", ["terminated"]), o["privileged"], info))
                if terminated or truncated:
                    envs_.pop(i).close()
                    bar.update()
    bar.close()
    _report(task, returns, falls, episodes, seed)


def _report(task: str, returns: np.ndarray, falls: list, episodes: int, seed: int) -> None:
    low, high = wilson(len(falls), episodes)
    print(f"{task}: {episodes} episodes (seeds {seed}+): return {returns.mean():.2f} ± {returns.std():.2f}")
    rate = len(falls) / episodes
    print(f"falls {len(falls)}/{episodes} = {rate:.1%} (95% interval {low:.1%} to {high:.1%})")
    causes = collections.Counter(c for f in falls for c in f[2])
    print("causes:", dict(causes.most_common()))
    go2 = task.startswith("go2")
    for i, step, cause, obs, info in sorted(falls, key=lambda f: f[0]):
        dyn = {k: round(v, 2) for k, v in info["dynamics"].items()}
        where = f"step {step}" + (f" ({step % COMMAND_PERIOD} after the command)" if go2 else "")
        command = f" command {np.round(obs[9:12], 2)}" if go2 else ""
        print(f"  seed {seed + i}: {where} {cause}{command}\n    {dyn}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher", type=Path, help="a teacher directory (RUN_DIR/teacher)")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=777000, help="first episode seed (default: the eval seeds)")
    p.add_argument("--nominal", action="store_true", help="nominal dynamics instead of the randomization")
    p.add_argument("--batch", type=int, default=50, help="episodes open at once")
    a = p.parse_args()
    run(a.teacher, a.episodes, a.seed, a.nominal, a.batch)


if __name__ == "__main__":
    main()
