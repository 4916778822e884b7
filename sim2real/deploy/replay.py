"""`sim2real deploy replay log=PATH.zarr [export=DIR | run_dir=R] [tolerance=1e-4] [out=PATH.json]`.

Runs an exported policy open-loop over a recorded deployment log: the logged observations go in
(each episode from a fresh history), and its outputs are compared with the policy outputs the log
recorded. Same artifact, same observations → the same actions (≈0 difference); a policy, a
normalizer or an observation mapping that drifted since the log was made shows up as a large one,
so the exit status can gate a release (0: within tolerance, 1: over it, 2: bad input).

Like for like: a deployment log records the raw policy output (`data/policy_action`, before the
action filter, soft start, clipping and rate limit), and that is what is compared. A store without
it (a demo store) is compared with its executed `action` (`against=action`), where the safety
layer's changes also count as differences. Steps on which the controller did not run the policy
(waiting for sensors, stale sensors, a latched fault, a NaN reading, e-stop) are skipped, and the
policy's history is cleared where the controller cleared it (stale sensors, a non-finite output).

numpy + onnxruntime (+ zarr to read the log; tqdm for a progress bar when installed): it runs on a
robot's computer like the rest of `sim2real.deploy`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.artifacts import RunLayout
from sim2real.data.schema import joined_ends
from sim2real.deploy import safety
from sim2real.deploy.policy import Policy, load_policy
from sim2real.errors import UserError

# the controller did not step the policy on a step with one of these events
NOT_RUN = safety.ESTOP | safety.FAULT_HOLD | safety.STALE | safety.WAITING | safety.NONFINITE_OBS
# ... and cleared its history after one of these
RESETS = safety.STALE | safety.NONFINITE_ACTION
AGAINST = ("auto", "policy_action", "action", "expert_action")


@dataclass
class ReplayConfig:
    log: Path
    export: Path | None = None  # default: <run_dir>/export
    run_dir: Path | None = None  # default: the log's run dir (<run_dir>/deploy/<timestamp>.zarr)
    tolerance: float = 1e-4  # largest |Δ| per action entry that still passes
    against: str = "auto"  # auto: policy_action when the log has it, else action
    out: Path | None = None  # default: <log>.replay.json beside the log


@dataclass
class LoggedSteps:
    """The committed steps of a log, as replay needs them."""

    obs: np.ndarray  # (N, Ds) observations as fed to the policy
    target: np.ndarray  # (N, Da) the recorded actions to compare with
    ran: np.ndarray  # (N,) bool: the controller stepped the policy (and the log has a target there)
    reset_after: np.ndarray  # (N,) bool: the controller cleared the policy's history after the step
    ends: np.ndarray  # (E,) cumulative episode ends
    against: str
    attrs: dict[str, Any] = field(default_factory=dict)


def read_log(path: Path, against: str = "auto") -> LoggedSteps:
    """The committed episodes of a deployment log (or any demo store) at `path`."""
    try:
        import zarr
    except ImportError as e:  # pragma: no cover - the dev install has zarr
        raise ImportError("replay reads the log with zarr (pip install zarr)") from e
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"no deployment log at {path} (no zarr.json)")
    try:
        root = zarr.open_group(str(path), mode="r")
        names = set(root["data"].array_keys()) if "data" in root else set()
    except ValueError as e:  # a garbled zarr.json: name it
        bad = next((f for f in sorted(path.rglob("zarr.json")) if not _parses(f)), path / "zarr.json")
        raise UserError(f"{bad}: not valid JSON ({e}); the log's metadata is damaged") from e
    if against not in AGAINST:
        raise UserError(f"replay.against={against!r} is not one of {AGAINST}")
    if against == "auto":
        against = "policy_action" if "policy_action" in names else "action"
    for need in ("student_obs", against):
        if need not in names:
            raise UserError(f"{path}: no data/{need} array (has {sorted(names)})")
    ends = np.asarray(root["meta/episode_ends"][:], np.int64)
    n = int(ends[-1]) if len(ends) else 0
    events = np.asarray(root["data/events"][:n]) if "events" in names else np.zeros(n, np.int32)
    target = np.asarray(root[f"data/{against}"][:n], np.float32)
    ran = (events & NOT_RUN) == 0
    if against != "policy_action":  # NaN there means "not recorded" (e.g. no expert label), not a NaN output
        ran &= np.isfinite(target).all(axis=1)
    return LoggedSteps(
        obs=np.asarray(root["data/student_obs"][:n], np.float32),
        target=target,
        ran=ran,
        reset_after=(events & RESETS) != 0,
        ends=joined_ends(root, ends),
        against=against,
        attrs=dict(root.attrs),
    )


def _parses(f: Path) -> bool:
    try:
        json.loads(f.read_bytes())
    except ValueError:
        return False
    return True


def logged_sha(attrs: dict[str, Any]) -> str | None:
    """The sha256 of the artifact that made the log (its deploy source), if it names one."""
    for s in attrs.get("sources", []):
        if s.get("kind") == "deploy" and s.get("policy_sha256"):
            return str(s["policy_sha256"])
    return None


def find_export(cfg: ReplayConfig) -> Path:
    """`export=DIR`, else `<run_dir>/export`, else the export of the run the log lies in."""
    if cfg.export is not None:
        return cfg.export
    if cfg.run_dir is not None:
        return RunLayout(cfg.run_dir).export
    layout = RunLayout(cfg.log.resolve().parent.parent)  # the log is <run_dir>/deploy/<timestamp>.zarr
    if cfg.log.resolve().parent == layout.deploy and layout.export.is_dir():
        return layout.export
    raise UserError(
        f"{cfg.log} does not lie in <run_dir>/deploy/: name the policy with export=DIR or run_dir=R"
    )


def check_layout(policy: Policy, attrs: dict[str, Any], where: Path) -> None:
    """The log's observation and action names must be the policy's, in order (a drifted mapping)."""
    spec = policy.spec
    for key, mine in (("student_obs", spec.obs_names), ("action", spec.action_names)):
        logged = tuple((attrs.get(key) or {}).get("names") or ())
        if logged == tuple(mine):
            continue
        i = next((i for i, (a, b) in enumerate(zip(logged, mine, strict=False)) if a != b), None)
        i = min(len(logged), len(mine)) if i is None else i
        got = logged[i] if i < len(logged) else "<none>"
        want = mine[i] if i < len(mine) else "<none>"
        raise UserError(
            f"{where}: {key} entry {i} of the log is {got!r}, the policy expects {want!r} "
            f"(log has {len(logged)} names, policy {len(mine)}): the observation/action mapping differs"
        )


def run_policy(policy: Policy, steps: LoggedSteps) -> np.ndarray:
    """(N, Da) the policy's outputs on the logged observations; NaN where the controller did not run it."""
    out = np.full(steps.target.shape, np.nan, np.float32)
    starts = set(np.concatenate([[0], steps.ends[:-1]]).tolist())
    for t in _progress(range(len(steps.obs)), "replay"):
        if t in starts:
            policy.reset()
        if steps.ran[t]:
            out[t] = policy.act(steps.obs[t])
        if steps.reset_after[t]:
            policy.reset()
    return out


