"""Any Stable-Baselines3 model zip trained on the plain Gymnasium env, as an `Expert`.

The privileged observation of the locomotion tasks begins with exactly the Gymnasium `-v5`
observation, so such a model acts on the leading slice. Zips pickled with the old `gym` spaces do
not unpickle under Gymnasium; the spaces are rebuilt from the zip's readable JSON description
instead (shape, bounds), which also gives the algorithm when none is named.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gymnasium.spaces import Box

from sim2real.artifacts import sha256_file
from sim2real.errors import UserError
from sim2real.teacher.hyperparams import LOADABLE


@dataclass(frozen=True)
class ZipSpec:
    """What an SB3 zip says about itself without unpickling anything."""

    algo: str | None
    obs_shape: tuple[int, ...]
    action_low: np.ndarray  # (Da,)
    action_high: np.ndarray  # (Da,)


def read_zip_spec(path: Path) -> ZipSpec:
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
        obs, act = data["observation_space"], data["action_space"]
        module = data.get("policy_class", {}).get("__module__", "")
        parts = module.split(".")
        algo = parts[1] if len(parts) > 2 and parts[0] in ("stable_baselines3", "sb3_contrib") else None
        shape = tuple(
            int(d) for d in _array(obs["shape"] if "shape" in obs else obs["_shape"])
        )  # gym | gymnasium
        spec = ZipSpec(algo, shape, _array(act["low"]), _array(act["high"]))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as e:
        raise UserError(
            f"{path}: not a readable Stable-Baselines3 zip with Box spaces ({type(e).__name__}: {e})"
        ) from e
    if not (np.isfinite(spec.action_low).all() and np.isfinite(spec.action_high).all()):
        raise UserError(f"{path}: the model's action space is unbounded; it cannot be mapped onto [-1, 1]")
    return spec


def _array(value: str | list) -> np.ndarray:
    """A JSON list, or numpy's printed array ("[-1. -1. -1.]"), SB3's form for what JSON cannot hold."""
    if isinstance(value, str):
        value = value.strip().strip("[]").split()
    return np.asarray(value, dtype=np.float32)


class SB3ZipExpert:
    """Acts on `privileged_obs[:, :obs_dim]`; maps the zip's action range linearly onto the task's.

    The `-v5` tasks pass their [-1, 1] command straight to the MuJoCo actuator, so for them the map is
    the identity; for a Pendulum-v1 model (torque in [-2, 2] N·m, the task's motor gear is 2) it
    divides by 2; for a Go2 model trained on the task's own [-4, 4] offsets it is the identity again.
    """

    def __init__(self, path: str | Path, algo: str | None = None, device: str = "cpu"):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"expert.path={str(path)!r}: no such file")
        spec = read_zip_spec(path)
        algo = algo or spec.algo
        if algo not in LOADABLE:
            raise UserError(f"expert.algo={algo!r} for {path}: expected one of {', '.join(LOADABLE)}")
        custom = {
            "observation_space": Box(-np.inf, np.inf, spec.obs_shape, np.float32),
            "action_space": Box(spec.action_low, spec.action_high, dtype=np.float32),
            "learning_rate": 0.0,
            "lr_schedule": lambda _: 0.0,
            "clip_range": lambda _: 0.0,
            "exploration_schedule": lambda _: 0.0,
        }
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Could not deserialize")
            self.model = LOADABLE[algo].load(path, device=device, custom_objects=custom)
        self.model.policy.set_training_mode(False)
        self.obs_dim = int(np.prod(spec.obs_shape))
        self.action_dim = int(spec.action_low.shape[0])
        self._low, self._high = spec.action_low.astype(np.float64), spec.action_high.astype(np.float64)
        self.map_onto(-1.0, 1.0)
        self.sha256 = sha256_file(path)
        self.name = f"sb3_zip:{path.stem}:{self.sha256[:12]}"

    def map_onto(self, low, high) -> None:
        """Act in the task's action range [low, high] ((Da,) each, or scalars): the -v5 tasks' [-1, 1]
        by default."""
        self._task_low = np.broadcast_to(np.asarray(low, np.float64), self._low.shape)
        self._task_high = np.broadcast_to(np.asarray(high, np.float64), self._low.shape)

    def act(self, privileged_obs: np.ndarray) -> np.ndarray:
        obs = np.atleast_2d(np.asarray(privileged_obs, dtype=np.float32))  # (B, Dp)
        if obs.shape[1] < self.obs_dim:
            raise ValueError(
                f"{self.name}: privileged obs has {obs.shape[1]} entries, the model reads {self.obs_dim}"
            )
        action, _ = self.model.predict(
            obs[:, : self.obs_dim], deterministic=True
        )  # (B, Da) in the zip's range
        unit = (np.asarray(action, np.float64) - self._low) / (self._high - self._low)  # (B, Da) in [0, 1]
        action = self._task_low + unit * (self._task_high - self._task_low)
        action = np.clip(action, self._task_low, self._task_high)
        return action.astype(np.float32).reshape(len(obs), self.action_dim)
