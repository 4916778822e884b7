"""`sim2real import`: a foreign dataset becomes a schema-v1 store a student can be distilled from.

Foreign data has no expert labels: the recorded action goes to `data/action` and `expert_action` is
NaN (the sampler then trains on `action`). A missing privileged observation is stored zero-width
(`data/privileged_obs` of shape (N, 0)); a missing reward is NaN (so returns are NaN: unknown, not 0).
Names are `<key>[i]` and action bounds the observed range, unless the command line names the task
(`task=<name>`): then the dimensions must match that task's and its names, bounds and control dt are
written into the store (`sim2real.data.binding`), so the student distilled from it exports and deploys.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from sim2real.artifacts import sha256_tree
from sim2real.data import binding
from sim2real.data.checks import check_ends
from sim2real.data.config import ImportKeys
from sim2real.data.formats import FORMATS, Foreign, read
from sim2real.data.schema import Episode, StoreSpec
from sim2real.data.store import DemoStore, exists
from sim2real.errors import UserError

if TYPE_CHECKING:
    from sim2real.config import Config

BATCH_STEPS = 1 << 20  # steps per commit while importing


def check_finite(data: Foreign, path: Path) -> None:
    """NaN/inf in actions or observations is an error naming the array, episode and step."""
    for field in ("action", "student_obs", "privileged_obs"):
        a = getattr(data, field)
        if a is None:
            continue
        bad = ~np.isfinite(a).all(axis=1)
        if bad.any():
            s = int(np.argmax(bad))
            e = int(np.searchsorted(data.ends, s, side="right"))
            start = 0 if e == 0 else int(data.ends[e - 1])
            raise UserError(
                f"{path}: {data.keys[field]} has NaN/inf at step {s - start} of episode "
                f"{data.episode_ids[e]} (row {s}); remove or repair that episode before importing"
            )


def spec_for(data: Foreign, task: str | None, where: str) -> StoreSpec:
    """The store's spec: untied (`<key>[i]` names, the observed action range) or bound to `task`."""
    ds, da = data.student_obs.shape[1], data.action.shape[1]
    dp = 0 if data.privileged_obs is None else data.privileged_obs.shape[1]
    if task is not None:
        return binding.bind(task, ds, dp, da, where)
    k = data.keys
    return StoreSpec(
        task=None,
        student_names=tuple(f"{k['student_obs']}[{i}]" for i in range(ds)),
        privileged_dim=dp,
        action_names=tuple(f"{k['action']}[{i}]" for i in range(da)),
        action_low=tuple(float(x) for x in data.action.min(axis=0)),
        action_high=tuple(float(x) for x in data.action.max(axis=0)),
    )


def episodes(data: Foreign) -> list[Episode]:
    starts = np.concatenate([[0], data.ends[:-1]])
    n = int(data.ends[-1])
    reward = data.reward if data.reward is not None else np.full(n, np.nan, np.float32)
    priv = data.privileged_obs if data.privileged_obs is not None else np.zeros((n, 0), np.float32)
    out = []
    for e, (a, b) in enumerate(zip(starts, data.ends, strict=True)):
        act = data.action[a:b].astype(np.float32)
        out.append(
            Episode(
                student_obs=data.student_obs[a:b].astype(np.float32),
                privileged_obs=priv[a:b].astype(np.float32),
                action=act,
                expert_action=np.full_like(act, np.nan),
                reward=reward[a:b].astype(np.float32),
                terminated=bool(data.terminated[e]),
            )
        )
    return out


def import_dataset(
    source: str | Path, fmt: str, out: str | Path, keys: ImportKeys | None = None, task: str | None = None
) -> DemoStore:
    """Read `source` in `fmt`, check it, write it to a new store at `out`; returns the (closed) store."""
    source, out, keys = Path(source).expanduser(), Path(out).expanduser(), keys or ImportKeys()
    if exists(out):
        raise UserError(f"out={out} already exists; remove it or choose another path")
    data = read(fmt, source, keys)
    check_ends(data.ends, str(source))
    check_finite(data, source)
    eps = episodes(data)
    entry = {
        "kind": "import",
        "format": fmt,
        "path": str(source.resolve()),
        "sha256": sha256_tree(source),
        "keys": data.keys,
        "episode_ids": data.episode_ids,
    }
    spec = spec_for(data, task, f"source={source} ({fmt})")
    note = binding.bounds_note(data.action, spec) if task is not None else None
    if note:
        print(f"import: warning: {note}")
    with DemoStore.create(out, spec) as store:
        sid = store.add_source(entry)
        batch: list[Episode] = []
        for ep in tqdm(eps, desc="import", unit="ep", disable=len(eps) < 100):
            batch.append(ep)
            if sum(e.length for e in batch) >= BATCH_STEPS:
                store.append_episodes(batch, sid)
                batch = []
        store.append_episodes(batch, sid)
    return store


def run(cfg: Config) -> None:
    c = cfg.importer
    if not c.source or not c.format or not c.out:
        raise UserError(
            "usage: sim2real import source=PATH format=" + "|".join(FORMATS) + " out=PATH.zarr "
            "keys.student_obs=KEY keys.action=KEY [keys.privileged_obs=KEY keys.reward=KEY task=NAME]"
        )
    task = cfg.task.name if cfg.task_explicit else None  # the default task says nothing about the data
    store = import_dataset(c.source, c.format, c.out, c.keys, task)
    bound = f", bound to task {task} (its observation/action names, bounds, control dt)" if task else ""
    print(
        f"import: {c.source} ({c.format}) -> {store.path}: "
        f"{store.num_episodes} episodes, {store.num_steps} steps{bound}"
    )
