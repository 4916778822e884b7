"""`sim2real sweep-summary DIR`: one table and one figure over the runs of a sweep.

A run is any directory under DIR holding `validation/report.json` (a `sim2real pipeline -m` job, or
runs made one by one). Runs are grouped by what differs between them apart from the seed: the
overrides Hydra recorded in `<run>/.hydra/overrides.yaml`, or, for runs without them, the keys of the
resolved configs (`validation/manifest.json`) that differ. A group's seeds are aggregated as
mean ± sample std, so a setting is judged by its spread over seeds, not by one lucky run.
Writes DIR/sweep_summary.{md,csv,json,png} and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sim2real.artifacts import RunLayout, read_manifest
from sim2real.errors import UserError

OUTPUT = "sweep_summary"
# overrides that never define a group: the seed is what a group aggregates over, the rest is bookkeeping
IGNORED_KEYS = ("seed", "run_dir", "stage")
SKIPPED_DIRS = {".stale", ".hydra", ".submitit"}


@dataclass(frozen=True)
class RunResult:
    """One run's headline numbers in one validation scenario (NaN score: no teacher/demo reference)."""

    run: str  # relative to the sweep dir
    group: str
    seed: int | None
    student_mean: float
    ci95_low: float
    ci95_high: float
    score: float  # normalized: 1 = teacher, 0 = random
    failure_rate: float
    gate_passed: bool


@dataclass(frozen=True)
class GroupSummary:
    group: str
    runs: int
    seeds: list[int | None]
    student_mean: float
    student_std: float  # sample std over the group's runs (NaN with one run)
    score_mean: float
    score_std: float
    failure_mean: float
    failure_std: float
    gates_passed: int


def find_runs(root: Path) -> list[Path]:
    """Run dirs under `root` with a validation report, in natural order (job 2 before job 10)."""
    runs = []
    for dirpath, dirnames, _ in os.walk(root):
        if RunLayout(dirpath).report.is_file():
            runs.append(Path(dirpath))
        # stores hold thousands of chunk files and no runs
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS and not d.endswith(".zarr")]
    return sorted(runs, key=_natural_key)


def _natural_key(path: Path) -> tuple:
    return tuple((0, int(s), "") if s.isdigit() else (1, 0, s) for s in re.split(r"(\d+)", str(path)) if s)


def collect(root: str | Path, scenario: str = "train") -> list[RunResult]:
    """Every run's result under `root`, labelled with its group."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory")
    runs = find_runs(root)
    if not runs:
        raise UserError(
            f"no runs with validation/report.json under {root} "
            "(did the sweep's jobs reach the validate stage?)"
        )
    labels = group_labels(runs)
    return [_result(root, run, label, scenario) for run, label in zip(runs, labels, strict=True)]


def _result(root: Path, run: Path, group: str, scenario: str) -> RunResult:
    path = RunLayout(run).report
    try:
        report = json.loads(path.read_text())
        metrics = report["metrics"]
        if scenario not in metrics or "student" not in metrics[scenario]:
            raise UserError(
                f"{path} has no student metrics for scenario {scenario!r} (it has: {', '.join(metrics)})"
            )
        s = metrics[scenario]["student"]
        return RunResult(
            run=str(run.relative_to(root)) if run != root else ".",
            group=group,
            seed=_seed(run),
            student_mean=float(s["mean"]),
            ci95_low=float(s["ci95"][0]),
            ci95_high=float(s["ci95"][1]),
            score=float(metrics[scenario].get("ratio", {}).get("mean", math.nan)),
            failure_rate=float(s["failure_rate"]),
            gate_passed=bool(report["gate"]["passed"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError, IndexError) as e:
        raise UserError(f"{path} is not a validation report (missing or bad {e})") from None


def _seed(run: Path) -> int | None:
    seed = (read_manifest(RunLayout(run).validation) or {}).get("seed")
    if seed is not None:
        return int(seed)
    for o in _overrides(run) or []:
        key, _, value = o.partition("=")
        if key.lstrip("+") == "seed" and value.lstrip("-").isdigit():
            return int(value)
    return None


def _overrides(run: Path) -> list[str] | None:
    path = RunLayout(run).hydra_overrides
    if not path.exists():
        return None
    import yaml

    return [str(o) for o in yaml.safe_load(path.read_text()) or []]


def group_labels(runs: list[Path]) -> list[str]:
    """Each run's group: its settings that are not the same in every run (seed and paths left out)."""
    overrides = [_overrides(r) for r in runs]
    if all(o is not None for o in overrides):
        settings = [dict(_split(o) for o in ovs if _split(o)[0] not in IGNORED_KEYS) for ovs in overrides]
        settings = [{k: v for k, v in s.items() if not k.startswith(("hydra.", "hydra/"))} for s in settings]
        missing = "(default)"  # not overridden in that run
    else:
        settings = [_flat_config(r) for r in runs]
        missing = "(absent)"  # a key the run's code version did not have
    keys = sorted({k for s in settings for k in s})
    varying = [k for k in keys if len({s.get(k) for s in settings}) > 1]
    return [" ".join(f"{k}={s.get(k, missing)}" for k in varying) or "all runs" for s in settings]


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def _flat_config(run: Path) -> dict[str, str]:
    config = (read_manifest(RunLayout(run).validation) or {}).get("config", {})
    flat: dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        elif prefix.rstrip(".") not in IGNORED_KEYS:
            flat[prefix.rstrip(".")] = json.dumps(node)

    walk(config, "")
    return flat


