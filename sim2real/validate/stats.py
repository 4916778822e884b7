"""Per-scenario statistics of episode returns, and the gate that decides deployment.

Scores are normalized per scenario as (R - random mean) / (teacher mean - random mean): 1 is the
teacher, 0 is acting at random, whatever the sign or scale of the task's reward.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict

import numpy as np

from sim2real.validate.config import GateConfig


def bootstrap_ci(x: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    if len(x) < 2:
        return float(np.mean(x)), float(np.mean(x))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def iqm(x: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50%, robust to a few outliers."""
    x = np.sort(x)
    k = len(x) // 4
    return float(x[k : len(x) - k].mean()) if len(x) >= 4 else float(x.mean())


def summarize(results: list[dict]) -> dict:
    returns = np.array([r["return"] for r in results], dtype=np.float64)
    lo, hi = bootstrap_ci(returns)
    return {
        **_task_metrics(results),
        "episodes": len(results),
        "mean": float(returns.mean()),
        "ci95": [lo, hi],
        "iqm": iqm(returns),
        "p10": float(np.percentile(returns, 10)),
        "failure_rate": float(np.mean([r["failed"] for r in results])),
        "jerk": float(np.mean([r["jerk"] for r in results])),
        **_fall_causes(results),
    }


def _fall_causes(results: list[dict]) -> dict:
    """How many episodes ended in each named fall condition, when the task names them."""
    causes = Counter(c for r in results for c in r.get("fall_causes", []))
    return {"fall_causes": dict(causes.most_common())} if causes else {}


def _task_metrics(results: list[dict]) -> dict:
    """Means of the task's own per-episode figures (`envs.spec.TaskSpec.metrics`), when it has any."""
    names = sorted({k for r in results for k in r.get("metrics", {})})
    if not names:
        return {}
    with warnings.catch_warnings():  # a figure no episode has (NaN in all) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = {k: float(np.nanmean([r["metrics"].get(k, np.nan) for r in results])) for k in names}
    return {"task_metrics": means}