def compare(replayed: np.ndarray, steps: LoggedSteps, tolerance: float, names) -> dict[str, Any]:
    """|Δ| statistics between replayed and recorded actions over the steps the policy ran."""
    ran = steps.ran
    fin_rec, fin_rep = np.isfinite(steps.target).all(axis=1), np.isfinite(replayed).all(axis=1)
    both = ran & fin_rec & fin_rep  # (N,) compared steps
    odd = ran & (fin_rec != fin_rep)  # (N,) one side non-finite: a difference no number measures
    d = np.zeros(steps.target.shape, np.float64)  # (N, Da) |Δ|, 0 where not compared
    d[both] = np.abs(replayed[both].astype(np.float64) - steps.target[both])
    per_step = d.max(axis=1, initial=0.0)  # (N,)
    bad = (per_step > tolerance) | odd  # (N,)
    episode = np.searchsorted(steps.ends, np.arange(len(ran)), side="right")  # (N,) episode of each step
    first = int(np.argmax(bad)) if bad.any() else None
    return {
        "against": steps.against,
        "tolerance": tolerance,
        "steps": len(ran),
        "episodes": len(steps.ends),
        "compared": int(both.sum()),
        "skipped": int((~ran).sum()),
        "nonfinite_mismatch": int(odd.sum()),
        **_stats(d[both], per_step[both], names),
        "per_episode_max": [float(per_step[episode == e].max(initial=0.0)) for e in range(len(steps.ends))],
        "steps_over_tolerance": int(bad.sum()),
        "first_over": None if first is None else _step_record(first, episode, steps, replayed),
    }


def _stats(d: np.ndarray, per_step: np.ndarray, names) -> dict[str, Any]:
    """max / mean / p99 of |Δ| (d: (M, Da), per_step: (M,) the largest entry of each step)."""
    if not len(d):
        zero = {"max": 0.0, "mean": 0.0}
        return {
            "max_abs_diff": 0.0,
            "mean_abs_diff": 0.0,
            "p99_abs_diff": 0.0,
            "per_action": dict.fromkeys(names, zero),
        }
    return {
        "max_abs_diff": float(per_step.max()),
        "mean_abs_diff": float(d.mean()),
        "p99_abs_diff": float(np.percentile(per_step, 99)),
        "per_action": {
            n: {"max": float(d[:, k].max()), "mean": float(d[:, k].mean())} for k, n in enumerate(names)
        },
    }


def _step_record(t: int, episode: np.ndarray, steps: LoggedSteps, replayed: np.ndarray) -> dict[str, Any]:
    e = int(episode[t])
    start = int(steps.ends[e - 1]) if e else 0
    return {
        "step": t,
        "episode": e,
        "episode_step": t - start,
        "replayed": _jsonable(replayed[t]),
        "logged": _jsonable(steps.target[t]),
    }


