"""SB3 callbacks of teacher training: progress bar, periodic evaluation + best/last checkpoints, metrics.

SB3's own logger is pointed at `MetricWriter`, so its training curves (losses, rollout returns, fps)
and our evaluation returns all land in the run's `MetricLogger` (JSONL/CSV, wandb when asked).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter
from tqdm import tqdm

from sim2real.metrics import MetricLogger
from sim2real.teacher.checkpoint import Checkpoints, TrainState
from sim2real.teacher.curriculum import curriculum_of
from sim2real.teacher.normalizer import ObsNormalizer
from sim2real.teacher.policy import Teacher

# columns present from the first CSV row on (the CSV header is fixed by the first row)
COLUMNS = {
    "common": (
        *("rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps", "train/learning_rate", "train/n_updates"),
        *("eval/return_mean", "eval/return_std", "eval/best_return"),
    ),
    "ppo": (
        *("train/loss", "train/policy_gradient_loss", "train/value_loss", "train/entropy_loss", "train/std"),
        *("train/approx_kl", "train/clip_fraction", "train/explained_variance", "train/clip_range"),
    ),
    "sac": ("train/actor_loss", "train/critic_loss", "train/ent_coef", "train/ent_coef_loss"),
}


class MetricWriter(KVWriter):
    """Forwards SB3 logger dumps to a `MetricLogger`."""

    def __init__(self, metrics: MetricLogger, algo: str):
        self.metrics = metrics
        self._first_row = {k: math.nan for k in COLUMNS["common"] + COLUMNS[algo]}

    def write(
        self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0
    ) -> None:
        row = {k: v for k, v in key_values.items() if isinstance(v, int | float | np.number)}
        if self._first_row is not None:
            row, self._first_row = {**self._first_row, **row}, None
        self.metrics.log(row, step)

    def close(self) -> None:
        pass


class ProgressBar(BaseCallback):
    """tqdm over env steps: steps/s from tqdm's rate, the latest evaluation return as a postfix."""

    def __init__(self, total: int, enabled: bool = True, desc: str = "teacher"):
        super().__init__()
        self.total, self.enabled, self.desc = total, enabled, desc
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        interactive = sys.stderr.isatty()
        self.bar = tqdm(
            total=self.total,
            initial=self.num_timesteps,
            unit="step",
            unit_scale=True,
            desc=self.desc,
            disable=not self.enabled,
            mininterval=0.5 if interactive else 10.0,
            dynamic_ncols=True,
        )

    def _on_step(self) -> bool:
        assert self.bar is not None
        self.bar.update(self.num_timesteps - self.bar.n)
        return True

    def show_eval(self, mean: float, best: float, **more: float) -> None:
        if self.bar is not None:
            extra = {k: f"{v:.2f}" for k, v in more.items()}
            self.bar.set_postfix(eval=f"{mean:.1f}", best=f"{best:.1f}", **extra, refresh=False)

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.update(self.num_timesteps - self.bar.n)
            self.bar.close()


class EvalAndCheckpoint(BaseCallback):
    """Every `eval_freq` steps: evaluate under randomization (fixed separate seeds), keep the best;
    every `checkpoint_freq` steps and at the end: save the resumable last checkpoint."""

    def __init__(
        self,
        evaluate: Callable[[Teacher], np.ndarray],
        checkpoints: Checkpoints,
        state: TrainState,
        eval_freq: int,
        checkpoint_freq: int,
        save_replay_buffer: bool,
        progress: ProgressBar,
        hidden: tuple[int, ...] = (),
    ):
        super().__init__()
        self.hidden = hidden  # privileged columns the policy is blind to (teacher.blind_params)
        self.evaluate, self.checkpoints, self.state = evaluate, checkpoints, state
        self.eval_freq, self.checkpoint_freq, self.save_replay_buffer = (
            eval_freq,
            checkpoint_freq,
            save_replay_buffer,
        )
        self.progress = progress
        self._last_eval = state.evals[-1][0] if state.evals else state.num_timesteps
        self._last_ckpt = state.num_timesteps

    def normalizer(self) -> ObsNormalizer | None:
        venv = self.model.get_vec_normalize_env()
        return ObsNormalizer.of(venv, self.hidden) if venv is not None and venv.norm_obs else None

    def _on_step(self) -> bool:
        n = self.num_timesteps
        if self.eval_freq > 0 and n - self._last_eval >= self.eval_freq:
            self.run_eval()
        if self.checkpoint_freq > 0 and n - self._last_ckpt >= self.checkpoint_freq:
            self.save_last()
        return True

    def _on_training_end(self) -> None:
        if self.eval_freq > 0 and self._last_eval < self.num_timesteps:
            self.run_eval()
        self.save_last()

    def run_eval(self) -> None:
        norm = self.normalizer()
        returns = self.evaluate(Teacher(self.model, norm))
        mean, std, n = float(np.mean(returns)), float(np.std(returns)), int(self.num_timesteps)
        self.state.evals.append([n, mean, std])
        if self.state.best_return is None or mean > self.state.best_return:
            self.state.best_return, self.state.best_step = mean, n
            self.checkpoints.save("best", self.model, norm)
        self._last_eval = n
        for key, value in (
            ("return_mean", mean),
            ("return_std", std),
            ("best_return", self.state.best_return),
        ):
            self.logger.record(f"eval/{key}", value)
        more = {}
        curriculum = curriculum_of(self.training_env)  # teacher.terrain_curriculum
        if curriculum is not None:
            more["level"] = curriculum.mean()
            self.logger.record("train/terrain_level", more["level"])
        self.logger.dump(n)
        self.progress.show_eval(mean, self.state.best_return, **more)

    def save_last(self) -> None:
        venv = self.model.get_vec_normalize_env()
        if venv is not None and venv.norm_reward:
            self.state.reward_stats = [
                float(venv.ret_rms.mean),
                float(venv.ret_rms.var),
                float(venv.ret_rms.count),
            ]
        curriculum = curriculum_of(self.training_env)
        if curriculum is not None:
            self.state.terrain_levels = curriculum.levels.tolist()
        self.checkpoints.save_last(self.model, self.normalizer(), self.state, self.save_replay_buffer)
        self._last_ckpt = self.num_timesteps
