"""Student model: causality, exact streaming, normalizer and checkpoint round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sim2real.student import load_student
from sim2real.student.checkpoint import build_model, save_student
from sim2real.student.model import ModelConfig

DS, DA = 3, 1


def make_model(arch: str = "transformer", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, obs_dim=DS, action_dim=DA, attn_window=5, n_layer=3, n_embd=32, **kw)
    model = build_model(cfg)
    with torch.no_grad():  # non-trivial normalizer and position biases, so the tests can see them
        stats = {"obs_mean": [0.1, -0.2, 0.0], "obs_std": [0.7, 0.5, 0.9]}
        model.normalizer.fit({**stats, "action_mean": [0.05], "action_std": [0.6]})
        for p in model.parameters():
            if p.dim() == 2 and p.shape[-1] == 5:  # rel_bias (nh, W)
                p.normal_(std=1.0)
    return model.eval()


def stream(model, obs: torch.Tensor) -> torch.Tensor:
    """Actions (T, Da) of the streaming module fed one step at a time from a zero state."""
    step = model.streaming()
    state = torch.zeros(1, model.state_size())
    out = []
    for t in range(obs.shape[0]):
        a, state = step(obs[t : t + 1], state)
        out.append(a)
    return torch.cat(out)


@pytest.mark.parametrize("arch", ["transformer", "mlp"])
def test_streaming_window_and_full_sequence_give_the_same_actions(arch):
    model = make_model(arch)
    obs = torch.randn(100, DS)  # (T, Ds), one episode from its start
    with torch.no_grad():
        full = model.act(obs[None], torch.ones(1, 100, dtype=torch.bool))[0]  # (T, Da)
        streamed = stream(model, obs)
        H = model.receptive_field()
        win = model.window()
        windowed = []
        for t in range(100):
            padded = torch.cat([torch.zeros(H, DS), obs[: t + 1]])[-H:]  # (H, Ds), left-padded
            valid = torch.arange(H) >= H - (t + 1)
            windowed.append(win(padded[None], valid[None]))
        windowed = torch.cat(windowed)
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(windowed, full, atol=1e-5, rtol=0)
    if arch == "transformer":
        assert H == (4 - 1) + 3 * (5 - 1) + 1


def test_future_steps_do_not_change_earlier_outputs():
    model = make_model()
    obs = torch.randn(2, 20, DS)
    valid = torch.ones(2, 20, dtype=torch.bool)
    changed = obs.clone()
    changed[:, 12:] = torch.randn(2, 8, DS) * 5
    with torch.no_grad():
        a, b = model(obs, valid), model(changed, valid)
    torch.testing.assert_close(a[:, :12], b[:, :12])
    assert (a[:, 12:] - b[:, 12:]).abs().max() > 1e-3  # the changed steps do matter


def test_padding_before_episode_start_is_ignored():
    model = make_model()
    obs = torch.randn(1, 10, DS)
    valid = torch.ones(1, 10, dtype=torch.bool)
    padded = torch.cat([torch.randn(1, 6, DS) * 3, obs], dim=1)  # junk where mask is False
    pvalid = torch.cat([torch.zeros(1, 6, dtype=torch.bool), valid], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded, pvalid)[:, 6:], model(obs, valid), atol=1e-5, rtol=0)


def test_outputs_depend_only_on_the_receptive_field():
    model = make_model()
    with torch.no_grad():  # large weights, uniform attention: the oldest step shows above rounding
        for name, p in model.named_parameters():
            p.copy_(torch.zeros_like(p) if name.endswith("rel_bias") else torch.randn_like(p) * 0.3)
    H = model.receptive_field()
    obs = torch.randn(1, 40, DS)
    changed = obs.clone()
    changed[:, : 40 - H] += 1.0  # everything outside the last step's receptive field
    valid = torch.ones(1, 40, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(model(obs, valid)[:, -1], model(changed, valid)[:, -1])
        changed[:, 40 - H] += 1.0
        assert (model(obs, valid)[:, -1] - model(changed, valid)[:, -1]).abs().max() > 1e-6


@pytest.mark.parametrize("arch", ["transformer", "mlp"])
def test_checkpoint_round_trips_weights_and_normalizer(tmp_path, arch):
    model = make_model(arch, rtg=True, obs_names=["a", "b", "c"], action_names=["u"], task="pendulum")
    model.normalizer.fit(
        {"obs_mean": [1, 2, 3], "obs_std": [4, 5, 6], "action_mean": [0.5], "action_std": [2.0],
         "rtg_scale": 150.0, "rtg_target": -140.0}
    )  # fmt: skip
    save_student(tmp_path, model)
    loaded = load_student(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model"]["obs_names"] == ["a", "b", "c"]
    for name in ("obs_mean", "obs_std", "action_mean", "action_std", "rtg_scale", "rtg_target"):
        torch.testing.assert_close(getattr(loaded.normalizer, name), getattr(model.normalizer, name))
    assert float(loaded.normalizer.rtg_target) == -140.0
    obs = torch.randn(1, 7, DS)
    valid = torch.ones(1, 7, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(loaded.act(obs, valid), model.act(obs, valid))


def test_normalizer_outputs_actions_in_env_units():
    model = make_model("mlp")
    with torch.no_grad():
        for p in model.net.parameters():
            p.zero_()  # normalized output 0 -> the data's mean action
        a = model.act(torch.randn(1, 4, DS), torch.ones(1, 4, dtype=torch.bool))
    np.testing.assert_allclose(a.numpy(), 0.05, atol=1e-7)


def test_load_student_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        load_student(tmp_path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_streaming_module_exports_to_onnx_and_matches(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = make_model()
    step = model.streaming()
    state = torch.zeros(1, model.state_size())
    obs = torch.randn(1, DS)
    torch.onnx.export(
        step, (obs, state), str(tmp_path / "p.onnx"), input_names=["obs", "state"],
        output_names=["action", "next_state"], dynamo=False,
    )  # fmt: skip
    sess = ort.InferenceSession(str(tmp_path / "p.onnx"))
    seq = torch.randn(30, DS)
    expected = stream(model, seq).detach().numpy()
    s = np.zeros((1, model.state_size()), np.float32)
    got = []
    for t in range(30):
        a, s = sess.run(None, {"obs": seq[t : t + 1].numpy(), "state": s})
        got.append(a)
    np.testing.assert_allclose(np.concatenate(got), expected, atol=1e-5)


def test_hidden_prev_action_does_not_change_the_action():
    names = ["pole/cos", "pole/sin", "prev_action/torque"]
    model = make_model(obs_names=names, drop_prev_action=True)
    obs = torch.randn(1, 12, DS)
    other = obs.clone()
    other[..., 2] = torch.randn(1, 12) * 3
    valid = torch.ones(1, 12, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(model(obs, valid), model(other, valid))
        shown = make_model(obs_names=names, drop_prev_action=False)
        assert (shown(obs, valid) - shown(other, valid)).abs().max() > 1e-4