def _jsonable(a: np.ndarray) -> list[float | None]:
    return [float(x) if np.isfinite(x) else None for x in a]


def _progress(it, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # the lean deploy image has no tqdm
        return it
    return tqdm(it, desc=desc, unit="step", leave=False, disable=None, mininterval=0.5)


def replay(cfg: ReplayConfig) -> dict[str, Any]:
    """Replay `cfg.log` through the export; the report (also written as JSON, see `ReplayConfig.out`)."""
    if not cfg.tolerance >= 0:
        raise UserError(f"replay.tolerance must be >= 0, got {cfg.tolerance}")
    steps = read_log(cfg.log, cfg.against)
    export = find_export(cfg)
    policy = load_policy(export)
    check_layout(policy, steps.attrs, cfg.log)
    replayed = run_policy(policy, steps)
    report = compare(replayed, steps, cfg.tolerance, policy.spec.action_names)
    made_by, sha = logged_sha(steps.attrs), policy.spec.artifact_sha256
    report.update(
        log=str(cfg.log),
        export=str(export),
        artifact_sha256=sha,
        logged_artifact_sha256=made_by,
        same_artifact=None if made_by is None else made_by == sha,
        action_filter=(steps.attrs.get("deploy") or {}).get("action_filter"),
        passed=report["compared"] > 0 and report["steps_over_tolerance"] == 0,
    )
    out = cfg.out or cfg.log.with_name(cfg.log.name.removesuffix(".zarr") + ".replay.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    report["report_path"] = str(out)
    return report


def format_report(r: dict[str, Any]) -> str:
    """The report as a short table for a terminal."""
    sha, made_by = r["artifact_sha256"][:12], (r["logged_artifact_sha256"] or "")[:12]
    origin = {
        True: "the artifact that made the log",
        False: f"NOT the artifact that made the log ({made_by}…)",
        None: "the log names no artifact",
    }[r["same_artifact"]]
    what = "raw policy output" if r["against"] == "policy_action" else f"logged {r['against']}"
    lines = [
        f"replay: {r['log']}: {r['episodes']} episodes, {r['steps']} steps",
        f"policy: {r['export']} (sha256 {sha}…): {origin}",
        f"compared {r['compared']} steps with the {what}; "
        f"skipped {r['skipped']} (policy not run or nothing logged)",
        f"  {'action':<24} {'max |Δ|':>11} {'mean |Δ|':>11}",
    ]
    for name, s in r["per_action"].items():
        lines.append(f"  {name:<24} {s['max']:>11.3g} {s['mean']:>11.3g}")
    lines.append(
        f"  {'all':<24} {r['max_abs_diff']:>11.3g} {r['mean_abs_diff']:>11.3g}   p99 {r['p99_abs_diff']:.3g}"
    )
    first = r["first_over"]
    if first is not None:
        lines.append(
            f"first step over tolerance: {first['step']} (episode {first['episode']}, step "
            f"{first['episode_step']}): replayed {first['replayed']}, logged {first['logged']}"
        )
    if r["nonfinite_mismatch"]:
        lines.append(f"steps where one side is non-finite: {r['nonfinite_mismatch']}")
    verdict = "ok" if r["passed"] else "DIFFERS"
    lines.append(
        f"replay: {verdict}: max |Δ| {r['max_abs_diff']:.3g} (tolerance {r['tolerance']:g}), "
        f"{r['steps_over_tolerance']} steps over; report {r.get('report_path')}"
    )
    return "\n".join(lines)


USAGE = """usage: sim2real deploy replay log=PATH.zarr [export=DIR | run_dir=R] [tolerance=1e-4]
                             [against=auto|policy_action|action|expert_action] [out=PATH.json]
(also `python -m sim2real.deploy replay ...`; keys may be written replay.<key>=VALUE)

Runs the exported policy open-loop over a deployment log and reports the per-step |Δ| from the
policy outputs the log recorded. Exit status: 0 within tolerance, 1 over it, 2 bad input."""


def parse(argv: list[str]) -> ReplayConfig:
    """`key=value` arguments (optionally `replay.key=value`, as the issue's Hydra-style spelling)."""
    kw: dict[str, Any] = {}
    paths = ("log", "export", "run_dir", "out")
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.removeprefix("replay.")
        if not sep or key not in (*paths, "tolerance", "against"):
            raise UserError(
                f"bad argument {arg!r}: expected one of log= export= run_dir= tolerance= against= out="
            )
        if key == "tolerance":
            try:
                kw[key] = float(value)
            except ValueError as e:
                raise UserError(f"replay.tolerance={value!r} is not a number") from e
        else:
            kw[key] = Path(value) if key in paths else value
    if "log" not in kw:
        raise UserError("name the deployment log: log=PATH.zarr")
    return ReplayConfig(**kw)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        print(USAGE)
        return 0
    try:
        report = replay(parse(argv))
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f"sim2real deploy replay: error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
