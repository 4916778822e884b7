"""`sim2real export`: the student as ONNX (+ TorchScript) carrying its metadata, checked against torch.

Writes `<run_dir>/export/`: `policy.onnx` (streaming step: obs, state -> action, next_state, with the
normalizer and the history cache inside), `policy_window.onnx` (full recompute over the receptive
field), `policy.pt` (TorchScript of the streaming step), `policy.json` and `manifest.json`. The
metadata (interfaces: format, names, bounds, control dt, history, hashes) is embedded in both ONNX
files (metadata_props key "sim2real") and in policy.pt. Before the export counts as finished, full
randomized episodes driven by the student compare torch with what the deploy runtime computes from
the written files; a difference above `export.parity_atol` fails the export and removes policy.json,
so `load_policy` cannot pick up an unchecked artifact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import sim2real
from sim2real.artifacts import (
    POLICY_JSON,
    POLICY_ONNX,
    POLICY_WINDOW_ONNX,
    RunLayout,
    read_manifest,
    sha256_file,
    stage_run,
    write_json_atomic,
)
from sim2real.data.schema import SCHEMA_VERSION
from sim2real.deploy.spec import FORMAT, FORMAT_VERSION, METADATA_KEY, encode, validate_metadata
from sim2real.errors import UserError

TORCHSCRIPT_FILE = "policy.pt"


class ExportError(RuntimeError):
    """The exported files do not compute what the torch model computes."""


def build_metadata(
    model: nn.Module,
    action_low,
    action_high,
    checkpoint_sha256: str,
    max_action_rate: float | None = None,
    soft_start_s: float | None = None,
) -> dict[str, Any]:
    """policy.json without the file hashes, from the student's own config (names, task, control dt)."""
    mc = model.cfg
    if not mc.obs_names or not mc.action_names or not mc.control_dt:
        raise UserError("the student's config.json lacks obs_names/action_names/control_dt: re-run distill")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": mc.task,
        "obs_names": list(mc.obs_names),
        "obs_dim": int(mc.obs_dim),
        "action_names": list(mc.action_names),
        "action_dim": int(mc.action_dim),
        "action_low": [float(x) for x in action_low],
        "action_high": [float(x) for x in action_high],
        "max_action_rate": max_action_rate,
        "soft_start_s": soft_start_s,
        "control_dt": float(mc.control_dt),
        "history": int(model.receptive_field()),
        "state_dim": int(model.state_size()),
        "model": mc.to_dict(),
        "schema_version": SCHEMA_VERSION,  # of the demonstration store the student was trained from
        "checkpoint_sha256": checkpoint_sha256,
        "producer": {"sim2real": sim2real.__version__, "torch": torch.__version__},
    }


@contextlib.contextmanager
def _quiet():
    """The legacy exporter and torch.jit warn that they are deprecated; that is known and intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*(TorchScript|jit|trace|Converting a tensor).*")
        yield


def export_onnx(
    module: nn.Module,
    args: tuple,
    inputs: list[str],
    outputs: list[str],
    path: Path,
    meta: dict[str, Any],
    opset: int = 17,
) -> str:
    """ONNX of `module` at batch 1 with `meta` embedded; returns the file's sha256."""
    import onnx

    tmp = path.with_name(path.name + ".tmp")
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(tmp),
            input_names=inputs,
            output_names=outputs,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    proto = onnx.load(str(tmp))
    _fix_bool_eyelike(proto)
    del proto.metadata_props[:]
    proto.metadata_props.add(key=METADATA_KEY, value=encode(meta))
    proto.producer_name, proto.producer_version = "sim2real", sim2real.__version__
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return sha256_file(path)


