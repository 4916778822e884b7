"""Data-parallel distillation: one process vs `torchrun --nproc-per-node N` with the same global batch.

Collects a store with the scripted pendulum expert, then runs `sim2real distill` (BC, no rollouts) once
in one process and once under torchrun, and prints both throughputs (training sequences/s from the
manifests) and how far the N-process run strays from the one-process one: the largest per-step loss
difference and the largest weight difference at the end. The scale of float rounding alone: on the CPU
the same one-process run with 2 intra-op threads instead of 1 (other summation orders, nothing else).

    python benchmarks/distill_ddp.py [--nproc 2] [--steps 200] [--device cpu|cuda] [hydra overrides...]
    python benchmarks/distill_ddp.py --nproc 8 --device cuda student.n_embd=128 distill.batch_size=4096
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def sh(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(args)}\n{proc.stderr[-3000:]}")


def result(student: Path) -> tuple[dict[int, float], float, dict[str, np.ndarray]]:
    """(loss per step, sequences/s, final weights) of a finished distill run."""
    rows = [json.loads(line) for line in (student / "distill.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}
    rate = json.loads((student / "manifest.json").read_text())["summary"]["sequences_per_s"]
    return losses, rate, load_file(str(student / "model.safetensors"))


def gap(
    la: dict[int, float], wa: dict[str, np.ndarray], lb: dict[int, float], wb: dict[str, np.ndarray]
) -> str:
    a, b = np.array([la[s] for s in sorted(la)]), np.array([lb[s] for s in sorted(la)])
    first = next((s for s in sorted(la) if la[s] != lb[s]), None)
    rel = np.abs(a - b) / np.abs(a)
    dw = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
    return (f"loss max relative difference {rel[:20].max():.1e} over the first 20 steps, {rel.max():.1e} "
            f"over {len(a)} (first difference at step {first}); final weights max |Δ| {dw:.1e}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--episodes", type=int, default=20, help="demonstration episodes to collect")
    p.add_argument("--device", default="cpu")
    args, overrides = p.parse_known_args()
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.setdefault("OMP_NUM_THREADS", "1")
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="s2r-bench-ddp-") as tmp:
        t = Path(tmp)
        collect = ["collect", "task=pendulum", "expert=scripted", f"collect.episodes={args.episodes}"]
        sh([py, "-m", "sim2real", *collect, f"run_dir={t}", "logger=none"], env)
        distill = [
            "distill", "task=pendulum", f"data={t / 'demos.zarr'}", f"device={args.device}",
            f"distill.steps={args.steps}", "distill.log_every=1", "distill.val_every=0",
            "distill.eval_every=0", "distill.eval_episodes=0", "distill.checkpoint_every=0", *overrides,
        ]  # fmt: skip
        sh([py, "-m", "sim2real", *distill, f"run_dir={t / 'one'}"], env)
        torchrun = [py, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}"]
        sh([*torchrun, "-m", "sim2real", *distill, f"run_dir={t / 'ddp'}"], env)
        if args.device == "cpu":
            sh([py, "-m", "sim2real", *distill, f"run_dir={t / 'ref'}", "distill.threads=2"], env)
        (la, ra, wa), (lb, rb, wb) = result(t / "one" / "student"), result(t / "ddp" / "student")
        ref = result(t / "ref" / "student") if args.device == "cpu" else None
    params = sum(v.size for v in wa.values())
    print(f"distill on {args.device}, {params} parameters (weights and buffers), {args.steps} steps, "
          f"overrides {overrides or 'none'}:")  # fmt: skip
    print(f"  1 process: {ra:,.0f} sequences/s | {args.nproc} processes (DDP): {rb:,.0f} sequences/s "
          f"(x{rb / ra:.2f})")  # fmt: skip
    print(f"  {args.nproc} processes vs 1: {gap(la, wa, lb, wb)}")
    if ref is not None:
        print(f"  reference, 1 process with 2 threads vs 1 thread: {gap(la, wa, ref[0], ref[2])}")


if __name__ == "__main__":
    main()
