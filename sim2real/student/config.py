"""Student model and distillation configs (`student.*`, `distill.*`).

Defaults are sized for the quick pendulum task on two CPU cores (~26k parameters; receptive field
(4-1) + 2·(8-1) + 1 = 18 steps, ~1 s of history at 20 Hz); larger tasks override them in
`conf/student/` or on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim2real import checks
from sim2real.stages import EXECUTION_ONLY


@dataclass
class StudentConfig:
    arch: str = "transformer"  # transformer | mlp (current observation only, the baseline)
    history: int = 16  # K: training window length in steps
    attn_window: int = 8  # W: each step attends to itself and the W-1 steps before it (W ≤ K)
    conv_kernel: int = 4  # the step embedding is a causal convolution over the last k inputs
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 32
    dropout: float = 0.0
    mlp_hidden: int = 256  # arch=mlp: hidden width (two hidden layers)
    # hide the `prev_action/*` features from the model: with them, behaviour cloning learns to copy its
    # own last action (the "copycat" problem) and fails in closed loop (benchmarks/distill.py)
    drop_prev_action: bool = True
    # return conditioning (RvS/Decision-Transformer style): the model also sees the episode's return,
    # scaled; at deployment it is conditioned on `rtg_quantile` of the training returns
    rtg: bool = False
    rtg_quantile: float = 0.9
    # weight of an auxiliary loss: predict the (normalized) privileged observation from the history, as a
    # concurrent state estimator; shapes what the student extracts from its sensors (0: off)
    aux_privileged: float = 0.0

    def __post_init__(self) -> None:
        p = "student"
        checks.one_of(p, self, "arch", ("transformer", "mlp"))
        checks.at_least(p, self, 1, ("history", "attn_window", "conv_kernel", "n_layer", "n_head"))
        checks.at_least(p, self, 1, ("n_embd", "mlp_hidden"))
        checks.in_range(p, self, "dropout", 0.0, 1.0, high_open=True)
        checks.in_range(p, self, "rtg_quantile", 0.0, 1.0)
        if self.n_embd % self.n_head:
            raise checks.ConfigError(
                f"student.n_embd={self.n_embd} must be divisible by student.n_head={self.n_head}"
            )
        if self.attn_window > self.history:
            raise checks.ConfigError(
                f"student.attn_window={self.attn_window} must be <= student.history={self.history}"
            )


@dataclass
class DistillConfig:
    steps: int = 1000  # optimizer steps of behaviour cloning on the stored data
    batch_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr·min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    val_fraction: float = 0.1  # held-out episodes for the validation loss
    # filtered BC ("%BC"): train (and validate) on the best fraction of the store's episodes by return,
    # chosen before the train/val split (1: all); DAgger episodes are always kept (student/episodes.py)
    keep_top_fraction: float = 1.0
    val_every: int = 250
    eval_every: int = 500  # rollouts of the student under randomization every N steps (0: at the end only)
    eval_episodes: int = 20
    checkpoint_every: int = 500
    # last | best: the student of the best evaluation (every eval_every steps and at the end, on the
    # distill stage's own seeds; student/best.py), not the last, as SB3's EvalCallback keeps best_model
    keep: str = "last"
    # a label at an action bound (±1) is a clipped command: predictions past it are not errors
    saturated_labels: bool = True
    # continue from <run_dir>/student/ when it holds unfinished progress
    resume: bool = field(default=True, metadata=EXECUTION_ONLY)
    threads: int = 1  # CPU intra-op threads (0: torch's default); the small default model gains nothing
    compile: bool = False  # torch.compile (CUDA only)
    amp: bool = True  # bf16 autocast (CUDA only)
    # train/loss (mean since the last log) every N steps
    log_every: int = field(default=25, metadata=EXECUTION_ONLY)
    # data parallel under torchrun (README "Distillation on several GPUs / nodes"): batch_size stays the
    # global batch, split evenly across the processes; the loss trajectory is the one-process one
    # nccl | gloo | ... ; null: nccl on CUDA, gloo on the CPU
    ddp_backend: str | None = field(default=None, metadata=EXECUTION_ONLY)
    # how long the other ranks wait for rank 0 (DAgger rollouts, evaluation)
    ddp_timeout_s: int = field(default=1800, metadata=EXECUTION_ONLY)
    # DAgger: rounds after BC; each round collects episodes with the student driving (probability
    # 1-β per step), the expert labels every visited state, and training continues on the aggregate
    dagger_rounds: int = 0
    dagger_episodes: int = 25
    dagger_steps: int = 400
    dagger_beta: float = 0.5  # β of round 1
    dagger_beta_decay: float = 0.5  # β of round r = dagger_beta · decay^(r-1)
    # the expert takes the controls for `dagger_takeover_hold` steps where the student's action strays
    # from its own by more than this (RMS over the action, in half-ranges; student/rollout.py Takeover),
    # so rounds stay out of failures the expert cannot undo; 0: off
    dagger_takeover: float = 0.0
    dagger_takeover_hold: int = 10

    def __post_init__(self) -> None:
        p = "distill"
        checks.at_least(p, self, 0, ("steps", "warmup_steps", "val_every", "eval_every", "eval_episodes"))
        checks.at_least(p, self, 0, ("checkpoint_every", "threads", "dagger_rounds", "weight_decay"))
        checks.at_least(p, self, 1, ("batch_size", "log_every", "dagger_episodes", "dagger_steps"))
        checks.at_least(p, self, 0, ("dagger_takeover",))
        checks.at_least(p, self, 1, ("dagger_takeover_hold",))
        checks.positive(p, self, ("lr", "grad_clip", "ddp_timeout_s"))
        checks.in_range(p, self, "min_lr_ratio", 0.0, 1.0)
        checks.in_range(p, self, "val_fraction", 0.0, 1.0, high_open=True)
        checks.in_range(p, self, "keep_top_fraction", 0.0, 1.0, low_open=True)
        checks.in_range(p, self, "dagger_beta", 0.0, 1.0)
        checks.in_range(p, self, "dagger_beta_decay", 0.0, 1.0)
        checks.one_of(p, self, "keep", ("last", "best"))