def aggregate(results: list[RunResult]) -> list[GroupSummary]:
    """Mean ± sample std over each group's runs, groups in order of first appearance."""
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.group, []).append(r)
    out = []
    for name, rs in groups.items():
        ret, score, fail = (np.array([getattr(r, f) for r in rs], dtype=np.float64) for f in _FIELDS)
        out.append(
            GroupSummary(
                group=name,
                runs=len(rs),
                seeds=[r.seed for r in rs],
                student_mean=_mean(ret),
                student_std=_std(ret),
                score_mean=_mean(score),
                score_std=_std(score),
                failure_mean=_mean(fail),
                failure_std=_std(fail),
                gates_passed=sum(r.gate_passed for r in rs),
            )
        )
    return out


_FIELDS = ("student_mean", "score", "failure_rate")


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan


def _std(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1)) if len(x) > 1 else math.nan


def write_outputs(root: Path, results: list[RunResult], groups: list[GroupSummary], scenario: str) -> dict:
    """sweep_summary.json/.csv/.md and the figure in `root`; returns their paths."""
    from sim2real.artifacts import write_json_atomic
    from sim2real.sweep.report import figure, markdown, table_rows

    paths = {ext: root / f"{OUTPUT}.{ext}" for ext in ("json", "csv", "md", "png")}
    data = {
        "root": str(root),
        "scenario": scenario,
        "runs": [asdict(r) for r in results],
        "groups": [asdict(g) for g in groups],
    }
    write_json_atomic(paths["json"], _json_safe(data))
    with paths["csv"].open("w", newline="") as f:
        rows = table_rows(results, groups)
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figure(groups, results, paths["png"])
    paths["md"].write_text(markdown(root, scenario, results, groups, paths["png"].name))
    return paths


def _json_safe(x):
    """NaN is not JSON: null instead."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def summarize(root: str | Path, scenario: str = "train") -> tuple[list[RunResult], list[GroupSummary], dict]:
    """Collect, aggregate and write: the library entry point of `sim2real sweep-summary`."""
    results = collect(root, scenario)
    groups = aggregate(results)
    return results, groups, write_outputs(Path(root), results, groups, scenario)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="sim2real sweep-summary",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: sim2real pipeline -m seed=0,1,2 run_dir=runs/sweeps/s1 && "
        "sim2real sweep-summary runs/sweeps/s1   (docs/sweeps.md)",
    )
    parser.add_argument("dir", metavar="DIR", help="sweep dir (Hydra's hydra.sweep.dir) or any dir of runs")
    parser.add_argument(
        "--scenario",
        default="train",
        help="validation scenario whose numbers are tabulated (default: train, the training randomization)",
    )
    args = parser.parse_args(argv)
    try:
        results, groups, paths = summarize(args.dir, args.scenario)
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f"sim2real sweep-summary: error: {e}", file=sys.stderr)
        return 2
    from sim2real.sweep.report import plural, print_table

    print_table(
        results,
        groups,
        title=f"{args.dir}: {plural(len(results), 'run')}, {plural(len(groups), 'group')} ({args.scenario})",
    )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
