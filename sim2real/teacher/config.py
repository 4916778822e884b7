"""Teacher training config (filled per task by `conf/teacher/<task>.yaml`) and the expert choice."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sim2real import checks
from sim2real.stages import EXECUTION_ONLY


@dataclass
class AlgoConfig:
    """One algorithm's budget and Stable-Baselines3 constructor arguments (an RL Zoo entry).

    `hyperparams` are passed to the SB3 class (`PPO(**hyperparams)`); strings the Zoo uses are
    understood: `lin_3e-4` (linear schedule), `policy_kwargs.activation_fn: relu|tanh|elu|gelu`,
    `train_freq: [1, episode]`. An argument SB3 does not take is an error naming it.
    """

    total_timesteps: int = 100_000
    n_envs: int = 1
    normalize_reward: bool = False  # VecNormalize reward scaling during training (the Zoo's `normalize`)
    hyperparams: dict[str, Any] = field(default_factory=dict)

    def check(self, prefix: str) -> None:
        """Range checks under `prefix` (teacher.ppo, teacher.sac): TeacherConfig runs them."""
        checks.at_least(prefix, self, 1, ("total_timesteps", "n_envs"))


@dataclass
class TeacherConfig:
    """`sim2real train-teacher`: SB3 PPO/SAC on obs["privileged"] under domain randomization."""

    algo: str = "ppo"  # ppo | sac
    total_timesteps: int | None = None  # None: the algo block's budget
    n_envs: int | None = None  # None: the algo block's
    # auto | batch | dummy | subproc. auto: batch (mujoco.batch, one call steps every env) where the task
    # has batched rules (hopper, walker2d, halfcheetah, ant, go2), else subprocesses when n_envs > 1 and
    # cores allow
    vec_env: str = "auto"
    normalize_obs: bool = True  # VecNormalize obs statistics, saved and applied inside the loaded teacher
    clip_obs: float = 10.0
    # std of Gaussian noise on every executed training action, × the action half-range (0: none); a
    # teacher robust to small action errors leaves its student room for its own (teacher.vec.ActionNoise)
    action_noise: float = 0.0
    # std of Gaussian noise on the normalized privileged obs the policy trains on (0: none); a teacher that
    # does not hinge on exact inputs leaves labels a student with noisy sensors can follow (vec.ObsNoise)
    obs_noise: float = 0.0
    # the teacher never sees the episode's physical parameters (mass, friction, motor strength, damping
    # scales): their normalized entries are zeroed in training and inside the saved teacher, so it learns
    # one controller robust to them rather than one adapted to each, as its student must (vec.HideColumns).
    # Every task built on envs.task.RandomizedTask (all of envs.TASKS; go2: its nine parameters)
    blind_params: bool = False
    # [low, high] rad: every training episode starts with its root pitched by U(low, high) and drops from
    # there, so the teacher learns to get up from poses its own runs rarely reach but its student's do
    # (HalfCheetah nose down at ~1.1 rad). Planar batched tasks (hopper, walker2d, halfcheetah); None: off
    reset_pitch: list[float] | None = None
    # rad: a training episode ends (terminated, so `fall_penalty` applies) once the root pitch passes
    # ±max_pitch, so the teacher learns to keep away from the somersault its students inherit (HalfCheetah
    # teachers land on their backs in 0-27% of randomized episodes and cannot get up). Training envs only:
    # evaluation, collection and validation keep the task's rules. Planar batched tasks; None: off.
    # HalfCheetah seed 1 at 1.0 / 0.5 rad: stronger teachers (nominal 5,685 / 5,779), students that still
    # flip (scores 0.437 / 0.354 against 0.407 without; docs/results.md)
    max_pitch: float | None = None
    # commanded tasks (Go2): control steps between command draws in training only (None: the task's own,
    # 500 = 10 s, one change per episode). Evaluation, collection and validation keep the task's period.
    # The Go2 teacher's falls come 0.3-1 s after a change; 10M more steps at 250 did not lower their rate
    # (3.0% -> 3.5% of 200 episodes, docs/results.md), so it is off by default
    command_period: int | None = None
    # subtracted from the reward of a training step that ends in a fall (terminated, not timed out), after
    # the task's per-step clipping (legged_gym's termination term); 0: none. vec.FallPenalty
    fall_penalty: float = 0.0
    # rough ground (task go2_rough): each training env's next terrain level one row harder after an episode
    # it got through, one easier after a fall (curriculum.py)
    terrain_curriculum: bool = False
    # with it, > 0: also one row easier after an episode that walked less than this share of its commanded
    # distance, harder only at or above it (legged_gym judges distance: 0.5); 0: falls alone decide
    curriculum_progress: float = 0.0
    # record every training episode (student and privileged obs, executed actions, rewards, dynamics) in
    # <run_dir>/training.zarr, tagged by training step: the run's data outlives the agent (teacher/record.py)
    record_episodes: bool = False
    # env steps between commits of the recorded episodes (each commit one source entry)
    record_every: int = field(default=10_000, metadata=EXECUTION_ONLY)
    # which checkpoint becomes the teacher: `best` (the best evaluation, as SB3's EvalCallback keeps
    # best_model) or `last`. `last` where evaluations cannot tell checkpoints apart: on Go2 one fall in ten
    # episodes moves an evaluation by ~2.5, and `best` kept a 30M checkpoint that fell in 3.5% of 200
    # episodes over a last (40M, teacher.fall_penalty=5) that fell in 1.5% of 400 (docs/results.md)
    keep: str = "best"
    # a trained teacher's folder (<run_dir>/teacher) to start a new run from, for the same robot on another
    # task: inputs matched by name, new ones at zero weight (flat ground -> rough ground; warm_start.py)
    init_from: str | None = None
    eval_freq: int = 10_000  # env steps between evaluations under randomization (0: only at the end)
    eval_episodes: int = 10  # per evaluation, on seeds separate from training
    checkpoint_freq: int = 10_000  # env steps between resumable checkpoints (0: only at the end)
    save_replay_buffer: bool = True  # off-policy: keep the replay buffer with the checkpoint
    resume: bool = True  # continue from <run_dir>/teacher/checkpoints when it holds a compatible run
    torch_threads: int = 1  # small MLPs train fastest on one thread; 0 keeps torch's default
    progress: bool = True
    ppo: AlgoConfig = field(default_factory=AlgoConfig)
    sac: AlgoConfig = field(default_factory=lambda: AlgoConfig(total_timesteps=20_000))

    def __post_init__(self) -> None:
        p = "teacher"
        checks.one_of(p, self, "algo", ("ppo", "sac"))
        checks.one_of(p, self, "vec_env", ("auto", "batch", "dummy", "subproc"))
        checks.one_of(p, self, "keep", ("best", "last"))
        checks.at_least(p, self, 1, ("total_timesteps", "n_envs"), optional=True)
        nonnegative = ("eval_freq", "checkpoint_freq", "torch_threads", "action_noise", "obs_noise")
        checks.at_least(p, self, 0, (*nonnegative, "fall_penalty"))
        checks.at_least(p, self, 1, ("eval_episodes", "record_every"))
        if self.reset_pitch is not None:
            pair = list(self.reset_pitch)
            if len(pair) != 2 or not -math.pi <= float(pair[0]) <= float(pair[1]) <= math.pi:
                raise checks.ConfigError(f"{p}.reset_pitch={pair} must be [low, high] rad within [-pi, pi]")
            self.reset_pitch = [float(v) for v in pair]
        checks.positive(p, self, ("clip_obs",))
        checks.positive(p, self, ("max_pitch",), optional=True)
        if not 0.0 <= self.curriculum_progress <= 1.0:
            raise checks.ConfigError(f"{p}.curriculum_progress={self.curriculum_progress}: must be in [0, 1]")
        if self.curriculum_progress > 0 and not self.terrain_curriculum:
            raise checks.ConfigError(f"{p}.curriculum_progress needs {p}.terrain_curriculum=true")
        checks.at_least(p, self, 1, ("command_period",), optional=True)
        self.ppo.check("teacher.ppo")
        self.sac.check("teacher.sac")

    def algo_config(self) -> AlgoConfig:
        if self.algo not in ("ppo", "sac"):
            raise ValueError(f"teacher.algo={self.algo!r}: expected ppo or sac")
        return getattr(self, self.algo)

    def budget(self) -> int:
        return (
            self.total_timesteps if self.total_timesteps is not None else self.algo_config().total_timesteps
        )

    def num_envs(self) -> int:
        return self.n_envs if self.n_envs is not None else self.algo_config().n_envs


@dataclass
class ExpertConfig:
    """Which expert acts: `teacher` (the run's), `sb3_zip` (any SB3 model file), `scripted`."""

    kind: str = "teacher"
    path: str | None = None
    algo: str | None = None  # sb3_zip: ppo | sac | ... (guessed from the file when None)
