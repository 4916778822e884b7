"""report.md and PNG figures: what a person reads before a policy goes to a robot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

COLORS = {"student": "tab:blue", "teacher": "tab:orange", "random": "tab:gray"}


def robustness_figure(curves: dict, ranges: dict, path: Path) -> Path | None:
    """One panel per swept parameter: mean return with its 95% CI, training range shaded."""
    if not curves:
        return None
    n = len(curves)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (param, by_policy) in zip(axes.flat, sorted(curves.items()), strict=False):
        for policy, pts in sorted(by_policy.items()):
            a = np.array(pts)
            ax.plot(a[:, 0], a[:, 1], "o-", color=COLORS.get(policy), label=policy, ms=3)
            ax.fill_between(a[:, 0], a[:, 2], a[:, 3], color=COLORS.get(policy), alpha=0.2)
        if param in ranges:
            lo, hi = ranges[param]
            ax.axvspan(lo, hi, color="green", alpha=0.08, label="training range")
        ax.set_title(param)
        ax.set_xlabel("value")
        ax.set_ylabel("return")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Robustness: one parameter swept, others nominal (mean, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def returns_figure(grouped: dict, path: Path) -> Path:
    """Return distributions per scenario (sweeps left out), each policy side by side."""
    scenarios = [s for s in grouped if not s.startswith("sweep/")]
    policies = [p for p in ("student", "teacher", "random") if any(p in grouped[s] for s in scenarios)]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(scenarios)), 4))
    width = 0.8 / max(1, len(policies))
    for k, policy in enumerate(policies):
        data = [[r["return"] for r in grouped[s].get(policy, [])] or [np.nan] for s in scenarios]
        pos = np.arange(len(scenarios)) + (k - (len(policies) - 1) / 2) * width
        bp = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True, showfliers=False)
        for box in bp["boxes"]:
            box.set_facecolor(COLORS.get(policy))
            box.set_alpha(0.6)
        ax.plot([], [], color=COLORS.get(policy), lw=6, alpha=0.6, label=policy)
    ax.set_xticks(np.arange(len(scenarios)), scenarios, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("episode return")
    ax.legend(fontsize=8)
    ax.set_title("Return distributions per scenario (paired seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(report: dict, figures: list[str]) -> str:
    gate = report["gate"]
    lines = [
        f"# Validation report: {report['task']}",
        "",
        f"- artifact: `{report['artifact']}` (sha256 `{report['artifact_sha256']}`)",
        f"- verdict: **{'PASSED' if gate['passed'] else 'FAILED'}**",
        f"- seeds: {report['seeds'].get('episodes', '?')} distinct episode seeds from "
        f"{report['seeds'].get('base', '?')} (disjoint from training and collection seeds)",
        "",
        "## Gate",
        "",
        "| check | value | threshold | passed |",
        "|---|---|---|---|",
    ]
    for c in gate["checks"]:
        value = f"{c['value']:.3f}" if "value" in c else c.get("detail", "")
        ok = "yes" if c["passed"] else "NO"
        lines.append(f"| {c['name']} | {value} | {c.get('threshold', '')} | {ok} |")
    lines += [
        "",
        "Scores are normalized: (R − random) / (teacher − random) on the same episodes. A failure is a",
        "fall (early termination) or, for the pendulum, not balanced (mean cos < 0.9) over the last quarter.",
        "Task metrics are the task's own per-episode figures, averaged (Go2: RMS velocity-tracking errors,",
        "m/s and rad/s; the pendulum: mean cos of the angle over the last quarter), then the fall",
        "conditions that ended episodes where the task names them (Go2: trunk or hip contact, tilt, low).",
        "",
        "## Scenarios",
        "",
        "| scenario | policy | episodes | mean [95% CI] | IQM | p10 | failure | jerk | score | task |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, m in report["metrics"].items():
        for policy in ("student", "teacher", "random"):
            if policy not in m:
                continue
            s = m[policy]
            score = f"{m['ratio']['mean']:.3f}" if policy == "student" and "ratio" in m else ""
            task = ", ".join(f"{k} {v:.3f}" for k, v in s.get("task_metrics", {}).items())
            if s.get("fall_causes"):
                task += "; falls: " + ", ".join(f"{k} {v}" for k, v in s["fall_causes"].items())
            lines.append(
                f"| {scenario} | {policy} | {s['episodes']} | {s['mean']:.1f} [{s['ci95'][0]:.1f}, "
                f"{s['ci95'][1]:.1f}] | {s['iqm']:.1f} | {s['p10']:.1f} | {s['failure_rate']:.0%} | "
                f"{s['jerk']:.3f} | {score} | {task} |"
            )
    lines += _published_lines(report.get("published"))
    lines += _reach_lines(report.get("reach") or {}, gate)
    lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    return "\n".join(lines) + "\n"


def _published_lines(published: dict | None) -> list[str]:
    """Where the gate's relative scores sit on an absolute scale: a published agent on the same env."""
    if not published:
        return []
    row = ", ".join(f"{p} {published[p]:.2f}" for p in ("student", "teacher") if p in published)
    ref = f"{published['mean_return']:.1f}"
    return [
        "",
        "## Against a published agent",
        "",
        f"{published['label']} returns {ref} on the unrandomized env. On nominal dynamics, normalized",
        f"the same way ((R − random) / ({ref} − random)): {row}.",
        "The gate's scores compare the student with its own teacher; this places both on one scale",
        "(`validate.gate.min_published_ratio` makes it a gate check).",
    ]


def _reach_lines(reach: dict, gate: dict) -> list[str]:
    """The table of how far past each training range the student keeps the gate's mean score."""
    if not reach:
        return []
    threshold = next((c.get("threshold") for c in gate["checks"] if c["name"] == "mean score vs teacher"), "")
    lines = [
        "",
        "## Past the training ranges",
        "",
        "One parameter swept at a time: the farthest value each side of the training range through",
        f"which the student keeps ≥ {threshold} of the teacher's score at every swept point (in range",
        "widths past it). Few episodes per point: a single fall can break a point.",
        "",
        "| parameter | holds inside | below the range | above the range |",
        "|---|---|---|---|",
    ]

    def side(entry: dict, key: str) -> str:
        value, widths = entry.get(key), entry.get(f"{key}_widths")
        if value is None:
            return "not past it"
        return f"{value:g}" + ("" if widths is None else f" ({widths:.2f})")

    for param, e in sorted(reach.items()):
        inside = "yes" if e["inside"] else "NO"
        lines.append(f"| {param} | {inside} | {side(e, 'below')} | {side(e, 'above')} |")
    return lines
