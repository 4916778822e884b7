"""`sim2real collect`: run an expert in randomized envs and commit its episodes to `<run_dir>/demos.zarr`.

Episodes are committed as they finish (at least every `collect.commit_seconds`), so a killed run
keeps what it committed and `collect.resume=true` continues to `collect.episodes`. Attempt `a` of a
source runs with seed `seed_base + a`; a resumed run starts after the last committed attempt.
`collect.backend=ray` runs the same attempts as Ray tasks (sim2real/data/ray_collect.py).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from sim2real.artifacts import RunLayout, sha256_tree, stage_run
from sim2real.data.config import CollectConfig
from sim2real.data.rollout import VectorRollout, make_vector_env, task_spec
from sim2real.data.schema import Episode, StoreSpec
from sim2real.data.store import DemoStore, exists
from sim2real.errors import UserError
from sim2real.ray_backend import check_backend, session

if TYPE_CHECKING:
    from sim2real.config import Config
    from sim2real.metrics import MetricLogger
    from sim2real.teacher.expert import Expert

SEED_STRIDE = 10**6  # attempts per source before seeds of two sources could meet


def check_config(c: CollectConfig) -> None:
    for name, ok in (
        ("episodes", c.episodes >= 1),
        ("n_envs", c.n_envs >= 1),
        ("keep_top_fraction", 0 < c.keep_top_fraction <= 1),
        ("filter_block", c.filter_block >= 1),
        ("action_noise", c.action_noise >= 0),
        ("commit_seconds", c.commit_seconds >= 0),
        ("max_attempts", c.max_attempts >= 0),
        ("workers", c.workers is None or c.workers >= 1),
    ):
        if not ok:
            raise ValueError(f"collect.{name}={getattr(c, name)!r} is out of range")
    check_backend(c.backend, "collect.backend")


def open_store(path: Path, spec: StoreSpec, resume: bool) -> DemoStore:
    """The store to collect into: new, or an existing one when resuming (locked either way)."""
    if not exists(path):
        return DemoStore.create(path, spec)
    store = DemoStore.open(path, "a")
    if store.num_episodes == 0 and not resume:
        store.close()
        return DemoStore.create(path, spec, overwrite=True)
    if not resume:
        store.close()
        raise UserError(
            f"{path} already holds {store.num_episodes} episodes; pass collect.resume=true to continue "
            f"to collect.episodes, or remove it to start over"
        )
    problem = store.spec.mismatch(spec)
    if problem:
        store.close()
        raise UserError(f"{path} cannot take these episodes: {problem}")
    return store


def source_entry(expert: Expert, cfg: Config) -> dict[str, Any]:
    """The source-table entry (identity) of this collection: expert and how episodes were made."""
    c = cfg.collect
    return {
        "kind": "expert",
        "expert": getattr(expert, "name", type(expert).__name__),
        "expert_sha256": getattr(expert, "sha256", None),
        "path": str(getattr(expert, "path", None) or "") or None,
        "seed": cfg.seed,
        "action_noise": c.action_noise,
        "keep_top_fraction": c.keep_top_fraction,
        "filter_block": c.filter_block if c.keep_top_fraction < 1 else 1,
        "min_return": c.min_return,
        "randomization": cfg.task.ranges(),
    }


def attach_source(store: DemoStore, entry: dict[str, Any]) -> tuple[int, int]:
    """(source id, seed base): the matching entry when resuming, else a new one."""
    sid = store.find_source(entry)
    if sid is None:
        seed_base = (int(entry["seed"]) * 1000 + len(store.sources)) * SEED_STRIDE
        sid = store.add_source({**entry, "seed_base": seed_base})
    return sid, int(store.sources[sid]["seed_base"])


def next_attempt(store: DemoStore, sid: int, seed_base: int, block: int) -> int:
    """First attempt after the block of the last committed attempt of source `sid`."""
    seeds = store.meta("episode_seed")[store.meta("episode_source") == sid]
    if not len(seeds):
        return 0
    return (int(seeds.max() - seed_base) // block + 1) * block


@dataclass
class Tally:
    """What a collection did, for the progress bar, the log and the manifest."""

    attempts: int = 0
    kept: int = 0
    start: float = field(default_factory=time.monotonic)
    returns: list[float] = field(default_factory=list)
    steps: int = 0  # env steps, when no single rollout counts them (Ray backend)

    def summary(self, rollout: VectorRollout | None = None) -> dict[str, Any]:
        secs = max(time.monotonic() - self.start, 1e-9)
        steps = rollout.steps if rollout is not None else self.steps
        r = np.asarray(self.returns) if self.returns else np.full(1, np.nan)
        return {
            "attempts": self.attempts,
            "kept": self.kept,
            "env_steps": steps,
            "steps_per_s": round(steps / secs, 1),
            "return_mean": float(np.mean(r)),
            "return_min": float(np.min(r)),
            "return_max": float(np.max(r)),
        }


def select(block: list[Episode], keep: int, min_return: float | None) -> list[Episode]:
    """The `keep` best episodes of a block by return (above `min_return`), in attempt order."""
    best = sorted(block, key=lambda e: -e.ret)[:keep]
    if min_return is not None:
        best = [e for e in best if e.ret >= min_return]
    return sorted(best, key=lambda e: e.extra["attempt"])


def collect(
    store: DemoStore, rollout: VectorRollout, c: CollectConfig, sid: int, seed_base: int, logger: MetricLogger
) -> Tally:
    """Run attempts until the store holds `c.episodes` kept episodes; commit as they are selected."""
    tally, target = Tally(), c.episodes
    if store.num_episodes >= target:
        return tally
    block = 1 if c.keep_top_fraction >= 1 else c.filter_block
    per_block = max(1, round(block * c.keep_top_fraction))
    limit = c.max_attempts or 10 * math.ceil((target - store.num_episodes) * block / per_block)
    first = next_attempt(store, sid, seed_base, block)
    attempts = ((a, seed_base + a) for a in itertools.count(first))
    blocks: dict[int, list[Episode]] = defaultdict(list)
    pending: list[Episode] = []
    last = time.monotonic()
    bar = tqdm(total=target, initial=store.num_episodes, unit="ep", desc="collect", disable=not c.progress)
    for attempt, ep in rollout.episodes(attempts):
        if store.num_episodes >= target:
            break
        tally.attempts += 1
        ep.extra["attempt"] = attempt
        blocks[attempt // block].append(ep)
        if len(blocks[attempt // block]) == block:
            need = target - store.num_episodes - len(pending)
            pending += select(blocks.pop(attempt // block), min(per_block, need), c.min_return)
        if pending and (
            store.num_episodes + len(pending) >= target or time.monotonic() - last >= c.commit_seconds
        ):
            _commit(store, pending, sid, tally, rollout, bar, logger)
            pending, last = [], time.monotonic()
        check_attempts(store.num_episodes, target, tally, limit)
    bar.close()
    return tally


def check_attempts(have: int, target: int, tally: Tally, limit: int) -> None:
    """Stop a collection whose filters reject too much, instead of trying for ever."""
    if have < target and tally.attempts >= limit:
        raise UserError(
            f"collect: only {tally.kept} episodes passed the filters in {tally.attempts} attempts "
            f"(collect.max_attempts); lower collect.min_return or raise collect.max_attempts"
        )


def _commit(store, pending, sid, tally, rollout, bar, logger) -> None:
    store.append_episodes(pending, sid)
    tally.kept += len(pending)
    tally.returns += [e.ret for e in pending]
    bar.update(len(pending))
    s = tally.summary(rollout)
    bar.set_postfix(
        steps_s=f"{s['steps_per_s']:.0f}",
        kept=f"{tally.kept}/{tally.attempts}",
        ret=f"{s['return_mean']:.1f}",
    )
    logger.log({"episodes": store.num_episodes, **s}, step=store.num_episodes)


def run(cfg: Config) -> None:
    from sim2real.metrics import MetricLogger
    from sim2real.teacher.experts import load_expert

    c = cfg.collect
    check_config(c)
    layout = RunLayout(cfg.run_dir)
    out = layout.demos
    expert = load_expert(cfg.expert, layout.root, cfg.task.name)
    spec = task_spec(cfg.task.name, cfg.task.ranges())
    ray = c.backend == "ray"
    venv = None if ray else make_vector_env(cfg.task.name, cfg.task.ranges(), c.n_envs, c.async_envs)
    remote = session(c.ray_address, c.workers, "collect.ray_address") if ray else contextlib.nullcontext()
    try:
        with remote, open_store(out, spec, c.resume) as store:
            sha = getattr(expert, "sha256", None)
            with stage_run(out, "collect", asdict(cfg), cfg.seed, {"expert": sha} if sha else {}) as srun:
                logger = MetricLogger(cfg.logger, layout.logs("collect"), "collect", asdict(cfg))
                sid, seed_base = attach_source(store, source_entry(expert, cfg))
                rollout = None if venv is None else VectorRollout(venv, expert, c.action_noise)
                if rollout is None:
                    from sim2real.data.ray_collect import collect_ray

                    tally = collect_ray(store, _absolute(cfg), sid, seed_base, spec, logger)
                else:
                    tally = collect(store, rollout, c, sid, seed_base, logger)
                logger.close()
                srun.summary.update(
                    tally.summary(rollout), episodes=store.num_episodes, steps=store.num_steps
                )
                srun.outputs[out.name] = sha256_tree(out)
    except OSError as e:  # a full disk or a store made read-only mid-run: committed episodes stay
        raise UserError(
            f"collect: cannot write {out} ({e.strerror or e}); the episodes committed so far are kept: "
            "free space (or fix permissions), then rerun with collect.resume=true"
        ) from e
    finally:
        if venv is not None:
            venv.close()
    s = srun.summary
    done = (
        f"this run kept {s['kept']} of {s['attempts']} attempts, return {s['return_mean']:.1f} "
        f"[{s['return_min']:.1f}, {s['return_max']:.1f}], {s['steps_per_s']:.0f} env steps/s"
        if s["attempts"]
        else f"nothing to do (collect.episodes={c.episodes})"
    )
    print(f"collect: {out} holds {s['episodes']} episodes ({s['steps']} steps); {done}")


def _absolute(cfg: Config) -> Config:
    """Paths a Ray worker resolves on its own (its working directory may differ): made absolute."""
    from sim2real.ray_backend import absolute

    expert = replace(cfg.expert, path=absolute(cfg.expert.path) if cfg.expert.path else cfg.expert.path)
    return replace(cfg, run_dir=absolute(cfg.run_dir), expert=expert)