def group(results: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """scenario -> policy -> episodes (sweeps are further split by value in `sweep_curves`)."""
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        out[r["scenario"]][r["policy"]].append(r)
    return out


def scenario_metrics(results: list[dict]) -> dict[str, dict]:
    """Summary per scenario and policy, plus normalized student scores against the teacher."""
    metrics: dict[str, dict] = {}
    for scenario, by_policy in group(results).items():
        m = {policy: summarize(eps) for policy, eps in by_policy.items()}
        if {"student", "teacher", "random"} <= m.keys():
            m["ratio"] = normalized_ratios(m["student"], m["teacher"], m["random"])
        metrics[scenario] = m
    return metrics


def normalized_ratios(student: dict, teacher: dict, random: dict) -> dict[str, float]:
    return {
        "mean": normalized(student["mean"], teacher["mean"], random["mean"]),
        "p10": normalized(student["p10"], teacher["p10"], random["mean"]),
    }


def normalized(value: float, reference: float, random: float) -> float:
    """(value - random) / (reference - random): 1 is the reference, 0 acting at random."""
    span = reference - random
    return (value - random) / (span if abs(span) > 1e-9 else 1e-9)


def sweep_curves(results: list[dict]) -> dict[str, dict[str, list[list[float]]]]:
    """param -> policy -> [[value, mean, ci_lo, ci_hi, failure_rate], ...] sorted by value."""
    curves: dict[str, dict[str, list[list[float]]]] = defaultdict(dict)
    cells: dict[tuple[str, str, float], list[dict]] = defaultdict(list)
    for r in results:
        if r["scenario"].startswith("sweep/"):
            cells[(r["scenario"][6:], r["policy"], r["value"])].append(r)
    for (param, policy, value), eps in sorted(cells.items()):
        s = summarize(eps)
        curves[param].setdefault(policy, []).append([value, s["mean"], *s["ci95"], s["failure_rate"]])
    return dict(curves)


def gate_reach(curves: dict, ranges: dict[str, tuple[float, float]], min_ratio: float) -> dict[str, dict]:
    """How far past each training range the student keeps `min_ratio` of the teacher's score, one
    parameter swept at a time: param -> {"below", "above": the farthest swept value reached from the
    range through grid points that all hold (None: the first one past the range fails, or none was
    swept), "below_widths", "above_widths": that distance in training-range widths, "inside": every
    grid point in the range holds}. Score = (student − random) / (teacher − random) of the means."""
    out = {}
    for param, by_policy in curves.items():
        if param not in ranges or not {"student", "teacher", "random"} <= set(by_policy):
            continue
        lo, hi = ranges[param]
        means = {p: {v[0]: v[1] for v in pts} for p, pts in by_policy.items()}
        holds = {}
        for v, s in means["student"].items():
            t, r = means["teacher"].get(v), means["random"].get(v)
            gap = None if t is None or r is None else t - r
            holds[v] = bool(gap and (s - r) / gap >= min_ratio) or (gap is not None and abs(gap) < 1e-9)
        width = hi - lo
        entry: dict[str, float | bool | None] = {
            "inside": all(ok for v, ok in holds.items() if lo <= v <= hi)
        }
        for side, outward in (("below", sorted((v for v in holds if v < lo), reverse=True)),
                              ("above", sorted(v for v in holds if v > hi))):  # fmt: skip
            reached = None
            for v in outward:
                if not holds[v]:
                    break
                reached = v
            entry[side] = reached
            past = None if reached is None else abs(reached - (lo if side == "below" else hi))
            entry[f"{side}_widths"] = None if past is None or width <= 0 else past / width
        out[param] = entry
    return out


def published_scores(metrics: dict[str, dict], label: str, mean_return: float) -> dict | None:
    """Student and teacher on nominal dynamics against a published agent's return on the unrandomized env,
    normalized like the gate's scores ((R - random) / (published - random), random on the same episodes);
    None without a nominal scenario with a random reference."""
    nominal = metrics.get("nominal", {})
    if "student" not in nominal or "random" not in nominal:
        return None
    random = nominal["random"]["mean"]
    out = {"label": label, "mean_return": mean_return, "scenario": "nominal"}
    for policy in ("student", "teacher"):
        if policy in nominal:
            out[policy] = normalized(nominal[policy]["mean"], mean_return, random)
    return out


def gate(metrics: dict[str, dict], cfg: GateConfig, published: dict | None = None) -> dict:
    """Checks on the training randomization and failure bounds, and, where `cfg.min_published_ratio` is
    set, the student's score against a published agent (`published_scores`); passed only if every check
    passes."""
    checks = []
    train = metrics.get("train", {})
    ratio = train.get("ratio")
    if ratio is None:
        checks.append({"name": "reference", "passed": False, "detail": "no teacher/random reference"})
    else:
        checks.append(_check("mean score vs teacher", ratio["mean"], cfg.min_mean_ratio))
        checks.append(_check("p10 score vs teacher", ratio["p10"], cfg.min_p10_ratio))
    for scenario in cfg.failure_scenarios:
        if scenario in metrics and "student" in metrics[scenario]:
            checks.append(_failure_check(scenario, metrics[scenario], cfg.max_failure_rate))
    if cfg.min_published_ratio is not None:
        checks.append(_published_check(published, cfg.min_published_ratio))
    return {"passed": all(c["passed"] for c in checks), "checks": checks}


def _failure_check(scenario: str, policies: dict, margin: float) -> dict:
    """The student may fail at most `margin` more often than its teacher on the same episodes: a hopper
    whose teacher falls in 30% of randomized episodes cannot be asked to fall in fewer than 10%."""
    rate = policies["student"]["failure_rate"]
    teacher = policies.get("teacher", {}).get("failure_rate", 0.0)
    threshold = teacher + margin
    return {"name": f"failure rate ({scenario})", "value": rate, "threshold": threshold,
            "passed": rate <= threshold}  # fmt: skip


def _published_check(published: dict | None, threshold: float) -> dict:
    """Asked for but unmeasurable (a task with no published agent, no nominal scenario) fails: a gate a
    lab configured must not pass silently."""
    if published is None or "student" not in published:
        return {"name": "score vs published agent", "passed": False,
                "detail": "no published agent for this task, or no nominal scenario"}  # fmt: skip
    return _check(f"score vs {published['label']} (nominal)", published["student"], threshold)


def _check(name: str, value: float, threshold: float) -> dict:
    return {"name": name, "value": float(value), "threshold": threshold, "passed": bool(value >= threshold)}
