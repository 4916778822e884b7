"""`finetune.*`: PPO fine-tuning of the distilled student in the randomized simulator (no expert needed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.lockstep import KINDS
from sim2real import checks
from sim2real.stages import EXECUTION_ONLY


@dataclass
class FinetuneConfig:
    # env steps of PPO on the student; 0: no fine-tuning, and export takes <run_dir>/student/
    steps: int = 0
    n_envs: int = 16  # simulations stepped in lockstep by the student
    n_steps: int = 128  # control steps per env and update
    epochs: int = 4
    minibatch: int = 512  # samples (windows of the student's receptive field)
    lr: float = 1e-4  # actor; on Hopper 1e-4 with init_std 0.1 beat 3e-5 with 0.2 (docs/results.md)
    critic_lr: float = 1e-3
    critic_warmup: int = 5  # updates that train the critic alone before the actor moves
    init_std: float = 0.1  # exploration std in normalized action units (learned from there)
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    ent_coef: float = 0.0
    target_kl: float = 0.02  # an update stops its epochs past this approximate KL
    max_grad_norm: float = 0.5
    # imitation term on the visited states (expert labels, as DAgger): 0 needs no expert at all
    bc_coef: float = 0.0
    # auto: online for a return-conditioned student (student.rtg=true), PPO otherwise; ppo | online force one
    method: str = "auto"
    # online (finetune/online.py, ODT style; return-conditioned students only): rounds
    # of `online_episodes` episodes with Gaussian exploration `online_noise` (× the action half-range),
    # then `online_steps` gradient steps at `online_lr` on the store with the new episodes; `steps` caps
    # the env steps of all rounds together
    online_episodes: int = 25
    online_steps: int = 500
    online_lr: float = 1e-3
    online_noise: float = 0.1
    # ODT's replay: train on the best `online_replay` stored episodes by return, then first-in-first-out
    # as each round's episodes arrive (None: the whole store and every new episode)
    online_replay: int | None = None
    # evaluation on the distill stage's own evaluation seeds every N updates; the best student
    # (the distilled one included) is kept
    eval_every: int = 10
    eval_episodes: int = 10
    # then the kept student must beat the distilled one on this many fresh episodes, or the distilled one
    # is the output: the best of ~50 evaluations of 10 episodes is partly luck (Walker2d, seed 0: kept 3,317
    # on its 10, 2,571 on 30 fresh ones, the distilled student 2,637); 0: keep the best evaluation as is
    confirm_episodes: int = 30
    checkpoint_every: int = field(default=10, metadata=EXECUTION_ONLY)  # updates
    resume: bool = field(default=True, metadata=EXECUTION_ONLY)
    threads: int = field(default=1, metadata=EXECUTION_ONLY)  # CPU intra-op threads (0: torch's default)
    # how the rollouts' envs step (envs.lockstep): batch (`mujoco.batch` on a thread pool) where the task
    # has it under auto, else gym (one by one); the same episodes either way, so not part of the config key
    vec_env: str = field(default="auto", metadata=EXECUTION_ONLY)

    def __post_init__(self) -> None:
        p = "finetune"
        checks.one_of(p, self, "method", ("auto", "ppo", "online"))
        checks.one_of(p, self, "vec_env", KINDS)
        checks.at_least(p, self, 0, ("steps", "critic_warmup", "ent_coef", "bc_coef", "threads"))
        checks.at_least(p, self, 0, ("confirm_episodes",))
        checks.at_least(p, self, 1, ("n_envs", "n_steps", "epochs", "minibatch", "eval_every"))
        checks.at_least(p, self, 1, ("eval_episodes", "checkpoint_every", "online_episodes", "online_steps"))
        checks.at_least(p, self, 0, ("online_noise",))
        checks.at_least(p, self, 2, ("online_replay",), optional=True)
        checks.positive(p, self, ("online_lr",))
        checks.positive(p, self, ("lr", "critic_lr", "init_std", "clip", "target_kl", "max_grad_norm"))
        checks.in_range(p, self, "gamma", 0.0, 1.0)
        checks.in_range(p, self, "gae_lambda", 0.0, 1.0)

    @property
    def enabled(self) -> bool:
        return self.steps > 0
