"""Single-step latency of `policy.act` through onnxruntime on one core: streaming vs full-window recompute.

    .venv/bin/python benchmarks/inference.py [--export RUN/export] [--steps 10000] [--core 0]

Without --export it exports an untrained student of the default config (`student.*` defaults,
pendulum layout) to a temp dir: latency depends on the architecture, not on the weights. Each policy
runs 1,000 warm-up steps, then `--steps` timed steps (history reset every 1,000 steps, as episodes
would), pinned to one core. Goal: streaming p99 ≤ 200 µs (a 1 kHz loop with 5× headroom).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

GOAL_P99_US = 200.0


def default_export(out_dir: Path) -> Path:
    """Export an untrained default-config student for the pendulum to `out_dir` (no parity run)."""
    import gymnasium as gym
    import torch

    import envs
    from sim2real.export import build_metadata, write_export
    from sim2real.student.checkpoint import build_model
    from sim2real.student.config import StudentConfig
    from sim2real.student.model import ModelConfig

    torch.set_num_threads(1)
    env = gym.make(envs.env_id("pendulum"))
    u, s = env.unwrapped, StudentConfig()
    cfg = ModelConfig(
        arch=s.arch,
        obs_dim=len(u.student_names),
        action_dim=len(u.action_names),
        attn_window=s.attn_window,
        n_layer=s.n_layer,
        n_head=s.n_head,
        n_embd=s.n_embd,
        mlp_hidden=s.mlp_hidden,
        obs_names=list(u.student_names),
        action_names=list(u.action_names),
        task="pendulum",
        control_dt=u.dt,
        history=s.history,
    )
    model = build_model(cfg).eval()
    meta = build_metadata(model, env.action_space.low, env.action_space.high, "untrained")
    write_export(out_dir, model, meta, window=True, torchscript=False)
    return out_dir


def time_policy(policy, obs: np.ndarray, steps: int, warmup: int = 1000, episode: int = 1000) -> np.ndarray:
    """Per-step latency in µs of `policy.act` over `steps` timed steps (after `warmup`)."""
    policy.reset()
    for i in range(warmup):
        policy.act(obs[i % len(obs)])
    out = np.empty(steps)
    clock = time.perf_counter_ns
    for i in range(steps):
        if i % episode == 0:
            policy.reset()
        o = obs[i % len(obs)]
        t = clock()
        policy.act(o)
        out[i] = clock() - t
    return out / 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--export", type=Path, default=None)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--core", type=int, default=0)
    args = p.parse_args()
    os.sched_setaffinity(0, {args.core})
    export = args.export or default_export(Path(tempfile.mkdtemp(prefix="s2r-bench-")) / "export")

    from sim2real.deploy import load_policy, load_window_policy

    policy = load_policy(export)
    spec = policy.spec
    obs = np.random.default_rng(0).normal(size=(4096, spec.obs_dim)).astype(np.float32)
    print(
        f"inference benchmark: {export} ({spec.task}, history {spec.history}, state {spec.state_dim} floats)"
    )
    print(
        f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"pinned to core {args.core}"
    )
    results = {"streaming": time_policy(policy, obs, args.steps)}
    if (export / "policy_window.onnx").is_file():
        results[f"full-window (H={spec.history})"] = time_policy(load_window_policy(export), obs, args.steps)
    for name, us in results.items():
        p50, p99, p999 = np.percentile(us, [50, 99, 99.9])
        print(f"{name:>22}: p50 {p50:7.1f} us  p99 {p99:7.1f} us  p99.9 {p999:7.1f} us  ({len(us)} steps)")
    p99 = float(np.percentile(results["streaming"], 99))
    verdict = "meets" if p99 <= GOAL_P99_US else "misses"
    print(f"streaming p99 {p99:.1f} us {verdict} the goal of <= {GOAL_P99_US:.0f} us")


if __name__ == "__main__":
    main()
