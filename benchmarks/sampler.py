"""Window sampling throughput from a 1M-step store on one CPU core (goal: >= 100,000 windows/s).

Writes a synthetic schema-v1 store (walker2d-sized by default: 25 student dims, 21 privileged,
6 actions, 1000-step episodes) to a temporary directory with `DemoStore`, loads it once into a
`WindowSampler`, and times `sample(256)` with K=32 after a warm-up. Also reports the one-off load.

    python benchmarks/sampler.py [--steps 1000000] [--history 32] [--batch 256] [--seconds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sim2real.data.sampler import WindowSampler
from sim2real.data.schema import Episode, StoreSpec
from sim2real.data.store import DemoStore


def write_synthetic(path: Path, steps: int, ds: int, dp: int, da: int, episode: int) -> None:
    rng = np.random.default_rng(0)
    spec = StoreSpec(
        task=None,
        student_names=tuple(f"s{i}" for i in range(ds)),
        privileged_dim=dp,
        action_names=tuple(f"a{i}" for i in range(da)),
        action_low=(-1.0,) * da,
        action_high=(1.0,) * da,
    )
    f = lambda *s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    with DemoStore.create(path, spec) as store:
        for start in range(0, steps, 100 * episode):
            n_eps = min(100, (steps - start) // episode)
            eps = [
                Episode(f(episode, ds), f(episode, dp), f(episode, da), f(episode, da), f(episode))
                for _ in range(n_eps)
            ]
            store.append_episodes(eps, {"kind": "expert", "expert": "synthetic"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--history", type=int, default=32)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seconds", type=float, default=5.0, help="timed sampling per round")
    p.add_argument("--dims", type=int, nargs=3, default=(25, 21, 6), metavar=("DS", "DP", "DA"))
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.zarr"
        t0 = time.perf_counter()
        write_synthetic(path, args.steps, *args.dims, episode=1000)
        t1 = time.perf_counter()
        sampler = WindowSampler(DemoStore.open(path), history=args.history, device=args.device)
        t2 = time.perf_counter()
        for _ in range(20):
            sampler.sample(args.batch)  # warm-up
        best = 0.0
        for _ in range(3):
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds / 3:
                sampler.sample(args.batch)
                n += 1
            best = max(best, n * args.batch / (time.perf_counter() - start))
    ds, dp, da = args.dims
    print(
        f"store: {args.steps:,} steps (Ds={ds}, Dp={dp}, Da={da}) written in {t1 - t0:.1f} s, "
        f"loaded in {t2 - t1:.1f} s"
    )
    verdict = "meets" if best >= 100_000 else "misses"
    print(
        f"sampler: {best:,.0f} windows/s (K={args.history}, batch {args.batch}, 1 thread, {args.device}); "
        f"{verdict} the goal of 100,000"
    )


if __name__ == "__main__":
    main()
