"""The repository's scripts, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_teacher_curve_draws_a_png_from_a_teacher_runs_logs(tmp_path):
    run = tmp_path / "run"
    (run / "logs" / "teacher").mkdir(parents=True)
    (run / "teacher" / "checkpoints").mkdir(parents=True)
    rows = [
        {"step": 2048 * i, "rollout/ep_rew_mean": float(i), "rollout/ep_len_mean": 900.0 + i,
         "time/time_elapsed": 3.0 * i}
        for i in range(1, 30)
    ] + [{"step": 60000, "train/loss": 0.1, "rollout/ep_rew_mean": float("nan")}]  # fmt: skip
    (run / "logs" / "teacher" / "teacher.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    state = {"best_step": 40960, "evals": [[20480, 5.0, 1.0], [40960, 9.0, 2.0]]}
    (run / "teacher" / "checkpoints" / "state.json").write_text(json.dumps(state))
    out = tmp_path / "curve.png"
    script = ROOT / "scripts" / "teacher_curve.py"
    done = subprocess.run([sys.executable, str(script), str(run), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
