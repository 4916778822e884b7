"""How a teacher's or an exported student's episodes end: return, falls with a 95% interval, and for each
fall its cause, step and command (the Go2 reports which fall condition held: trunk or hip contact, tilt, low
trunk).

    python scripts/episode_ends.py RUN_DIR/teacher --episodes 200 [--seed 777000] [--nominal]
    python scripts/episode_ends.py release/go2 --episodes 200   # an export: policy.onnx, deploy API

Episodes run under the task's training randomization (or nominal dynamics), seeds `seed + i`; the teacher
acts deterministically on all live episodes at once, an exported policy on one episode at a time, as
deployed (its history reset at each start). Thirty episodes cannot tell a 2% fall rate from 10%; a few
hundred can.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import envs
from envs import parameters, terrain
from envs.go2 import COMMAND_PERIOD  # control steps between command draws
from sim2real.deploy import load_policy
from sim2real.teacher.evaluate import EpisodeEnd, ExpertEvaluator, task_metrics
from sim2real.teacher.policy import load_teacher


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% score interval of a rate k/n: unlike k/n ± se it stays inside [0, 1] for rare events."""
    p, d = k / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def run(path: Path, episodes: int, seed: int, nominal: bool, batch: int) -> None:
    if (path / "policy.onnx").exists():
        task = json.loads((path / "policy.json").read_text())["task"]
        return _report(task, policy_episodes(path, task, episodes, seed, nominal), seed)
    teacher = load_teacher(path)
    ends: list[EpisodeEnd] = []
    for first in tqdm(range(0, episodes, batch), desc=f"batches of {batch} episodes"):
        evaluator = ExpertEvaluator(teacher.task, None, min(batch, episodes - first), seed + first)
        ends += evaluator.episodes(teacher, nominal, metrics=True)
        evaluator.close()
    _report(teacher.task, ends, seed)


def policy_episodes(export: Path, task: str, episodes: int, seed: int, nominal: bool) -> list[EpisodeEnd]:
    """Each episode of the exported policy, through the deploy API on the student observation."""
    policy, env = load_policy(export), gym.make(envs.env_id(task))
    options = {"dynamics": parameters.nominal(task)} if nominal else None
    ends = []
    for i in tqdm(range(episodes), desc="episodes"):
        obs, _ = env.reset(seed=seed + i, options=options)
        policy.reset()
        end, done, trace = EpisodeEnd(0.0, 0, False, {}, obs["privileged"]), False, []
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs["student"]))
            end.ret, end.steps, done = end.ret + float(reward), end.steps + 1, terminated or truncated
            trace.append((obs["privileged"], float(reward)))
        end.terminated, end.info, end.privileged = bool(terminated), info, obs["privileged"]
        end.metrics = task_metrics(task, trace, end.terminated)
        ends.append(end)
    env.close()
    return ends


def _report(task: str, ends: list[EpisodeEnd], seed: int) -> None:
    returns, falls = np.array([e.ret for e in ends]), [(i, e) for i, e in enumerate(ends) if e.terminated]
    n, low, high = len(ends), *wilson(len(falls), len(ends))
    print(f"{task}: {n} episodes (seeds {seed}+): return {returns.mean():.2f} ± {returns.std():.2f}")
    print(f"falls {len(falls)}/{n} = {len(falls) / n:.1%} (95% interval {low:.1%} to {high:.1%})")
    causes = collections.Counter(c for _, e in falls for c in e.info.get("falls", ["terminated"]))
    print("causes:", dict(causes.most_common()))
    _metrics(ends)
    _by_row(ends)
    go2 = task.startswith("go2")
    for i, e in falls:
        dyn = {k: round(v, 2) for k, v in e.info["dynamics"].items()}
        where = f"step {e.steps}" + (f" ({e.steps % COMMAND_PERIOD} after the command)" if go2 else "")
        where += f" on {e.info['ground']}" if "ground" in e.info else ""
        command = f" command {np.round(e.privileged[9:12], 2)}" if go2 else ""
        print(f"  seed {seed + i}: {where} {e.info.get('falls', ['terminated'])}{command}\n    {dyn}")


def _metrics(ends: list[EpisodeEnd]) -> None:
    """The task's own metrics (the Go2's tracking errors), mean over the episodes that have them."""
    names = sorted({k for e in ends for k in e.metrics})
    if names:
        means = {k: np.nanmean([e.metrics.get(k, np.nan) for e in ends]) for k in names}
        print("metrics:", ", ".join(f"{k} {v:.3f}" for k, v in means.items()))


def _by_row(ends: list[EpisodeEnd]) -> None:
    """Rough ground: falls per row of the terrain map (`terrain_level` 0 gentlest to 1 hardest)."""
    levels = [e.info.get("dynamics", {}).get("terrain_level") for e in ends]
    if any(level is None for level in levels):
        return
    rows = [terrain.row_of(level) for level in levels]
    _tally("falls by terrain row", list(zip(rows, ends, strict=True)))
    _tally("falls by the ground under the trunk at the end", [(e.info.get("ground", "?"), e) for e in ends])


def _tally(title: str, groups: list[tuple[object, EpisodeEnd]]) -> None:
    counts = collections.defaultdict(lambda: [0, 0])  # group -> [falls, episodes]
    for group, e in groups:
        counts[group][0] += e.terminated
        counts[group][1] += 1
    print(f"{title}:", ", ".join(f"{g}: {f}/{n}" for g, (f, n) in sorted(counts.items(), key=str)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="RUN_DIR/teacher, or an export folder (policy.onnx)")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=777000, help="first episode seed (default: the eval seeds)")
    p.add_argument("--nominal", action="store_true", help="nominal dynamics instead of the randomization")
    p.add_argument("--batch", type=int, default=50, help="episodes open at once")
    a = p.parse_args()
    run(a.policy, a.episodes, a.seed, a.nominal, a.batch)


if __name__ == "__main__":
    main()
