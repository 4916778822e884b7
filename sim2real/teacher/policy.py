"""`Teacher`: a trained SB3 model with its observation normalizer inside, behind the `Expert` protocol.

`<run_dir>/teacher/` holds `model.zip` (SB3), `obs_norm.json` (absent when training did not normalize)
and `teacher.json` (algo, task, dims, which checkpoint was kept and its evaluation). `load_teacher`
needs nothing else: callers pass raw privileged observations.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from sim2real.artifacts import sha256_file
from sim2real.errors import UserError
from sim2real.teacher.hyperparams import TRAINABLE
from sim2real.teacher.normalizer import ObsNormalizer

MODEL, NORMALIZER, INFO = "model.zip", "obs_norm.json", "teacher.json"
FORMAT = "sim2real-teacher"


class Teacher:
    """Deterministic actions of an SB3 policy on normalized privileged observations."""

    def __init__(self, model: BaseAlgorithm, normalizer: ObsNormalizer | None, name: str = "teacher"):
        self.model, self.normalizer, self.name = model, normalizer, name
        self.obs_dim = int(model.observation_space.shape[0])
        self.action_dim = int(model.action_space.shape[0])
        self.sha256: str | None = None
        self.task: str | None = None
        model.policy.set_training_mode(False)

    def act(self, privileged_obs: np.ndarray) -> np.ndarray:
        obs = np.atleast_2d(np.asarray(privileged_obs, dtype=np.float32))  # (B, Dp)
        if obs.shape[1] != self.obs_dim:
            raise ValueError(
                f"{self.name}: privileged obs has {obs.shape[1]} entries, the teacher takes {self.obs_dim}"
            )
        if self.normalizer is not None:
            obs = self.normalizer.apply(obs)
        action, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(action, dtype=np.float32).reshape(len(obs), self.action_dim)  # (B, Da)


def teacher_sha256(teacher_dir: Path) -> str:
    """Identity of a teacher: its model file and its normalizer, together."""
    parts = [sha256_file(teacher_dir / MODEL)]
    if (teacher_dir / NORMALIZER).exists():
        parts.append(sha256_file(teacher_dir / NORMALIZER))
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def read_info(teacher_dir: str | Path) -> dict[str, Any]:
    path = Path(teacher_dir) / INFO
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained teacher here (run `sim2real train-teacher run_dir=...`)")
    info = json.loads(path.read_text())
    if info.get("format") != FORMAT:
        raise UserError(f"{path}: not a sim2real teacher (format {info.get('format')!r})")
    return info


def load_teacher(teacher_dir: str | Path, device: str = "cpu") -> Teacher:
    """The teacher saved in `teacher_dir` (normally `<run_dir>/teacher`), named `teacher:<sha12>`."""
    teacher_dir = Path(teacher_dir)
    info = read_info(teacher_dir)
    algo = TRAINABLE.get(info["algo"])
    if algo is None:
        raise UserError(f"{teacher_dir / INFO}: unknown algo {info['algo']!r}")
    model = algo.load(teacher_dir / MODEL, device=device)
    norm_path = teacher_dir / NORMALIZER
    if info.get("normalize_obs") and not norm_path.exists():
        raise FileNotFoundError(f"{norm_path}: missing; the teacher was trained on normalized observations")
    normalizer = ObsNormalizer.load(norm_path) if info.get("normalize_obs") else None
    sha = teacher_sha256(teacher_dir)
    teacher = Teacher(model, normalizer, name=f"teacher:{sha[:12]}")
    teacher.sha256 = sha
    teacher.task = info.get("task")
    return teacher
