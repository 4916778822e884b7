"""Offline replay of deployment logs: the policy that made a log replays it to ~0 difference, another
policy (or another observation mapping) does not, and the exit status gates on it.

The logs are real: the controller runs a tiny exported policy against the pendulum simulator
(`MujocoRobot`) or a scripted robot whose sensors go stale, writing a Zarr deployment log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_deploy_controller import ScriptedRobot
from test_deploy_policy import TinyPolicy, tiny_export

from sim2real.cli import main as cli_main
from sim2real.deploy import Controller, ControllerConfig, DeployLog, MujocoRobot, load_policy
from sim2real.deploy.log import log_attrs
from sim2real.deploy.replay import ReplayConfig, replay
from sim2real.export import build_metadata, write_export

ROOT = Path(__file__).resolve().parent.parent


def _export(out: Path, seed: int = 0, obs_names=None) -> Path:
    model = TinyPolicy(history=4, gain=2.0, seed=seed)
    if obs_names is not None:
        model.cfg.obs_names = list(obs_names)
    write_export(out, model, build_metadata(model, [-1.0], [1.0], "0" * 64), torchscript=False)
    return out


def _record(run_dir: Path, robot, episodes: int, steps: int, **ctl) -> Path:
    """A deployment log at <run_dir>/deploy/log.zarr made by <run_dir>/export driving `robot`."""
    policy = load_policy(run_dir / "export")
    spec = policy.spec
    robot.connect()
    path = run_dir / "deploy" / "log.zarr"
    log = DeployLog(
        path,
        log_attrs(spec, "test", {"validated": False}),
        spec.obs_names,
        spec.action_names,
        privileged_dim=getattr(robot, "privileged_dim", 0),
        dynamics_names=getattr(robot, "dynamics_names", ()),
    )
    cfg = ControllerConfig(**{"rate_hz": 1000.0, "soft_start_s": 0.0, "handle_sigint": False, **ctl})
    controller = Controller(policy, robot, cfg, log)
    for ep in range(episodes):
        controller.run(steps=steps, seed=ep)
    log.close()
    robot.close()
    return path


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory) -> Path:
    """Two pendulum episodes (MuJoCo) under export seed 0, with soft start and clipping in the loop."""
    run_dir = tmp_path_factory.mktemp("replay")
    _export(run_dir / "export")
    robot = MujocoRobot("pendulum", {"obs_noise_scale": 1.0})
    return _record(run_dir, robot, episodes=2, steps=80, soft_start_s=0.01)


@pytest.fixture(scope="module")
def other_export(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("other") / "export", seed=1)


def test_the_policy_that_made_the_log_replays_it_exactly(sim_log):
    r = replay(ReplayConfig(log=sim_log))  # export found beside the log: <run_dir>/export
    assert r["passed"] and r["same_artifact"] is True
    assert r["episodes"] == 2 and r["steps"] == 160 and r["compared"] == 160
    assert r["max_abs_diff"] <= 1e-6 and r["first_over"] is None
    saved = json.loads(Path(r["report_path"]).read_text())
    assert Path(r["report_path"]).parent == sim_log.parent and saved["max_abs_diff"] == r["max_abs_diff"]


def test_another_policy_shows_a_large_difference_and_where_it_starts(sim_log, other_export, tmp_path):
    r = replay(ReplayConfig(log=sim_log, export=other_export, out=tmp_path / "r.json"))
    assert not r["passed"] and r["same_artifact"] is False
    assert r["max_abs_diff"] > 0.1 and r["steps_over_tolerance"] > 100
    assert r["first_over"]["episode"] == 0 and r["first_over"]["step"] < 5
    assert set(r["per_action"]) == {"torque"} and len(r["per_episode_max"]) == 2


def test_cli_replay_exit_status_gates_on_the_tolerance(sim_log, other_export, capsys, tmp_path):
    assert cli_main(["deploy", "replay", f"log={sim_log}"]) == 0
    ok = capsys.readouterr().out
    assert "replay: ok" in ok and "the artifact that made the log" in ok
    out = tmp_path / "other.json"
    assert cli_main(["deploy", "replay", f"log={sim_log}", f"export={other_export}", f"out={out}"]) == 1
    bad = capsys.readouterr().out
    assert "replay: DIFFERS" in bad and "NOT the artifact that made the log" in bad
    assert "first step over tolerance: " in bad and out.is_file()
    loose = [
        "deploy",
        "replay",
        f"log={sim_log}",
        f"export={other_export}",
        "replay.tolerance=10",
        f"out={out}",
    ]
    assert cli_main(loose) == 0  # |Δ| ≤ 2·gain: everything is within a tolerance of 10


def test_replay_follows_the_controllers_resets_and_skips(tmp_path):
    """Stale sensors (unlatched: the controller clears the policy's history and resumes), a NaN reading
    and the waiting steps are replayed as the controller lived them: still an exact match."""
    _export(tmp_path / "export")
    robot = ScriptedRobot(silent_after=15, back_after=40, nan_steps={8})
    _record(tmp_path, robot, 1, 70, rate_hz=200.0, stale_after_s=0.03, latch_faults=False)
    r = replay(ReplayConfig(log=tmp_path / "deploy" / "log.zarr"))
    assert r["skipped"] > 10 and r["compared"] > 30  # stale + waiting + NaN steps are not compared
    assert r["passed"] and r["max_abs_diff"] <= 1e-6


def test_a_drifted_observation_mapping_is_named(sim_log, tmp_path, capsys):
    swapped = _export(tmp_path / "export", obs_names=["pole/sin", "pole/cos", "prev_action/torque"])
    assert cli_main(["deploy", "replay", f"log={sim_log}", f"export={swapped}"]) == 2
    err = capsys.readouterr().err
    assert "student_obs entry 0 of the log is 'pole/cos', the policy expects 'pole/sin'" in err


def test_bad_arguments_and_paths_are_one_line_errors(tmp_path, capsys):
    assert cli_main(["deploy", "replay", f"log={tmp_path / 'nope.zarr'}"]) == 2
    assert "nope.zarr" in capsys.readouterr().err
    assert cli_main(["deploy", "replay", "log=x.zarr", "tolerance=abc"]) == 2
    assert "replay.tolerance='abc'" in capsys.readouterr().err
    assert cli_main(["deploy", "replay", "logfile=x.zarr"]) == 2
    assert "expected one of log=" in capsys.readouterr().err
    assert cli_main(["deploy", "replay", "--help"]) == 0
    assert "log=PATH.zarr" in capsys.readouterr().out


def test_log_outside_a_run_dir_asks_for_the_export(sim_log, tmp_path, capsys):
    import shutil

    moved = shutil.copytree(sim_log, tmp_path / "elsewhere" / "log.zarr")
    assert cli_main(["deploy", "replay", f"log={moved}"]) == 2
    assert "export=DIR" in capsys.readouterr().err


def test_replay_runs_without_torch_or_mujoco(sim_log, tmp_path):
    """`python -m sim2real.deploy replay` is the robot computer's entry: deploy-runtime imports only."""
    code = (
        "import sys\n"
        "for name in ('torch', 'mujoco', 'gymnasium', 'hydra', 'stable_baselines3'):\n"
        "    sys.modules[name] = None\n"
        "from sim2real.deploy.__main__ import main\n"
        f"sys.exit(main(['replay', 'log={sim_log}', 'out={tmp_path / 'r.json'}']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "replay: ok" in out.stdout


@pytest.mark.slow
def test_cli_deploy_records_the_action_filter_and_its_log_replays(tmp_path):
    """`sim2real deploy deploy.action_filter=0.7` (Hydra, MuJoCo robot) → log attrs → replay passes."""
    tiny_export(tmp_path / "export")
    cmd = [
        sys.executable,
        "-m",
        "sim2real",
        "deploy",
        f"run_dir={tmp_path}",
        "logger=none",
        "deploy.force=true",
    ]
    cmd += ["deploy.rate_hz=1000", "deploy.steps=60", "deploy.action_filter=0.7"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    log = next((tmp_path / "deploy").glob("*.zarr"))
    import zarr

    assert zarr.open_group(str(log), mode="r").attrs["deploy"]["action_filter"] == 0.7
    r = replay(ReplayConfig(log=log))
    assert r["passed"] and r["action_filter"] == 0.7 and r["compared"] == 60