def _fix_bool_eyelike(proto) -> None:
    """onnxruntime has no bool EyeLike (what `torch.eye(T, dtype=torch.bool)` exports to): compute it
    in float between two Casts, keeping every tensor name and type the rest of the graph sees."""
    import onnx
    from onnx import TensorProto, helper

    if not any(n.op_type == "EyeLike" for n in proto.graph.node):
        return
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.value_info, *inferred.input)}
    nodes = []
    for node in proto.graph.node:
        src = node.input[0] if node.op_type == "EyeLike" else None
        if src is None or types.get(src) != TensorProto.BOOL:
            nodes.append(node)
            continue
        out = node.output[0]
        to = next((a.i for a in node.attribute if a.name == "dtype"), TensorProto.BOOL)
        eye = helper.make_node("EyeLike", [src + "/as_float"], [out + "/float"], name=node.name)
        eye.attribute.extend(a for a in node.attribute if a.name == "k")
        nodes += [
            helper.make_node("Cast", [src], [src + "/as_float"], to=TensorProto.FLOAT),
            eye,
            helper.make_node("Cast", [out + "/float"], [out], to=to),
        ]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def write_export(
    out_dir: Path,
    model: nn.Module,
    meta: dict[str, Any],
    window: bool = True,
    torchscript: bool = True,
    opset: int = 17,
) -> dict[str, Any]:
    """Write the export files and policy.json (metadata + file hashes); returns policy.json's content."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ds, s = meta["obs_dim"], meta["state_dim"]
    stream = model.streaming().eval()
    step_args = (torch.zeros(1, ds), torch.zeros(1, s))
    meta = dict(meta)
    sha = export_onnx(
        stream, step_args, ["obs", "state"], ["action", "next_state"], out_dir / POLICY_ONNX, meta, opset
    )
    meta.update(onnx_sha256=sha, artifact_sha256=sha)
    if window:
        h = meta["history"]
        win_args = (torch.zeros(1, h, ds), torch.ones(1, h, dtype=torch.bool))
        meta["window_onnx_sha256"] = export_onnx(
            model.window().eval(),
            win_args,
            ["obs_window", "valid"],
            ["action"],
            out_dir / POLICY_WINDOW_ONNX,
            meta,
            opset,
        )
    if torchscript:
        meta["torchscript_sha256"] = export_torchscript(stream, step_args, out_dir / TORCHSCRIPT_FILE, meta)
    validate_metadata(meta, str(out_dir / POLICY_JSON))
    write_json_atomic(out_dir / POLICY_JSON, meta)
    return meta


def export_torchscript(stream: nn.Module, args: tuple, path: Path, meta: dict[str, Any]) -> str:
    """TorchScript (traced) streaming step with policy.json as an extra file; returns its sha256."""
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(stream, args, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={POLICY_JSON: encode(meta)})
    return sha256_file(path)


def load_model(student_dir: Path) -> nn.Module:
    from sim2real.student import load_student
    from sim2real.student.checkpoint import MODEL_FILE

    if not (student_dir / MODEL_FILE).is_file():
        raise FileNotFoundError(f"no student checkpoint at {student_dir} (run `sim2real distill` first)")
    manifest = read_manifest(student_dir)
    if manifest is not None and manifest.get("status") != "finished":
        raise UserError(
            f"{student_dir}: distill has status {manifest.get('status')!r}, not 'finished' "
            "(a checkpoint of unfinished training; finish `sim2real distill` first)"
        )
    return load_student(student_dir)


def run(cfg) -> None:
    """`sim2real export run_dir=R`: export `<R>/student/` (`<R>/finetune/` when finetune.steps > 0) to
    `<R>/export/` and check parity."""
    torch.set_num_threads(1)
    from sim2real.student.checkpoint import MODEL_FILE

    layout = RunLayout(cfg.run_dir)
    student_dir, out_dir = layout.final_student(cfg.finetune.enabled), layout.export
    if not cfg.finetune.enabled and (layout.finetune / MODEL_FILE).exists():
        # a standalone `sim2real finetune finetune.steps=N` then a bare `export` would ship the distilled
        # student without a word (measured: a whole validation spent on the wrong file)
        print(
            f"export: {layout.finetune} holds a fine-tuned student, but finetune.steps=0 here: exporting the "
            f"distilled one in {student_dir} (pass finetune.steps=N, as the finetune run had, to export it)",
            file=sys.stderr,
        )
    model = load_model(student_dir)
    if model.cfg.task and model.cfg.task != cfg.task.name:
        raise UserError(
            f"{student_dir} holds a student for task {model.cfg.task!r}, not task={cfg.task.name!r}"
        )
    ckpt_sha = sha256_file(student_dir / MODEL_FILE)
    env = make_env(cfg.task.name, cfg.task.ranges())
    space = env.action_space
    e = cfg.export
    meta = build_metadata(model, space.low, space.high, ckpt_sha, e.max_action_rate, e.soft_start_s)
    (out_dir / POLICY_JSON).unlink(missing_ok=True)  # no stale policy.json while this export runs
    with stage_run(
        out_dir, "export", dataclasses.asdict(cfg), cfg.seed, parents={"student": ckpt_sha}
    ) as rec:
        ex = cfg.export
        written = write_export(out_dir, model, meta, ex.window, ex.torchscript, ex.opset)
        try:
            report = parity_check(out_dir, model, env, ex.parity_episodes, cfg.seed, ex.parity_atol)
        except ExportError:
            (out_dir / POLICY_JSON).unlink(missing_ok=True)
            raise
        finally:
            env.close()
        rec.outputs.update({k: v for k, v in written.items() if k.endswith("_sha256")})
        rec.summary.update(report)
    print(
        f"export: {out_dir / POLICY_ONNX} sha256 {written['onnx_sha256'][:16]}…; parity "
        f"{json.dumps({k: f'{v:.2e}' for k, v in report.items() if k.startswith('max_abs')})} "
        f"over {report['steps']} steps ({report['episodes']} episodes)"
    )


def make_env(task: str, ranges: dict[str, Any]):
    import gymnasium as gym

    import envs

    return gym.make(envs.env_id(task), randomization=ranges)


@torch.no_grad()
def parity_check(
    out_dir: Path, model: nn.Module, env, episodes: int, seed: int, atol: float
) -> dict[str, Any]:
    """Drive `env` with the torch student for full episodes; at every step compare its action with the
    deploy runtime on the written files (streaming ONNX, window ONNX, TorchScript). Raises ExportError
    naming the format, the worst difference and where it happened when one exceeds `atol`."""
    from sim2real.deploy.policy import load_policy, load_window_policy

    runners = {"onnx": _StepRunner(load_policy(out_dir))}
    if (out_dir / POLICY_WINDOW_ONNX).is_file():
        runners["window_onnx"] = _StepRunner(load_window_policy(out_dir))
    if (out_dir / TORCHSCRIPT_FILE).is_file():
        with _quiet():
            traced = torch.jit.load(str(out_dir / TORCHSCRIPT_FILE))
        runners["torchscript"] = _TorchRunner(traced, model.state_size())
    reference = _TorchRunner(model.streaming().eval(), model.state_size())
    low, high = env.action_space.low, env.action_space.high
    worst = {name: (0.0, "") for name in runners}
    steps = 0
    for ep in tqdm(range(episodes), desc="export parity", unit="episode", leave=False):
        obs, _ = env.reset(seed=seed + ep)
        for r in (reference, *runners.values()):
            r.reset()
        done, t = False, 0
        while not done:
            o = obs["student"]  # (Ds,)
            ref = reference.act(o)  # (Da,)
            for name, runner in runners.items():
                d = float(np.max(np.abs(runner.act(o) - ref)))
                if not d <= worst[name][0]:  # also catches NaN
                    worst[name] = (d, f"episode {ep} (seed {seed + ep}) step {t}")
            obs, _, terminated, truncated, _ = env.step(np.clip(ref, low, high))
            done, t, steps = terminated or truncated, t + 1, steps + 1
    bad = [
        f"{name}: max |torch - {name}| = {d:.3g} at {where}"
        for name, (d, where) in worst.items()
        if not d <= atol
    ]
    if bad:
        raise ExportError(f"parity check failed (atol {atol:g}): " + "; ".join(bad))
    return {
        "episodes": episodes,
        "steps": steps,
        "atol": atol,
        **{f"max_abs_{n}": d for n, (d, _) in worst.items()},
    }


class _StepRunner:
    """A deploy-runtime policy (numpy in, numpy out)."""

    def __init__(self, policy):
        self.policy = policy

    def reset(self) -> None:
        self.policy.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.act(obs)


class _TorchRunner:
    """A torch streaming step module with its state carried between calls."""

    def __init__(self, step: nn.Module, state_size: int):
        self.step, self.state_size = step, state_size
        self.reset()

    def reset(self) -> None:
        self.state = torch.zeros(1, self.state_size)  # (1, S): episode start

    def act(self, obs: np.ndarray) -> np.ndarray:
        action, self.state = self.step(torch.from_numpy(obs)[None], self.state)  # (1, Da), (1, S)
        return action[0].numpy()
