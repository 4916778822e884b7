"""`BatchedGo2`: n randomized Go2 simulations stepped together by `mujoco.batch`, under `envs.go2.Go2Rules`.

The rules are the single env's own, evaluated on (n, ...) arrays bound to the batch, and every
simulation replays the single env's random draws in order (dynamics, reset state, command and its
redraws), so for the same seeds the privileged observations, rewards and terminations equal
`gym.make("sim2real/Go2-v0")`'s (tests/test_go2.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from envs import go2
from envs.batched import BatchedTask


class BatchedGo2(BatchedTask):
    """`BatchedTask` with the Go2's PD motors, command, reward and termination."""

    def __init__(
        self, n: int, randomization: Mapping[str, Any] | None = None, nthread: int = 0, task: str = "go2"
    ):
        super().__init__(task, n, randomization, nthread=nthread)
        b = self.batch
        self.qpos, self.qvel, self.ctrl = self._qpos, self._qvel, self._ctrl
        self.actuator_force, self.sensordata = b.bind("actuator_force"), b.bind("sensordata")
        self.xmat, self.userdata = b.bind("xmat"), b.bind("userdata")  # (n, nbody, 9), (n, 3)
        self.qfrc_applied, self.geom_xpos = b.bind("qfrc_applied"), b.bind("geom_xpos")  # (n, nv), (n, ng, 3)
        self.state = go2.State.zeros(n)
        self._commands = np.zeros((n, 3))  # drawn at reset, written once the batch is reset

    def _rules_of(self, base: Any) -> go2.Go2Rules:
        self._init_qpos, self._init_qvel = base.init_qpos.copy(), base.init_qvel.copy()
        return base.rules

    def _initial_state(self, i: int, base_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        level = self.dynamics[i].get("terrain_level", 0.0)
        qpos, qvel, self._commands[i] = go2.initial_state(
            base_rng, self._init_qpos, self._init_qvel, self.rules, level
        )
        return qpos, qvel

    def set_command_period(self, steps: int) -> None:
        """Draw a new command every `steps` control steps (the task's own: `go2.COMMAND_PERIOD`)."""
        if steps < 1:
            raise ValueError(f"command period {steps}: must be at least 1 control step")
        self.rules.command_period = int(steps)

    def advance(self) -> None:
        """One physics step of every simulation (`go2.Sim`)."""
        self.batch.step(nstep=1)

    def _reset_rows(self, ids: np.ndarray) -> None:
        self.userdata[ids] = self._commands[ids]
        for i in ids:
            self.state.start(int(i), self.dynamics[int(i)])
        self.state.dq[ids] = self.qvel[ids][:, self.rules.dadr]

    def progress(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids),) the share of its commanded distance each row walked (`go2.State.progress`)."""
        return self.state.progress(ids)

    def observe(self, ids: np.ndarray | None = None) -> np.ndarray:
        rows = slice(None) if ids is None else ids
        base = self.rules.observe(self, self.state, rows)  # (n, B)
        return np.concatenate([base, self._params[rows]], axis=1).astype(np.float32)

    def step(
        self, actions: np.ndarray, ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As `BatchedTask.step`, but every simulation moves whatever `ids` says: the rules step all rows."""
        act = np.clip(actions, self.action_low, self.action_high, out=self._act)  # (n, 12)
        reward, terminated, _ = self.rules.step(self, self.state, act)
        self.elapsed += 1
        self.rules.redraw(self, self.state, self._base_rng)
        truncated = self.elapsed >= self.max_steps
        return self.observe(), reward, terminated, truncated
