"""The deploy runtime's policy loader: hashes, metadata, layouts, streaming, lean imports.

The exports here are written by `sim2real.export.write_export` from a tiny torch policy defined below
(a shift register over the last H observations), so they satisfy the exported-policy contract without
a trained student; `tiny_export` is reused by the controller and UDP tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from sim2real.deploy import PolicyMismatch, load_policy, load_window_policy
from sim2real.deploy.spec import FORMAT, METADATA_KEY
from sim2real.export import build_metadata, write_export

OBS_NAMES = ("pole/cos", "pole/sin", "prev_action/torque")  # the pendulum's student layout
ACTION_NAMES = ("torque",)
ROOT = Path(__file__).resolve().parent.parent


class _Cfg:
    """The part of the student's ModelConfig that build_metadata reads."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def to_dict(self) -> dict:
        return {"arch": "tiny", **self.__dict__}


class TinyPolicy(nn.Module):
    """action = gain · tanh(W · [last H observations]): exact streaming via a shift-register state."""

    def __init__(self, history: int = 4, gain: float = 2.0, seed: int = 0):
        super().__init__()
        ds = len(OBS_NAMES)
        torch.manual_seed(seed)
        self.h, self.ds, self.gain = history, ds, gain
        self.lin = nn.Linear(history * ds, len(ACTION_NAMES))
        nn.init.normal_(self.lin.weight, std=2.0)
        self.cfg = _Cfg(
            obs_dim=ds,
            action_dim=1,
            obs_names=list(OBS_NAMES),
            action_names=list(ACTION_NAMES),
            task="pendulum",
            control_dt=0.05,
        )

    def receptive_field(self) -> int:
        return self.h

    def state_size(self) -> int:
        return (self.h - 1) * self.ds

    def streaming(self) -> nn.Module:
        return _TinyStep(self)

    def window(self) -> nn.Module:
        return _TinyWindow(self)


class _TinyStep(nn.Module):
    def __init__(self, p: TinyPolicy):
        super().__init__()
        self.p = p

    def forward(self, obs, state):  # (1, Ds), (1, (H-1)·Ds)
        window = torch.cat([state, obs], dim=1)  # (1, H·Ds), oldest first
        return self.p.gain * torch.tanh(self.p.lin(window)), window[:, self.p.ds :]


class _TinyWindow(nn.Module):
    def __init__(self, p: TinyPolicy):
        super().__init__()
        self.p = p

    def forward(self, obs_window, valid):  # (1, H, Ds), (1, H) bool
        x = (obs_window * valid[..., None].float()).reshape(1, -1)  # padding counts as zeros
        return self.p.gain * torch.tanh(self.p.lin(x))


def tiny_export(
    out_dir: Path, history: int = 4, gain: float = 2.0, max_action_rate=None, soft_start_s=None
) -> Path:
    model = TinyPolicy(history, gain)
    meta = build_metadata(model, [-1.0], [1.0], "0" * 64, max_action_rate, soft_start_s)
    write_export(out_dir, model, meta, torchscript=False)
    return out_dir


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return tiny_export(tmp_path_factory.mktemp("tiny") / "export")


