import subprocess
import sys

from sim2real.cli import STAGES, config_problem, main


def test_help_lists_every_stage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for stage in STAGES:
        assert stage in out


def test_unknown_config_key_is_one_line_naming_the_key():
    problem = config_problem(["teacher.no_such_key=1"])
    assert problem is not None and "no_such_key" in problem and "\n" not in problem


def test_unknown_task_lists_known_tasks():
    problem = config_problem(["task=nope"])
    assert "task/nope" in problem and "pendulum" in problem


def test_unknown_randomization_parameter_is_refused():
    assert "masss" in config_problem(["task.randomization.masss=[1,2]"])


def test_inspect_prints_student_and_privileged_contents():
    out = subprocess.run(
        [sys.executable, "-m", "sim2real", "inspect", "steps=2", "logger=none", "run_dir=/tmp/s2r-inspect"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "pole/cos" in out.stdout and "dynamics in force" in out.stdout and "privileged" in out.stdout


def test_sigterm_stops_a_teacher_run_with_its_checkpoint_saved(tmp_path):
    """`docker stop`, systemd or a closed session send SIGTERM/SIGHUP: the stage stops as on Ctrl-C, with a
    checkpoint a rerun resumes from, not killed between checkpoints."""
    import json
    import signal
    import time

    run = tmp_path / "run"
    overrides = ["task=pendulum", f"run_dir={run}", "logger=none", "teacher.algo=ppo", "teacher.eval_freq=0"]
    overrides += ["teacher.total_timesteps=10000000", "teacher.progress=false"]
    overrides += ["teacher.checkpoint_freq=4096"]
    state_path = run / "teacher" / "checkpoints" / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim2real", "train-teacher", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not state_path.exists() and time.monotonic() < deadline:  # learning has begun
            time.sleep(0.1)
        first = json.loads(state_path.read_text())["num_timesteps"]
        time.sleep(1.0)
        written = state_path.stat().st_mtime_ns
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0 and "interrupted at step" in out, out[-2000:]
    step = int(out.split("interrupted at step ")[1].split(";")[0])
    assert state_path.stat().st_mtime_ns > written  # the stop wrote the checkpoint
    assert json.loads(state_path.read_text())["num_timesteps"] == step and first <= step < 10_000_000


def test_sigterm_ends_a_stage_with_one_line_and_keeps_what_it_committed(tmp_path):
    """A stage stopped on purpose (SIGTERM from `docker stop` or systemd) exits with the shell's 128 + 15
    and one line saying how to continue, not a traceback; its committed episodes stay readable."""
    import signal
    import time

    from sim2real.data.store import DemoStore

    run = tmp_path / "run"
    args = ["collect", "task=pendulum", "expert=scripted", "collect.episodes=100000", f"run_dir={run}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim2real", *args, "logger=none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "demos.zarr").exists() and time.monotonic() < deadline:  # collecting has begun
            time.sleep(0.1)
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err
    stop_lines = [line for line in err.replace("\r", "\n").splitlines() if "stopped by SIGTERM" in line]
    assert len(stop_lines) == 1 and "collect.resume=true" in stop_lines[0]
    assert 0 < DemoStore.open(run / "demos.zarr").num_episodes < 100000
