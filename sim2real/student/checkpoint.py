"""Student checkpoints without pickles: `model.safetensors` + `config.json`, and resumable progress.

`load_student(dir)` rebuilds the module (normalizer included) from those two files alone. Training
progress (optimizer moments, step, RNG states) is `progress.safetensors` + `progress.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from envs.observations import PREV_ACTION_PREFIX
from sim2real.artifacts import write_json_atomic
from sim2real.student.model import ModelConfig, StudentTransformer

MODEL_FILE, CONFIG_FILE = "model.safetensors", "config.json"
PROGRESS_FILE, PROGRESS_JSON = "progress.safetensors", "progress.json"
CONFIG_FORMAT = "sim2real-student"


def build_model(cfg: ModelConfig) -> nn.Module:
    if cfg.arch == "transformer":
        model = StudentTransformer(cfg)
    elif cfg.arch == "mlp":
        from sim2real.student.mlp import StudentMLP

        model = StudentMLP(cfg)
    else:
        raise ValueError(f"student.arch={cfg.arch!r} is not one of ('transformer', 'mlp')")
    if cfg.drop_prev_action:
        model.normalizer.drop(cfg.obs_names, (PREV_ACTION_PREFIX,))
    return model


def save_student(out_dir: str | Path, model: nn.Module) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in _state_dict(model).items()}
    save_file(tensors, str(out_dir / (MODEL_FILE + ".tmp")))
    (out_dir / (MODEL_FILE + ".tmp")).replace(out_dir / MODEL_FILE)
    write_json_atomic(out_dir / CONFIG_FILE, {"format": CONFIG_FORMAT, "model": model.cfg.to_dict()})


def load_student(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The student saved in `path` (a run's `student/` dir), in eval mode."""
    path = Path(path)
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (path / name).exists():
            raise FileNotFoundError(f"no student checkpoint: {path / name} is missing")
    meta = json.loads((path / CONFIG_FILE).read_text())
    if meta.get("format") != CONFIG_FORMAT:
        fmt = meta.get("format")
        raise ValueError(f"{path / CONFIG_FILE}: not a sim2real student config (format={fmt!r})")
    try:
        cfg = ModelConfig(**meta["model"])
    except TypeError as e:
        raise ValueError(f"{path / CONFIG_FILE}: bad model config: {e}") from e
    model = build_model(cfg)
    model.load_state_dict(load_weights(path), strict=True)
    return model.to(device).eval()


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(path) / MODEL_FILE))


def _state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's own state dict, also through a torch.compile wrapper."""
    return getattr(model, "_orig_mod", model).state_dict()


def save_progress(out_dir: Path, optimizer: torch.optim.Optimizer, info: dict[str, Any]) -> None:
    """Optimizer tensors by flat name; everything else (step, scalars, RNG states) as JSON."""
    tensors, scalars = {}, {}
    for pid, st in optimizer.state_dict()["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"state.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = float(value)
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.state_dict()["param_groups"]]
    save_file(tensors, str(out_dir / (PROGRESS_FILE + ".tmp")))
    (out_dir / (PROGRESS_FILE + ".tmp")).replace(out_dir / PROGRESS_FILE)
    write_json_atomic(out_dir / PROGRESS_JSON, {"scalars": scalars, "param_groups": groups, **info})


def read_progress_info(out_dir: Path) -> dict[str, Any] | None:
    """The JSON half of saved progress, or None when there is no complete progress to resume."""
    files = (out_dir / PROGRESS_JSON, out_dir / PROGRESS_FILE, out_dir / MODEL_FILE)
    return json.loads(files[0].read_text()) if all(f.exists() for f in files) else None


def clear_progress(out_dir: Path) -> None:
    """A finished run leaves only the model: a later `distill` starts afresh instead of resuming."""
    for name in (PROGRESS_JSON, PROGRESS_FILE):
        (out_dir / name).unlink(missing_ok=True)


def load_progress(out_dir: Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore the optimizer from `save_progress` files; returns the saved info."""
    info = json.loads((out_dir / PROGRESS_JSON).read_text())
    tensors = load_file(str(out_dir / PROGRESS_FILE))
    current = optimizer.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for name, value in info.pop("scalars").items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = torch.tensor(value)
    groups = info.pop("param_groups")
    for group, saved in zip(current["param_groups"], groups, strict=True):
        group.update(saved)
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})
    return info


def config_key(cfg, data: Path | str, bound: bool) -> str:
    """Identity of what a distill run's trajectory depends on (config, store path, task binding): a
    progress checkpoint resumes only under the same key."""
    import hashlib
    from dataclasses import asdict

    from sim2real.stages import output_fields

    distill = output_fields(cfg.distill)  # execution-only fields have no effect on the trajectory
    blob = {"student": asdict(cfg.student), "distill": distill, "seed": cfg.seed,
            "task": asdict(cfg.task), "data": str(data), **({"bound": True} if bound else {})}  # fmt: skip
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()
