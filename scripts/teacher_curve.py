"""A teacher run's learning curve as a PNG: training and evaluation returns against env steps, and the
training episodes' length against wall time (falls shorten them; a resumed run's time continues).

    python scripts/teacher_curve.py RUN_DIR OUT.png [--title TEXT]

Reads `RUN_DIR/logs/teacher/teacher.jsonl` (the metric log of `train-teacher`) and the evaluations kept in
`RUN_DIR/teacher/checkpoints/state.json`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def rows_with(run_dir: Path, key: str) -> list[dict]:
    """Rows of the training log that carry `key`."""
    path = run_dir / "logs" / "teacher" / "teacher.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if not math.isnan(r.get(key, float("nan")))]


def training_minutes(elapsed: list[float]) -> list[float]:
    """Wall time over the whole run: SB3's `time_elapsed` restarts at 0 in a resumed run, so each
    segment continues from where the one before it stopped (the time between them not counted)."""
    minutes, offset, last = [], 0.0, 0.0
    for seconds in elapsed:
        if seconds < last:
            offset += last
        last = seconds
        minutes.append((offset + seconds) / 60)
    return minutes


def plot(run_dir: Path, out: Path, title: str) -> Path:
    roll = rows_with(run_dir, "rollout/ep_rew_mean")
    state = json.loads((run_dir / "teacher" / "checkpoints" / "state.json").read_text())
    evals = state["evals"]  # [step, mean, std]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot([r["step"] / 1e6 for r in roll], [r["rollout/ep_rew_mean"] for r in roll], lw=0.8,
              label="training episodes (stochastic)")  # fmt: skip
    left.errorbar([e[0] / 1e6 for e in evals], [e[1] for e in evals], yerr=[e[2] for e in evals], fmt="o",
                  ms=2.5, lw=0.6, label="evaluation (deterministic, mean ± std)")  # fmt: skip
    info = run_dir / "teacher" / "teacher.json"  # the published teacher's checkpoint (teacher.keep)
    kept = json.loads(info.read_text())["checkpoint_step"] if info.exists() else state["best_step"]
    left.axvline(kept / 1e6, color="gray", ls=":", label="kept checkpoint")
    left.set(xlabel="env steps (M)", ylabel="episode return", title=title)
    left.legend(fontsize=7)
    levels = rows_with(run_dir, "train/terrain_level")  # teacher.terrain_curriculum
    if levels:
        twin = left.twinx()
        twin.plot([r["step"] / 1e6 for r in levels], [r["train/terrain_level"] for r in levels],
                  color="tab:green", lw=0.8)  # fmt: skip
        twin.set_ylabel("training envs' mean terrain level", color="tab:green")
    timed = [r for r in roll if "time/time_elapsed" in r]
    minutes = training_minutes([r["time/time_elapsed"] for r in timed])
    right.plot(minutes, [r["rollout/ep_len_mean"] for r in timed], lw=0.8)
    right.set(xlabel="wall time (min)", ylabel="training episode length (steps)",
              title="episode length (falls shorten it)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--title", default="teacher")
    args = parser.parse_args()
    print(plot(args.run_dir, args.out, args.title))


if __name__ == "__main__":
    main()
