"""Hydra multirun sweeps (one run dir per job, launcher configs) and `sim2real sweep-summary`."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sim2real.cli import CONF_DIR, config_problem, main, multirun_overrides
from sim2real.errors import UserError
from sim2real.sweep.summary import aggregate, collect, summarize

TINY = [
    "task=pendulum",
    "logger=none",
    "expert=scripted",
    "collect.episodes=4",
    "collect.n_envs=2",
    "collect.progress=false",
    "distill.steps=10",
    "distill.val_every=10",
    "distill.eval_every=0",
    "distill.eval_episodes=1",
    "distill.checkpoint_every=0",
    "pipeline.dagger_rounds=0",
    "export.parity_episodes=1",
    "export.torchscript=false",
    "export.window=false",
    "validate.episodes=2",
    "validate.sweeps=false",
    "validate.stress=false",
    "validate.workers=1",
]


def _sim2real(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sim2real", *args], capture_output=True, text=True, timeout=timeout
    )


def _fake_run(run: Path, seed: int, overrides: list[str] | None, mean: float, score: float, mass="[0.8,1.2]"):
    """A run dir in the layout the pipeline writes (report.json, manifest.json, Hydra's overrides)."""
    (run / "validation").mkdir(parents=True)
    passed = score > 0.85
    student = {"mean": mean, "ci95": [mean - 5, mean + 5], "failure_rate": 0.0 if passed else 0.5}
    report = {
        "gate": {"passed": passed},
        "metrics": {"train": {"student": student, "ratio": {"mean": score}}},
    }
    (run / "validation/report.json").write_text(json.dumps(report))
    config = {"seed": seed, "run_dir": str(run), "task": {"randomization": {"mass_scale": json.loads(mass)}}}
    (run / "validation/manifest.json").write_text(json.dumps({"seed": seed, "config": config}))
    if overrides is not None:
        (run / ".hydra").mkdir()
        (run / ".hydra/overrides.yaml").write_text(yaml.safe_dump(overrides))


def _two_by_two(root: Path, with_overrides: bool = True) -> None:
    runs = [(0, "[0.8,1.2]", -150.0, 0.9), (1, "[0.8,1.2]", -160.0, 0.8), (0, "[0.5,1.5]", -200.0, 0.5)]
    runs.append((1, "[0.5,1.5]", -220.0, 0.3))
    for job, (seed, mass, mean, score) in enumerate(runs):
        ovs = ["stage=pipeline", "run_dir=${hydra:runtime.output_dir}", "logger=none", f"seed={seed}"]
        ovs.append(f"task.randomization.mass_scale={mass}")
        _fake_run(root / str(job), seed, ovs if with_overrides else None, mean, score, mass)


def test_runs_are_grouped_by_overrides_other_than_the_seed(tmp_path):
    _two_by_two(tmp_path)
    results = collect(tmp_path)
    assert [r.group for r in results] == ["task.randomization.mass_scale=[0.8,1.2]"] * 2 + [
        "task.randomization.mass_scale=[0.5,1.5]"
    ] * 2
    assert [r.seed for r in results] == [0, 1, 0, 1]
    wide, narrow = aggregate(results)[::-1]
    assert narrow.student_mean == pytest.approx(-155.0) and narrow.student_std == pytest.approx(math.sqrt(50))
    assert narrow.score_mean == pytest.approx(0.85) and narrow.gates_passed == 1
    assert wide.student_mean == pytest.approx(-210.0) and wide.failure_mean == pytest.approx(0.5)
    assert wide.gates_passed == 0 and wide.seeds == [0, 1]


def test_runs_without_hydra_overrides_are_grouped_by_config_differences(tmp_path):
    _two_by_two(tmp_path, with_overrides=False)
    groups = aggregate(collect(tmp_path))
    assert [g.group for g in groups] == [
        "task.randomization.mass_scale=[0.8, 1.2]",
        "task.randomization.mass_scale=[0.5, 1.5]",
    ]
    assert [g.runs for g in groups] == [2, 2]


def test_runs_that_differ_only_by_seed_form_one_group(tmp_path):
    for seed in (0, 1, 2):
        _fake_run(tmp_path / str(seed), seed, [f"seed={seed}", "logger=none"], -150.0 - seed, 0.9)
    (group,) = aggregate(collect(tmp_path))
    assert group.group == "all runs" and group.runs == 3 and group.student_std == pytest.approx(1.0)


def test_summary_writes_table_files_and_figure(tmp_path):
    _two_by_two(tmp_path)
    _, _, paths = summarize(tmp_path)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["row"] for r in rows] == ["run", "run", "group", "run", "run", "group"]
    assert float(rows[2]["student_return"]) == pytest.approx(-155.0)
    data = json.loads(paths["json"].read_text())
    assert len(data["runs"]) == 4 and len(data["groups"]) == 2
    assert "mean ± std (2)" in paths["md"].read_text()
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_no_reports_is_an_error_naming_the_dir(tmp_path, capsys):
    (tmp_path / "0" / "validation").mkdir(parents=True)  # a job that never reached validation
    assert main(["sweep-summary", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "validation/report.json" in err


def test_unknown_scenario_names_the_report_and_the_scenarios_it_has(tmp_path):
    _two_by_two(tmp_path)
    with pytest.raises(UserError, match=r"0/validation/report.json has no student metrics for .*'stress'"):
        collect(tmp_path, scenario="stress")
    (tmp_path / "1/validation/report.json").write_text('{"metrics": {"train": {"student": {}}}}')
    with pytest.raises(UserError, match=r"1/validation/report.json is not a validation report"):
        collect(tmp_path)


def test_help_lists_sweep_summary(capsys):
    assert main(["--help"]) == 0
    assert "sweep-summary" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["sweep-summary", "--help"])
    assert "--scenario" in capsys.readouterr().out


def test_multirun_gives_every_job_its_own_run_dir():
    own = "run_dir=${hydra:runtime.output_dir}"
    assert multirun_overrides(["-m", "seed=0,1"]) == ["-m", own, "seed=0,1"]
    # a fixed run_dir names the sweep's root; a swept one is the user's choice
    assert multirun_overrides(["seed=0,1", "run_dir=runs/s", "-m"]) == [
        "hydra.sweep.dir=runs/s",
        own,
        "seed=0,1",
        "-m",
    ]
    assert multirun_overrides(["-m", "run_dir=a,b"]) == ["-m", "run_dir=a,b"]
    with pytest.raises(ValueError, match=r"hydra\.sweep\.dir"):
        multirun_overrides(["-m", "run_dir=x", "hydra.sweep.dir=y"])


def test_multirun_config_errors_are_one_line():
    assert "seed2" in config_problem(["-m", "seed2=0,1"])
    assert "seed" in config_problem(["-m", "seed=abc,1"])
    assert config_problem(["-m", "seed=0,1", "task.randomization.mass_scale=[0.8,1.2],[0.5,1.5]"]) is None


def test_launcher_configs_extend_the_plugins_configs():
    from hydra import compose, initialize_config_dir

    from sim2real.config import register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=local"], return_hydra_config=True)
        assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
        cfg = compose("config", overrides=["+sweep=seeds_x_mass"], return_hydra_config=True)
        assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
        assert set(cfg.hydra.sweeper.params) == {"seed", "task.randomization.mass_scale"}
    # plugins not installed here: each file extends the plugin's config with keys of its schema
    slurm_keys = {"partition", "account", "qos", "timeout_min", "nodes", "tasks_per_node", "gpus_per_node"}
    slurm_keys |= {"cpus_per_task", "mem_gb", "array_parallelism", "max_num_timeout", "setup"}
    slurm_keys |= {"additional_parameters"}
    expected = {
        "slurm": ("submitit_slurm", slurm_keys),
        "ray_cluster": ("ray", {"ray"}),
        "ray_aws_cluster": ("ray_aws", {"env_setup", "ray", "sync_down", "stop_cluster"}),
    }
    for name, (base, keys) in expected.items():
        conf = yaml.safe_load((CONF_DIR / "hydra/launcher" / f"{name}.yaml").read_text())
        assert conf.pop("defaults") == [base, "_self_"], name
        assert set(conf) <= keys, (name, set(conf) - keys)
    ray = yaml.safe_load((CONF_DIR / "hydra/launcher/ray_cluster.yaml").read_text())["ray"]
    assert set(ray) == {"init", "remote"} and "num_cpus" in ray["remote"]


def test_a_failed_job_does_not_stop_the_other_jobs(tmp_path):
    out = _sim2real("collect", "-m", "logger=none", "expert=sb3_zip", "seed=0,1", f"run_dir={tmp_path}")
    assert out.returncode != 0
    for job in (0, 1):
        assert f"sim2real collect job {job}: error: expert=sb3_zip needs expert.path" in out.stderr


@pytest.mark.slow
def test_joblib_sweep_of_two_seeds_is_summarized_from_its_reports(tmp_path):
    sweep = tmp_path / "sweep"
    out = _sim2real("pipeline", "-m", *TINY, "seed=0,1", "hydra/launcher=local", f"run_dir={sweep}")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "Joblib" in out.stdout
    reports = {}
    for job in (0, 1):
        run = sweep / str(job)
        assert yaml.safe_load((run / ".hydra/overrides.yaml").read_text())[-1] == f"seed={job}"
        manifest = json.loads((run / "validation/manifest.json").read_text())
        assert Path(manifest["config"]["run_dir"]) == run.resolve() and manifest["seed"] == job
        reports[job] = json.loads((run / "validation/report.json").read_text())["metrics"]["train"]

    out = _sim2real("sweep-summary", str(sweep), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "mean ± std (2)" in out.stdout and "all runs" in out.stdout
    data = json.loads((sweep / "sweep_summary.json").read_text())
    for job, run in zip((0, 1), data["runs"], strict=True):
        assert run["run"] == str(job) and run["seed"] == job
        assert run["student_mean"] == pytest.approx(reports[job]["student"]["mean"])
        assert run["score"] == pytest.approx(reports[job]["ratio"]["mean"])
        assert run["failure_rate"] == pytest.approx(reports[job]["student"]["failure_rate"])
    (group,) = data["groups"]
    means = [reports[j]["student"]["mean"] for j in (0, 1)]
    assert group["student_mean"] == pytest.approx(sum(means) / 2)
    assert group["student_std"] == pytest.approx(abs(means[0] - means[1]) / math.sqrt(2))
    rows = list(csv.DictReader((sweep / "sweep_summary.csv").open()))
    assert [r["row"] for r in rows] == ["run", "run", "group"]
    assert (sweep / "sweep_summary.png").stat().st_size > 10_000
    assert "| all runs | 0 |" in (sweep / "sweep_summary.md").read_text()