def _copy(export_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "export"
    dst.mkdir()
    for f in export_dir.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_policy_json_and_onnx_metadata_carry_the_contract_fields(export_dir):
    meta = json.loads((export_dir / "policy.json").read_text())
    assert meta["format"] == FORMAT and meta["format_version"] == 1
    assert meta["obs_names"] == list(OBS_NAMES) and meta["obs_dim"] == 3 and meta["action_dim"] == 1
    assert meta["history"] == 4 and meta["state_dim"] == 9 and meta["control_dt"] == 0.05
    assert meta["artifact_sha256"] == meta["onnx_sha256"]
    inner = {p.key: p.value for p in onnx.load(str(export_dir / "policy.onnx")).metadata_props}
    embedded = json.loads(inner[METADATA_KEY])
    assert "onnx_sha256" not in embedded
    assert embedded == {
        k: v for k, v in meta.items() if not k.endswith("_sha256") or k == "checkpoint_sha256"
    }


def test_spec_describes_the_export(export_dir):
    spec = load_policy(export_dir).spec
    assert spec.obs_names == OBS_NAMES and spec.action_names == ACTION_NAMES
    assert (spec.obs_dim, spec.action_dim, spec.history, spec.task) == (3, 1, 4, "pendulum")
    assert spec.action_low == (-1.0,) and spec.control_dt == 0.05 and len(spec.artifact_sha256) == 64


def test_streaming_matches_full_window_recompute_across_resets(export_dir):
    policy, window = load_policy(export_dir), load_window_policy(export_dir)
    obs = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    for t, o in enumerate(obs):
        if t == 25:  # a new episode: both forget the history
            policy.reset()
            window.reset()
        np.testing.assert_allclose(policy.act(o), window.act(o), atol=1e-5)


def test_act_keeps_history_and_reset_clears_it(export_dir):
    policy = load_policy(export_dir)
    o = np.ones(3, np.float32)
    first = policy.act(o)
    second = policy.act(o)
    assert not np.allclose(first, second)  # the same obs with more history gives another action
    policy.reset()
    np.testing.assert_array_equal(policy.act(o), first)
    assert first.dtype == np.float32 and first.shape == (1,)


def test_returned_action_is_not_overwritten_by_the_next_step(export_dir):
    policy = load_policy(export_dir)
    a = policy.act(np.ones(3, np.float32))
    kept = a.copy()
    policy.act(-np.ones(3, np.float32))
    np.testing.assert_array_equal(a, kept)


def test_wrong_observation_shape_is_refused(export_dir):
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        load_policy(export_dir).act(np.zeros(4, np.float32))


def test_tampered_onnx_byte_is_refused_naming_the_hash(export_dir, tmp_path):
    d = _copy(export_dir, tmp_path)
    data = bytearray((d / "policy.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "policy.onnx").write_bytes(bytes(data))
    with pytest.raises(PolicyMismatch, match=r"sha256.*does not match policy\.json onnx_sha256"):
        load_policy(d)


def test_policy_json_edited_after_export_is_refused_naming_the_field(export_dir, tmp_path):
    d = _copy(export_dir, tmp_path)
    meta = json.loads((d / "policy.json").read_text())
    meta["control_dt"] = 0.01  # someone "fixes" the rate by hand
    (d / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(PolicyMismatch, match="'control_dt'"):
        load_policy(d)


def test_onnx_from_another_export_is_refused(export_dir, tmp_path):
    other = tiny_export(tmp_path / "other", gain=1.0)
    d = _copy(export_dir, tmp_path)
    (d / "policy.onnx").write_bytes((other / "policy.onnx").read_bytes())
    with pytest.raises(PolicyMismatch, match="another export"):
        load_policy(d)


def test_unsupported_format_version_is_refused(export_dir, tmp_path):
    d = _copy(export_dir, tmp_path)
    meta = json.loads((d / "policy.json").read_text())
    meta["format_version"] = 2
    (d / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(PolicyMismatch, match="format_version 2"):
        load_policy(d)


def test_missing_export_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"policy\.json"):
        load_policy(tmp_path)


def test_robot_layout_mismatch_names_the_first_difference(export_dir):
    policy = load_policy(export_dir)
    policy.check_robot(["pole/sin", "pole/cos", "motor/temp"], ["torque"])  # order of readings is free
    with pytest.raises(PolicyMismatch, match="'pole/sin'"):
        policy.check_robot(["pole/cos"], ["torque"])
    with pytest.raises(PolicyMismatch, match="'motor/temp'"):
        policy.check_robot(["pole/cos", "pole/sin", "motor/temp"], allow_extra=False)
    with pytest.raises(PolicyMismatch, match="action layout mismatch at index 0"):
        policy.check_robot(["pole/cos", "pole/sin"], ["hip"])


def test_deploy_imports_and_acts_with_torch_mujoco_and_gymnasium_unimportable(export_dir):
    code = f"""
import sys
for name in ("torch", "mujoco", "gymnasium", "hydra", "stable_baselines3"):
    sys.modules[name] = None  # `import name` now raises ImportError
import numpy as np
import sim2real.deploy
from sim2real.deploy import load_policy, Controller, UdpRobot
p = load_policy({str(export_dir)!r})
p.reset()
a = p.act(np.zeros(p.spec.obs_dim, np.float32))
assert a.shape == (1,) and np.isfinite(a).all()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# -- refused observations (issue "Faults on the robot side") ---------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e30, -2e6])
def test_act_refuses_non_finite_or_absurd_input_naming_the_entry_and_keeps_its_history(export_dir, bad):
    p, clean = load_policy(export_dir), load_policy(export_dir)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(30, len(OBS_NAMES))).astype(np.float32)
    p.reset(), clean.reset()
    for k in range(30):
        if k in (3, 17):
            poisoned = obs[k].copy()
            poisoned[1] = bad
            with pytest.raises(ValueError, match=r"pole/sin=") as err:
                p.act(poisoned)
            assert "pole/cos" not in str(err.value)  # only the offending entries are named
        np.testing.assert_array_equal(p.act(obs[k]), clean.act(obs[k]))  # as if it never happened


def test_window_policy_refuses_nan_before_shifting_its_window(export_dir):
    w, clean = load_window_policy(export_dir), load_window_policy(export_dir)
    w.reset(), clean.reset()
    x = np.full(len(OBS_NAMES), 0.3, np.float32)
    w.act(x), clean.act(x)
    with pytest.raises(ValueError, match="prev_action/torque"):
        w.act(np.array([0.1, 0.2, np.nan], np.float32))
    np.testing.assert_array_equal(w.act(x), clean.act(x))


def test_corrupt_policy_json_is_an_error_naming_the_file(tmp_path, export_dir):
    import shutil

    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    (copy / "policy.json").write_text("{not json")
    with pytest.raises(PolicyMismatch, match=r"policy\.json: not valid JSON"):
        load_policy(copy)
