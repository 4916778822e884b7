"""`collect.backend=ray`: rollout tasks on Ray, each writing its own shard, merged in attempt order.

Attempt `a` runs with seed `seed_base + a`, exactly as in the local backend, so a task is given a
contiguous range of whole filter blocks and its episodes are the very ones the local backend would
make for those attempts. Task k writes `<out>.shards/shard-<k>.zarr` and, once complete, a
`shard-<k>.done.json` marker. The driver appends finished shards to the store in plan order as
soon as all before them are in (whole shards per atomic append, trimmed to `collect.episodes`), so
the store's episodes are in attempt order whatever the number of workers. Tasks are at least
MIN_TASK_STEPS long and the appends batched, so the driver's fixed costs per shard stay small next
to the workers' rollouts.

Resume: the plan (`plan.json`: attempt ranges and the identity of what they make) stays until its
round is merged. A resumed run whose next attempt starts a planned range reuses the completed shards
from there on and reruns the others; anything else starts a fresh plan. The store only ever receives
whole shards, so a kill at any moment leaves it consistent. The shard folder is removed at the end.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from sim2real.artifacts import write_json_atomic
from sim2real.data.collect import Tally, check_attempts, next_attempt, select
from sim2real.data.schema import Episode, StoreSpec, episodes_of
from sim2real.data.store import DemoStore
from sim2real.ray_backend import cluster_cpus, run_tasks

if TYPE_CHECKING:
    from sim2real.config import Config
    from sim2real.data.config import CollectConfig
    from sim2real.metrics import MetricLogger

TASKS_PER_WORKER = 4  # up to this many tasks per worker: load balance and a moving progress bar
MIN_TASK_STEPS = 20_000  # ... but none shorter (at full episode length), for the per-task fixed costs


def episode_steps(task: str) -> int:
    import gymnasium as gym

    import envs

    return gym.spec(envs.env_id(task)).max_episode_steps or 1000


@dataclass(frozen=True)
class Plan:
    """What every shard of a collection shares: the source entry (with its seed base) and the filter."""

    source: dict
    seed_base: int
    block: int
    per_block: int

    @property
    def key(self) -> str:
        blob = json.dumps([self.source, self.seed_base, self.block, self.per_block], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Job:
    """One task: attempts [first, stop) (whole blocks), written to the shard store at `path`."""

    index: int
    first: int
    stop: int
    path: str

    @property
    def done_path(self) -> Path:
        return Path(self.path).with_suffix(".done.json")


def shard_dir(out: Path) -> Path:
    return out.with_name(out.name + ".shards")


# ---- in a Ray worker ---------------------------------------------------------------------------------
def run_shard(cfg: Config, plan: Plan, job: Job, spec: StoreSpec) -> dict[str, Any]:
    """Run the attempts of `job`, keep the best of each block, commit them to a fresh shard store."""
    from sim2real.data.rollout import VectorRollout, make_vector_env
    from sim2real.teacher.experts import load_expert

    c = cfg.collect
    expert = load_expert(cfg.expert, cfg.run_dir, cfg.task.name)
    if "torch" in sys.modules:  # one task per CPU: torch's own threads would oversubscribe
        sys.modules["torch"].set_num_threads(1)
    venv = make_vector_env(cfg.task.name, cfg.task.ranges(), min(c.n_envs, job.stop - job.first))
    start, kept = time.monotonic(), []
    try:
        rollout = VectorRollout(venv, expert, c.action_noise)
        blocks: dict[int, list[Episode]] = {}
        attempts = ((a, plan.seed_base + a) for a in range(job.first, job.stop))
        for attempt, ep in rollout.episodes(attempts):
            ep.extra["attempt"] = attempt
            block = blocks.setdefault(attempt // plan.block, [])
            block.append(ep)
            if len(block) == plan.block:
                kept += select(blocks.pop(attempt // plan.block), plan.per_block, c.min_return)
    finally:
        venv.close()
    # one commit: an unfinished shard is never reused (no done marker), so it needs no partial commits
    with DemoStore.create(job.path, spec, overwrite=True) as shard:
        shard.append_episodes(kept, shard.add_source(plan.source))
    result = {
        "first": job.first,
        "stop": job.stop,
        "attempts": job.stop - job.first,
        "steps": rollout.steps,
        "kept": len(kept),
        "seconds": time.monotonic() - start,
    }
    write_json_atomic(job.done_path, result)
    return {**result, "episodes": kept}  # the driver merges these, not a re-read of the shard


# ---- on the driver -----------------------------------------------------------------------------------
def split(first: int, n_blocks: int, block: int, tasks: int) -> list[tuple[int, int]]:
    """`n_blocks` blocks from attempt `first`, as `tasks` contiguous ranges of near-equal size."""
    tasks = max(1, min(tasks, n_blocks))
    sizes = [n_blocks // tasks + (k < n_blocks % tasks) for k in range(tasks)]
    bounds = [first + block * b for b in itertools.accumulate([0, *sizes])]
    return list(itertools.pairwise(bounds))


def make_jobs(folder: Path, plan: Plan, first: int, n_blocks: int, tasks: int) -> list[Job]:
    """This round's jobs: the rest of a matching earlier plan that starts at `first`, else a new plan."""
    plan_file = folder / "plan.json"
    old = json.loads(plan_file.read_text()) if plan_file.is_file() else None
    if old and old.get("key") == plan.key:
        starts = [a for a, _ in old["ranges"]]
        if first in starts:
            return _jobs(folder, old["ranges"])[starts.index(first) :]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ranges = split(first, n_blocks, plan.block, tasks)
    write_json_atomic(plan_file, {"key": plan.key, "ranges": ranges})
    return _jobs(folder, ranges)


