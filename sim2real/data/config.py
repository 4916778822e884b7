"""Collection and import configs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim2real import checks
from sim2real.stages import EXECUTION_ONLY


@dataclass
class CollectConfig:
    """`sim2real collect`: how many episodes the store must hold and how they are made.

    `episodes` counts kept episodes in the whole store (a resumed run continues to it). With
    `keep_top_fraction < 1`, attempts run in blocks of `filter_block` and each block keeps its
    best `round(filter_block * keep_top_fraction)` episodes by return (distilling from many attempts
    of a weak agent); `min_return` rejects episodes below a return outright.
    """

    episodes: int = 200
    n_envs: int = 4
    resume: bool = False
    async_envs: bool = False  # gymnasium AsyncVectorEnv (one process per env) instead of SyncVectorEnv
    # DART-style noise: std of Gaussian noise added to the executed action (the label stays clean)
    action_noise: float = 0.0
    keep_top_fraction: float = 1.0
    filter_block: int = 20
    min_return: float | None = None
    # give up when this many attempts gave too few kept episodes (0: 10x the attempts needed)
    max_attempts: int = 0
    # finished episodes are committed at least this often (each commit rewrites the edge chunks)
    commit_seconds: float = field(default=1.0, metadata=EXECUTION_ONLY)
    progress: bool = field(default=True, metadata=EXECUTION_ONLY)
    # where episodes run: local (this process, `n_envs` envs) or ray (tasks of `n_envs` envs each, one
    # shard per task, merged in episode order; see sim2real/data/ray_collect.py)
    backend: str = field(default="local", metadata=EXECUTION_ONLY)
    # ray: None starts a local instance; "auto" or "HOST:PORT" joins one
    ray_address: str | None = field(default=None, metadata=EXECUTION_ONLY)
    # ray: tasks in flight (None: the cluster's CPUs)
    workers: int | None = field(default=None, metadata=EXECUTION_ONLY)

    def __post_init__(self) -> None:
        p = "collect"
        checks.at_least(p, self, 1, ("episodes", "n_envs", "filter_block"))
        checks.at_least(p, self, 1, ("workers",), optional=True)
        checks.at_least(p, self, 0, ("action_noise", "max_attempts", "commit_seconds"))  # 0: every episode
        if not 0 < self.keep_top_fraction <= 1:
            raise checks.ConfigError(
                f"collect.keep_top_fraction={self.keep_top_fraction!r} must be in (0, 1]"
            )
        # collect.backend is checked by `ray_backend.check_backend` when collection starts


@dataclass
class ImportKeys:
    student_obs: str | None = None
    action: str | None = None
    privileged_obs: str | None = None
    reward: str | None = None


@dataclass
class ImportConfig:
    """`sim2real import source=PATH format=... out=PATH.zarr keys.student_obs=KEY keys.action=KEY`
    (the command line's `source=` etc. are `importer.source=` etc.: see `sim2real.stages.ALIASES`)."""

    source: str | None = None
    format: str | None = None
    out: str | None = None
    keys: ImportKeys = field(default_factory=ImportKeys)
