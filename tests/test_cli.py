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