def _jobs(folder: Path, ranges: list) -> list[Job]:
    return [Job(k, int(a), int(b), str(folder / f"shard-{k}.zarr")) for k, (a, b) in enumerate(ranges)]


def finished(job: Job) -> dict[str, Any] | None:
    """The done marker of a completed shard of this very range, or None."""
    try:
        done = json.loads(job.done_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return done if (done.get("first"), done.get("stop")) == (job.first, job.stop) else None


def shard_episodes(job: Job, plan: Plan, need: int, eps: list[Episode] | None = None) -> list[Episode]:
    """A finished shard's episodes (`eps` as its task returned them, else read from the shard) in
    attempt order, at most `need` of them. A block that would overshoot keeps its best episodes,
    as the local backend does."""
    if eps is None:
        shard = DemoStore.open(job.path)
        eps = episodes_of(shard.load_arrays()) if shard.num_episodes else []  # all rejected: empty
    for ep in eps:
        ep.extra["attempt"] = ep.seed - plan.seed_base
    eps.sort(key=lambda e: e.extra["attempt"])
    take: list[Episode] = []
    for _, group in itertools.groupby(eps, key=lambda e: e.extra["attempt"] // plan.block):
        if need - len(take) <= 0:
            break
        group = list(group)
        take += select(group, min(len(group), need - len(take)), None)
    return take


class Merger:
    """Appends finished shards to the store in plan order, whole shards at a time, trimmed to the target.

    Appends are batched (one per `commit_seconds`, and at the end): each rewrites the stores' edge
    chunks at a fixed cost, which one append per shard would pay N times faster with N workers."""

    def __init__(self, store: DemoStore, sid: int, plan: Plan, c: CollectConfig, tally: Tally, bar, logger):
        self.store, self.sid, self.plan, self.target, self.every = (
            store,
            sid,
            plan,
            c.episodes,
            c.commit_seconds,
        )
        self.tally, self.bar, self.logger = tally, bar, logger
        self.waiting: list[Job] = []  # not merged yet, in plan order
        self.done: dict[int, dict[str, Any]] = {}
        self.returned: dict[int, list[Episode]] = {}  # episodes that tasks of this run returned
        self.pending: list[Episode] = []
        self.last = time.monotonic()

    def start(self, jobs: list[Job]) -> list[Job]:
        """Take a round's jobs; merge those already done (an earlier run's); return the ones to run."""
        self.waiting, self.returned = list(jobs), {}
        self.done = {j.index: m for j in jobs if (m := finished(j)) is not None}
        self.advance()
        return [j for j in jobs if j.index not in self.done] if self.missing() else []

    def missing(self) -> int:
        return self.target - self.store.num_episodes - len(self.pending)

    def finished(self, job: Job, result: dict[str, Any]) -> None:
        self.returned[job.index] = result.pop("episodes")
        self.done[job.index] = result
        self.tally.steps += result["steps"]
        self.advance()

    def advance(self) -> None:
        while self.waiting and self.waiting[0].index in self.done and self.missing() > 0:
            job = self.waiting.pop(0)
            eps = shard_episodes(job, self.plan, self.missing(), self.returned.pop(job.index, None))
            self.pending += eps
            self.tally.attempts += self.done[job.index]["attempts"]
            self.tally.kept += len(eps)
            self.tally.returns += [e.ret for e in eps]
            self.bar.set_postfix(steps_s=f"{self.tally.summary()['steps_per_s']:.0f}", refresh=False)
            self.bar.update(len(eps))
        last_one = not self.waiting or self.missing() <= 0
        if self.pending and (last_one or time.monotonic() - self.last >= self.every):
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.store.append_episodes(self.pending, self.sid)  # one atomic commit of whole shards
        self.pending, self.last = [], time.monotonic()
        self.logger.log(
            {"episodes": self.store.num_episodes, **self.tally.summary()}, step=self.store.num_episodes
        )


def blocks_for(need: int, per_block: int, tally: Tally, blocks_run: int) -> int:
    """Blocks to run for `need` more episodes: the filter's nominal yield at first, then the observed one."""
    if blocks_run == 0:
        return math.ceil(need / per_block)
    rate = tally.kept / blocks_run
    return math.ceil(1.25 * need / rate) if rate > 0 else 2 * blocks_run


def collect_ray(
    store: DemoStore, cfg: Config, sid: int, seed_base: int, spec: StoreSpec, logger: MetricLogger
) -> Tally:
    """Fill `store` to `collect.episodes` with Ray tasks (Ray must be initialized: `ray_backend.session`)."""
    c, target = cfg.collect, cfg.collect.episodes
    tally = Tally()
    if store.num_episodes >= target:
        return tally
    block = 1 if c.keep_top_fraction >= 1 else c.filter_block
    entry = {k: v for k, v in store.sources[sid].items() if k not in ("id", "created")}
    plan = Plan(entry, seed_base, block, max(1, round(block * c.keep_top_fraction)))
    limit = c.max_attempts or 10 * math.ceil((target - store.num_episodes) * block / plan.per_block)
    folder, workers = shard_dir(store.path), c.workers or cluster_cpus()
    min_blocks = math.ceil(MIN_TASK_STEPS / episode_steps(cfg.task.name) / block)
    bar = tqdm(total=target, initial=store.num_episodes, unit="ep", desc="collect", disable=not c.progress)
    merger = Merger(store, sid, plan, c, tally, bar, logger)
    blocks_run = 0
    while store.num_episodes < target:
        first = next_attempt(store, sid, seed_base, block)
        n_blocks = blocks_for(target - store.num_episodes, plan.per_block, tally, blocks_run)
        n_blocks = max(1, min(n_blocks, math.ceil((limit - tally.attempts) / block)))
        tasks = min(TASKS_PER_WORKER * workers, max(workers, n_blocks // max(1, min_blocks)))
        jobs = make_jobs(folder, plan, first, n_blocks, tasks)
        _round(cfg, merger, jobs, spec)
        shutil.rmtree(folder)  # every shard of the round is merged: the next round plans afresh
        blocks_run += sum(j.stop - j.first for j in jobs) // block
        check_attempts(store.num_episodes, target, tally, limit)
    bar.close()
    return tally


def _round(cfg: Config, merger: Merger, jobs: list[Job], spec: StoreSpec) -> None:
    """Run the jobs without a done marker; shards are merged in order as soon as all before are done."""
    todo = merger.start(jobs)
    if todo:
        run_tasks(
            run_shard,
            [(cfg, merger.plan, job, spec) for job in todo],
            cfg.collect.workers,
            desc="collect",
            progress=False,
            on_done=lambda i, result: merger.finished(todo[i], result),
        )
    merger.flush()
