"""Resumable checkpoints in `<run_dir>/teacher/checkpoints/`: the last one and the best evaluated one.

`last.zip` + `last_obs_norm.json` (+ `last_replay_buffer.pkl` for off-policy algos) + `state.json`;
`state.json` is written last, so a crash mid-save leaves the previous checkpoint valid. Each file
goes through a temp name and a rename. `best.zip` + `best_obs_norm.json` hold the policy with the
highest evaluation return so far together with the statistics it was evaluated with.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from sim2real.artifacts import write_json_atomic
from sim2real.teacher.normalizer import ObsNormalizer


@dataclass
class TrainState:
    """What a resumed run needs besides the model: the best so far and the config it must match."""

    num_timesteps: int = 0
    best_return: float | None = None
    best_step: int | None = None
    evals: list[list[float]] = field(default_factory=list)  # [step, mean return, std]
    reward_stats: list[float] | None = None  # VecNormalize return statistics [mean, var, count], if scaled
    terrain_levels: list[float] | None = None  # teacher.terrain_curriculum: each training env's level
    resume_config: dict[str, Any] = field(default_factory=dict)


class Checkpoints:
    def __init__(self, directory: Path):
        self.dir = directory
        self.state_path = directory / "state.json"

    def path(self, which: str, kind: str) -> Path:
        names = {
            "model": f"{which}.zip",
            "norm": f"{which}_obs_norm.json",
            "replay": f"{which}_replay_buffer.pkl",
        }
        return self.dir / names[kind]

    def load_state(self) -> TrainState | None:
        if not self.state_path.exists() or not self.path("last", "model").exists():
            return None
        return TrainState(**json.loads(self.state_path.read_text()))

    def save(self, which: str, model: BaseAlgorithm, normalizer: ObsNormalizer | None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{which}.tmp.zip"
        model.save(tmp)
        os.replace(tmp, self.path(which, "model"))
        if normalizer is not None:
            normalizer.save(self.path(which, "norm"))

    def save_last(
        self, model: BaseAlgorithm, normalizer: ObsNormalizer | None, state: TrainState, replay: bool
    ):
        self.save("last", model, normalizer)
        if replay and isinstance(model, OffPolicyAlgorithm):
            tmp = self.dir / ".replay.tmp.pkl"
            model.save_replay_buffer(tmp)
            os.replace(tmp, self.path("last", "replay"))
        state.num_timesteps = int(model.num_timesteps)
        write_json_atomic(self.state_path, asdict(state))

    def load_last(
        self, algo: type[BaseAlgorithm], venv: VecEnv, device: str
    ) -> tuple[BaseAlgorithm, ObsNormalizer | None]:
        """The last model bound to `venv` (forced to reset), its replay buffer, and its normalizer."""
        model = algo.load(self.path("last", "model"), env=venv, device=device, force_reset=True)
        replay = self.path("last", "replay")
        if isinstance(model, OffPolicyAlgorithm) and replay.exists():
            model.load_replay_buffer(replay)
        norm = self.path("last", "norm")
        return model, ObsNormalizer.load(norm) if norm.exists() else None

    def publish(self, which: str, out_dir: Path, model_name: str, norm_name: str) -> None:
        """Copy checkpoint `which` to the teacher's public files."""
        shutil.copyfile(self.path(which, "model"), out_dir / model_name)
        if self.path(which, "norm").exists():
            shutil.copyfile(self.path(which, "norm"), out_dir / norm_name)
