"""Training runs as data: every episode the RL teacher lives through while learning, in a demo store.

The RL agent may be deleted, retrained or lost; its training episodes (student and privileged
observations, executed actions, rewards, dynamics) remain, and a student can be distilled from them
alone (`sim2real distill data=<run_dir>/training.zarr student.rtg=true`): an RL run's record is a
mixed-quality dataset, from random flailing to the final policy (D4RL's "replay" datasets).

`EpisodeRecorder` wraps each training env below `SelectObs`, so it sees the full observation, and hands
each finished episode out through the step's info (it travels back from subprocess envs as infos do);
`RecordEpisodes`, an SB3 callback, appends them to the store, one source-table entry per commit:
`{"kind": "training", "algo", "step", "from_step"}`, the agent's env steps when the commit's episodes
ended lie in (from_step, step]. PPO commits at rollout ends, so one commit's episodes come from
policies of those steps only. Labels are NaN: no expert labelled these steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from sim2real.data.schema import Episode, EpisodeTrace, StoreSpec
from sim2real.data.store import DemoStore

INFO_KEY = "sim2real_episode"
SOURCE_KIND = "training"


class EpisodeRecorder(gym.Wrapper):
    """Records the running episode of a dict-observation task env; `info[INFO_KEY]` at its end."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        self._trace = EpisodeTrace(seed=-1 if seed is None else int(seed), dynamics=dict(info["dynamics"]))
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        a = np.asarray(action, dtype=np.float32).reshape(-1)  # (Da,) executed
        self._trace.add(self._obs["student"], self._obs["privileged"], a, np.full_like(a, np.nan), reward)
        self._obs = obs
        if terminated or truncated:
            self._trace.terminated = bool(terminated)
            info = {**info, INFO_KEY: self._trace.episode()}
        return obs, reward, terminated, truncated, info


class RecordEpisodes(BaseCallback):
    """Appends the training envs' finished episodes to `path` every `every` env steps and at the end."""

    def __init__(self, path: Path, spec: StoreSpec, algo: str, every: int, fresh: bool):
        super().__init__()
        self.path, self.spec, self.algo, self.every = Path(path), spec, algo, max(1, every)
        self.fresh = fresh  # training starts at step 0: a store left by an earlier run is replaced
        self.store: DemoStore | None = None
        self.pending: list[Episode] = []
        self.committed_step = 0
        self.episodes = 0

    def _on_training_start(self) -> None:
        if self.fresh or not self.path.exists():
            self.store = DemoStore.create(self.path, self.spec, overwrite=True)
        else:
            self.store = DemoStore.open(self.path, "a")
        self.committed_step = self.num_timesteps

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            ep = info.pop(INFO_KEY, None)
            if ep is not None:
                self.pending.append(ep)
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps - self.committed_step >= self.every:
            self.commit()

    def _on_training_end(self) -> None:
        self.close()

    def commit(self) -> None:
        """Append the pending episodes (all or none), tagged with the steps they ended within."""
        if self.store is None:
            return
        if self.pending:
            source = {"kind": SOURCE_KIND, "algo": self.algo, "step": int(self.num_timesteps),
                      "from_step": int(self.committed_step)}  # fmt: skip
            self.store.append_episodes(self.pending, source)
            self.episodes += len(self.pending)
        self.pending, self.committed_step = [], self.num_timesteps

    def close(self) -> None:
        """Commit what is pending and release the store (also on an interrupt)."""
        if self.store is not None:
            self.commit()
            self.store.close()
            self.store = None
