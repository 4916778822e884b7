"""Per-step cost of the randomized tasks against the bare envs they wrap.

For every task, the randomized task (`gym.make` of our id) and the bare env (`gym.make` of
Gymnasium's `-v5` env, or of the bare MuJoCo pendulum `envs.pendulum.PendulumSwingupBase` or Go2
`envs.go2_env.Go2Env` registered the same way, so both carry the same standard wrappers) are stepped with
the same random actions, taking turns step by step; steps/s is 1 / (mean step time without the slowest 1%).
Resets (after termination or truncation) are not timed. Goal: ratio (bare steps/s over randomized,
i.e. the randomized task's time per step over the bare env's) ≤ 1.2.

    python benchmarks/env_step.py [--steps 10000] [--tasks pendulum hopper ...]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import envs

BARE_PENDULUM_ID = "sim2real_bench/PendulumSwingupBase-v0"
BARE_GO2_ID = "sim2real_bench/Go2Base-v0"
BARE_IDS = {
    "pendulum": BARE_PENDULUM_ID,
    "hopper": "Hopper-v5",
    "walker2d": "Walker2d-v5",
    "halfcheetah": "HalfCheetah-v5",
    "ant": "Ant-v5",
    "go2": BARE_GO2_ID,
}


def _register_bare() -> None:
    for bare_id, task, entry in (
        (BARE_PENDULUM_ID, "pendulum", "envs.pendulum:PendulumSwingupBase"),
        (BARE_GO2_ID, "go2", "envs.go2_env:Go2Env"),
    ):
        if bare_id not in gym.registry:
            gym.register(bare_id, entry, max_episode_steps=envs.spec(task).episode_steps)


def interleaved_step_times(envs_: list[gym.Env], actions: np.ndarray) -> np.ndarray:
    """Seconds per step (N, len(envs_)): the envs take turns step by step, in alternating order.

    Stepping in turn exposes every env to the same machine state (frequency, other processes), so the
    comparison stays fair on a busy or throttled CPU. Resets after an episode ends are not timed.
    """
    clock = time.perf_counter
    times = np.empty((len(actions), len(envs_)))
    order = list(range(len(envs_)))
    for i, action in enumerate(actions):
        for k in order if i % 2 == 0 else order[::-1]:
            start = clock()
            _, _, terminated, truncated, _ = envs_[k].step(action)
            times[i, k] = clock() - start
            if terminated or truncated:
                envs_[k].reset()
    return times


def robust_mean(times: np.ndarray, drop: float = 0.01) -> float:
    """Mean of the fastest (1 - drop) of the step times: drops preemption spikes, keeps slow physics."""
    return float(np.sort(times)[: max(1, int(len(times) * (1 - drop)))].mean())


def bench_task(task: str, steps: int, seed: int) -> tuple[float, float]:
    """(randomized steps/s, bare steps/s) over the same `steps` random actions, stepped in turn."""
    randomized = gym.make(envs.env_id(task))
    bare = gym.make(BARE_IDS[task])
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(steps, randomized.action_space.shape[0])).astype(np.float32)
    randomized.reset(seed=seed)
    bare.reset(seed=seed)
    interleaved_step_times([randomized, bare], actions[: steps // 10])  # warm-up: first-step checks, caches
    times = interleaved_step_times([randomized, bare], actions)
    randomized.close()
    bare.close()
    return 1.0 / robust_mean(times[:, 0]), 1.0 / robust_mean(times[:, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--steps", type=int, default=10000, help="timed steps per env and task")
    parser.add_argument("--tasks", nargs="+", default=list(envs.TASKS), choices=list(envs.TASKS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    _register_bare()
    print("| task | randomized (steps/s) | bare env | bare (steps/s) | overhead (µs/step) | ratio | ≤ 1.2 |")
    print("|---|---:|---|---:|---:|---:|:---:|")
    for task in args.tasks:
        rand_sps, bare_sps = bench_task(task, args.steps, args.seed)
        ratio = bare_sps / rand_sps  # = randomized time per step / bare time per step
        overhead_us = 1e6 * (1 / rand_sps - 1 / bare_sps)
        bare_name = BARE_IDS[task].removeprefix("sim2real_bench/")
        ok = "yes" if ratio <= 1.2 else "no"
        cells = [
            task,
            f"{rand_sps:,.0f}",
            bare_name,
            f"{bare_sps:,.0f}",
            f"{overhead_us:.1f}",
            f"{ratio:.3f}",
            ok,
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
