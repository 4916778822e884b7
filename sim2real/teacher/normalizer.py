"""Observation statistics of VecNormalize, saved as JSON and applied by the loaded teacher itself.

Kept out of SB3's pickled VecNormalize so a caller never has to remember a wrapper: `Teacher.act`
normalizes raw privileged observations with exactly the arithmetic VecNormalize used in training.
Columns the teacher was trained blind to (`teacher.blind_params`) are zeroed here too, so every user of
the saved teacher (collection, DAgger labels, validation) feeds it what it trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from stable_baselines3.common.vec_env import VecNormalize

from sim2real.artifacts import write_json_atomic


@dataclass
class ObsNormalizer:
    mean: np.ndarray  # (D,) float64
    var: np.ndarray  # (D,) float64
    count: float
    clip: float
    epsilon: float
    hidden: tuple[int, ...] = ()  # columns set to 0 (their running mean) after normalizing

    @classmethod
    def of(cls, venv: VecNormalize, hidden: tuple[int, ...] = ()) -> ObsNormalizer:
        rms = venv.obs_rms
        return cls(
            rms.mean.copy(),
            rms.var.copy(),
            float(rms.count),
            float(venv.clip_obs),
            float(venv.epsilon),
            tuple(hidden),
        )

    def restore_into(self, venv: VecNormalize) -> None:
        """Put saved statistics back into a training VecNormalize (resume)."""
        venv.obs_rms.mean, venv.obs_rms.var, venv.obs_rms.count = (
            self.mean.copy(),
            self.var.copy(),
            self.count,
        )
        venv.clip_obs, venv.epsilon = self.clip, self.epsilon

    def apply(self, obs: np.ndarray) -> np.ndarray:
        """(B, D) raw -> (B, D) float32 normalized, as `VecNormalize.normalize_obs`."""
        if obs.shape[-1] != self.mean.shape[0]:
            raise ValueError(
                f"observation has {obs.shape[-1]} entries, the teacher's normalizer {self.mean.shape[0]}"
            )
        z = np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip)
        if self.hidden:
            z[..., list(self.hidden)] = 0.0
        return z.astype(np.float32)

    def save(self, path: str | Path) -> None:
        d = {
            "mean": self.mean.tolist(),
            "var": self.var.tolist(),
            "count": self.count,
            "clip": self.clip,
            "epsilon": self.epsilon,
        }
        if self.hidden:  # absent otherwise: teachers saved before the key keep their bytes and sha256
            d["hidden"] = list(self.hidden)
        write_json_atomic(Path(path), d)

    @classmethod
    def load(cls, path: str | Path) -> ObsNormalizer:
        d = json.loads(Path(path).read_text())
        mean, var = np.asarray(d["mean"], np.float64), np.asarray(d["var"], np.float64)
        hidden = tuple(int(i) for i in d.get("hidden", ()))
        return cls(mean, var, float(d["count"]), float(d["clip"]), float(d["epsilon"]), hidden)
