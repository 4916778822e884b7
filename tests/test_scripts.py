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
    rows += [{"step": 20480 * i, "eval/return_mean": 5.0, "train/terrain_level": 0.2 * i} for i in (1, 2)]
    (run / "logs" / "teacher" / "teacher.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    state = {"best_step": 40960, "evals": [[20480, 5.0, 1.0], [40960, 9.0, 2.0]]}
    (run / "teacher" / "checkpoints" / "state.json").write_text(json.dumps(state))
    (run / "teacher" / "teacher.json").write_text(json.dumps({"checkpoint_step": 59392}))  # teacher.keep=last
    out = tmp_path / "curve.png"
    script = ROOT / "scripts" / "teacher_curve.py"
    done = subprocess.run([sys.executable, str(script), str(run), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_episode_ends_counts_an_exported_policys_episodes_as_the_deploy_api_runs_them():
    import gymnasium as gym

    import envs
    from sim2real.deploy import load_policy

    release = ROOT / "release" / "go2"
    script = ROOT / "scripts" / "episode_ends.py"
    cmd = [sys.executable, str(script), str(release), "--episodes", "1", "--seed", "5", "--nominal"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    policy, env = load_policy(release), gym.make(envs.env_id("go2"))
    obs, _ = env.reset(seed=5, options={"dynamics": envs.parameters.nominal("go2")})
    ret, done_ = 0.0, False
    while not done_:
        obs, reward, terminated, truncated, _ = env.step(policy.act(obs["student"]))
        ret, done_ = ret + float(reward), terminated or truncated
    assert f"go2: 1 episodes (seeds 5+): return {ret:.2f}" in done.stdout
    assert f"falls {int(terminated)}/1" in done.stdout


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_teacher_curve_continues_a_resumed_runs_wall_time():
    minutes = _script("teacher_curve").training_minutes([60.0, 120.0, 30.0, 90.0, 15.0])
    assert minutes == [1.0, 2.0, 2.5, 3.5, 3.75]  # SB3's clock restarted twice


def test_episode_ends_counts_falls_per_terrain_row_and_kind_of_ground(capsys):
    import numpy as np

    from sim2real.teacher.evaluate import EpisodeEnd

    module = _script("episode_ends")
    ends = [
        EpisodeEnd(1.0, 10, fell, {"dynamics": {"terrain_level": level}, "ground": ground}, np.zeros(3))
        for level, fell, ground in (
            (0.0, False, "slope"), (0.1, True, "stairs"), (0.9, True, "stairs"), (1.0, False, "border"),
            (0.55, False, "stairs"),
        )
    ]  # fmt: skip
    module._by_row(ends)
    assert capsys.readouterr().out.strip().splitlines() == [
        "falls by terrain row: 0: 1/2, 2: 0/1, 4: 1/2",
        "falls by the ground under the trunk at the end: border: 0/1, slope: 0/1, stairs: 2/3",
    ]
    module._by_row([*ends[:1], EpisodeEnd(1.0, 10, True, {"dynamics": {}}, np.zeros(3))])  # flat: no rows
    assert capsys.readouterr().out == ""
