"""`sim2real data info PATH` (summary, after checking the whole store) and `sim2real data merge OUT SHARD...`.

Merging is how several collectors fill one dataset: each writes its own shard (one writer per store,
enforced by the lock), then `merge` copies every shard's episodes and source entries into a new store.
`sim2real data to-mcap PATH OUT.mcap` writes a store or deployment log as ROS 2 MCAP (`mcap_export`).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sim2real.data import mcap_export
from sim2real.data.schema import episodes_of
from sim2real.data.store import DemoStore
from sim2real.errors import UserError


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.4g}"


def summary(store: DemoStore) -> str:
    """Human-readable summary: size, returns, specs, sources, dynamics ranges."""
    a, spec = store.load_arrays(), store.spec
    ends, ret = store.episodes_as_run()  # (E,) each: a deployment log's segments joined
    lengths = np.diff(np.concatenate([[0], ends]))
    attrs = store.attrs
    segments = "" if len(ends) == store.num_episodes else f" ({store.num_episodes} stored segments)"
    lines = [
        f"store: {store.path}  (schema {attrs['schema']} v{attrs['schema_version']}, task {spec.task}, "
        f"created {attrs.get('created')})",
        f"episodes: {len(ends)}{segments}  steps: {store.num_steps}"
        + (
            f"  length min/mean/max: {lengths.min()}/{lengths.mean():.1f}/{lengths.max()}"
            if len(ends)
            else ""
        ),
    ]
    if len(ends):
        known = ret[np.isfinite(ret)]
        stats = (
            f"mean {_fmt(known.mean())}  min {_fmt(known.min())}  max {_fmt(known.max())}"
            if len(known)
            else "n/a"
        )
        lines.append(
            f"return: {stats}"
            + ("" if len(known) == len(ret) else f"  ({len(ret) - len(known)} without rewards)")
        )
        labelled = int((~np.isnan(a["expert_action"]).any(axis=1)).sum())
        lines.append(f"expert-labelled steps: {labelled} ({100 * labelled / max(1, store.num_steps):.0f}%)")
    lines.append(f"student_obs ({spec.student_dim}): {', '.join(spec.student_names)}")
    lines.append(f"privileged_obs: {spec.privileged_dim} dims")
    bounds = ", ".join(
        f"{n} [{lo:.3g}, {hi:.3g}]"
        for n, lo, hi in zip(spec.action_names, spec.action_low, spec.action_high, strict=True)
    )
    lines.append(f"action ({spec.action_dim}): {bounds}")
    lines.append("sources:")
    counts = np.bincount(a["episode_source"], minlength=len(store.sources))
    lines += _source_lines(store.sources, counts)
    dyn = a["episode_dynamics"]
    lines.append("dynamics (min .. max over episodes):")
    for k, name in enumerate(spec.dynamics_names):
        col = dyn[:, k][np.isfinite(dyn[:, k])] if len(dyn) else np.zeros(0)
        lines.append(f"  {name:<20} " + (f"{col.min():.4g} .. {col.max():.4g}" if len(col) else "unknown"))
    return "\n".join(lines)


def _source_lines(sources: list[Mapping], counts: np.ndarray) -> list[str]:
    """One line per source; a training run's many commits (`teacher.record_episodes`) in one line."""
    training = [s for s in sources if s.get("kind") == "training"]
    others = [s for s in sources if s.get("kind") != "training"]
    lines = [f"  [{s['id']}] {counts[s['id']]:>6} episodes  {_describe(s)}" for s in others]
    if training:
        ids, first, last = [s["id"] for s in training], training[0], training[-1]
        lines.append(
            f"  [{ids[0]}..{ids[-1]}] {int(counts[ids].sum()):>6} episodes  training {first.get('algo')}: "
            f"{len(ids)} commits, steps {first.get('from_step')}..{last.get('step')}"
        )
    return lines


def _describe(s: Mapping) -> str:
    if s.get("kind") == "import":
        return f"import {s.get('format')} from {s.get('path')}"
    extra = {
        k: s[k]
        for k in ("round", "action_noise", "keep_top_fraction", "merged_from")
        if s.get(k) not in (None, 0.0, 1.0)
    }
    return f"{s.get('kind')} {s.get('expert', '')}" + (f"  {extra}" if extra else "")


def merge(out: str | Path, shards: list[str | Path]) -> DemoStore:
    """A new store at `out` with every episode of `shards` (same spec), source entries carried over."""
    opened = [DemoStore.open(p) for p in shards]
    if not opened:
        raise UserError("data merge: name at least one shard")
    spec = opened[0].spec
    for s in opened[1:]:
        problem = spec.mismatch(s.spec)
        if problem:
            raise UserError(f"data merge: {s.path} does not match {opened[0].path}: {problem}")
    with DemoStore.create(out, spec) as dst:
        for shard in opened:
            arrays = shard.load_arrays()
            ids = {
                s["id"]: dst.add_source(
                    {
                        **{k: v for k, v in s.items() if k != "id"},
                        "merged_from": str(shard.path),
                        "shard_source": s["id"],
                    }
                )
                for s in shard.sources
            }
            eps = episodes_of(arrays)
            runs = itertools.groupby(zip(arrays["episode_source"], eps, strict=True), key=lambda x: int(x[0]))
            for sid, run in runs:  # consecutive episodes of one source: store order is kept
                dst.append_episodes([ep for _, ep in run], ids[sid])
    return dst


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sim2real data", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    info = sub.add_parser(
        "info", help="summary of a demo store (episodes, steps, returns, sources, dynamics)"
    )
    info.add_argument("path")
    mrg = sub.add_parser("merge", help="merge shards (stores of the same task) into a new store OUT")
    mrg.add_argument("out")
    mrg.add_argument("shards", nargs="+")
    add_to_mcap_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "info":
            print(summary(DemoStore.open(args.path)))
        elif args.cmd == "to-mcap":
            print(to_mcap_main(args))
        else:
            dst = merge(args.out, args.shards)
            print(
                f"data merge: {len(args.shards)} shards -> {dst.path}: "
                f"{dst.num_episodes} episodes, {dst.num_steps} steps"
            )
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f"sim2real data {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    return 0


def add_to_mcap_parser(sub) -> None:
    """The `to-mcap` subcommand of `sim2real data`."""
    p = sub.add_parser(
        "to-mcap",
        help="write a demo store or deployment log as a ROS 2 MCAP file (Foxglove, ros2 bag)",
        description=mcap_export.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="a demo store or deployment log (PATH.zarr)")
    p.add_argument("out", help="the MCAP file to write (OUT.mcap; replaced if it exists)")
    p.add_argument("--episodes", type=int, nargs="+", default=None, help="episode indices (default: all)")
    p.add_argument(
        "--dt", type=float, default=None, help="seconds per step (default: the store's control_dt)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def to_mcap_main(args) -> str:
    r = mcap_export.to_mcap(args.path, args.out, args.episodes, args.dt, progress=not args.quiet)
    topics = ", ".join(f"{t} {c}" for t, c in r["topics"].items())
    return (
        f"data to-mcap: {args.path} -> {r['out']}: {r['episodes']} episodes, {r['steps']} steps, "
        f"{r['messages']} messages ({topics}), {r['bytes'] / 1e6:.1f} MB in {r['seconds']:.1f} s"
    )
