"""Config values are checked where they are declared (`__post_init__`): one line naming the key and the
rule, from the dataclass, from `sim2real <stage> key=value`, and from the lean deploy CLI's flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim2real.checks import ConfigError
from sim2real.data.config import CollectConfig
from sim2real.deploy.config import DeployConfig, LinkSettings
from sim2real.deploy.controller import ControllerConfig
from sim2real.errors import UserError
from sim2real.finetune.config import FinetuneConfig
from sim2real.student.config import DistillConfig, StudentConfig
from sim2real.teacher.config import AlgoConfig, TeacherConfig

ROOT = Path(__file__).resolve().parent.parent

BAD = [
    (StudentConfig, {"n_embd": 30, "n_head": 4}, "student.n_embd=30 must be divisible by student.n_head=4"),
    (StudentConfig, {"n_head": 0}, "student.n_head=0 must be >= 1"),
    (StudentConfig, {"attn_window": 32}, "student.attn_window=32 must be <= student.history=16"),
    (StudentConfig, {"dropout": 1.0}, "student.dropout=1.0 must be in [0, 1)"),
    (StudentConfig, {"arch": "rnn"}, "student.arch='rnn' must be one of transformer, mlp"),
    (DistillConfig, {"batch_size": 0}, "distill.batch_size=0 must be >= 1"),
    (DistillConfig, {"steps": -5}, "distill.steps=-5 must be >= 0"),
    (DistillConfig, {"lr": -1.0}, "distill.lr=-1.0 must be > 0"),
    (DistillConfig, {"grad_clip": 0.0}, "distill.grad_clip=0.0 must be > 0"),
    (DistillConfig, {"dagger_beta": 1.5}, "distill.dagger_beta=1.5 must be in [0, 1]"),
    (DistillConfig, {"keep_top_fraction": 0.0}, "distill.keep_top_fraction=0.0 must be in (0, 1]"),
    (CollectConfig, {"n_envs": 0}, "collect.n_envs=0 must be >= 1"),
    (FinetuneConfig, {"gamma": 1.5}, "finetune.gamma=1.5 must be in [0, 1]"),
    (FinetuneConfig, {"init_std": 0.0}, "finetune.init_std=0.0 must be > 0"),
    (FinetuneConfig, {"vec_env": "fast"}, "finetune.vec_env='fast' must be one of auto, batch, gym"),
    (CollectConfig, {"keep_top_fraction": 0.0}, "collect.keep_top_fraction=0.0 must be in (0, 1]"),
    (TeacherConfig, {"n_envs": 0}, "teacher.n_envs=0 must be >= 1"),
    (TeacherConfig, {"sac": AlgoConfig(total_timesteps=0)}, "teacher.sac.total_timesteps=0 must be >= 1"),
    (TeacherConfig, {"clip_obs": -1.0}, "teacher.clip_obs=-1.0 must be > 0"),
    (DeployConfig, {"rate_hz": 0.0}, "deploy.rate_hz=0.0 must be > 0"),
    (DeployConfig, {"log_commit_s": 0.0}, "deploy.log_commit_s=0.0 must be > 0"),
    (DeployConfig, {"port": 70000}, "deploy.port=70000 must be in [0, 65535]"),
    (DeployConfig, {"robot": "ros"}, "deploy.robot='ros' must be one of sim, udp, dds"),
    (DeployConfig, {"episodes": 0}, "deploy.episodes=0 must be >= 1"),
    (ControllerConfig, {"action_filter": 1.0}, "deploy.action_filter=1.0 must be in [0, 1)"),
    (ControllerConfig, {"realtime_priority": 100}, "deploy.realtime_priority=100 must be in [0, 99]"),
    (LinkSettings, {"loss": 1.0}, "deploy.link.loss=1.0 must be in [0, 1)"),
]


@pytest.mark.parametrize(("cls", "values", "message"), BAD, ids=lambda v: getattr(v, "__name__", None))
def test_bad_value_is_one_line_naming_the_key_and_the_rule(cls, values, message):
    with pytest.raises(ConfigError) as err:
        cls(**values)
    assert str(err.value) == message
    assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "cls", [StudentConfig, DistillConfig, CollectConfig, TeacherConfig, DeployConfig, FinetuneConfig]
)
def test_defaults_pass_their_own_checks(cls):
    cls()


def _sim2real(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sim2real", *args, "logger=none"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("distill", "student.n_embd=30", "student.n_head=4"), "student.n_embd=30 must be divisible"),
        (("distill", "distill.lr=-1"), "distill.lr=-1.0 must be > 0"),
        (("distill", "run_dir=/proc/forbidden"), "run_dir=/proc/forbidden cannot be written"),
    ],
)
def test_cli_reports_a_bad_value_in_one_line_with_exit_2(tmp_path, args, named):
    run_dir = [] if any(a.startswith("run_dir=") for a in args) else [f"run_dir={tmp_path}"]
    out = _sim2real(*args, *run_dir)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 1 and named in lines[0], out.stderr


def test_lean_cli_names_its_own_flag_in_a_bad_value(tmp_path):
    cmd = [sys.executable, "-m", "sim2real.deploy", str(tmp_path), "--rate-hz", "-5", "--force"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.strip() == "deploy: error: --rate-hz=-5.0 must be > 0"


def test_lean_cli_flags_and_hydra_keys_share_one_declaration():
    from sim2real.deploy.__main__ import FLAGS, deploy_config, parse
    from sim2real.deploy.cli import controller_config

    d = deploy_config(parse(["export"]))
    assert d == DeployConfig(robot="udp")  # every flag's default is the deploy.* default
    args = parse(["export", "--spin-ms", "0.5", "--rate-hz", "250", "--log-commit", "0.3"])
    d = deploy_config(args)
    assert (d.spin_s, d.rate_hz, d.log_commit_s) == (pytest.approx(5e-4), 250.0, 0.3)
    assert controller_config(d).spin_s == d.spin_s and controller_config(d).rate_hz == 250.0
    assert {name for name, *_ in FLAGS.values()} <= {f for f in DeployConfig.__dataclass_fields__}
