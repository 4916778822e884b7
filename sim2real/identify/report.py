"""What `sim2real identify` leaves: report.json / report.md, residual and latency figures (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sim2real.identify.fit import FitResult


def residual_figure(fit: FitResult, names: tuple[str, ...], path: Path, dt: float, n: int = 3) -> Path:
    """Logged readings beside the nominal and the identified model's predictions, for n segments."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    feats = min(len(names), 4)
    segs = min(n, len(fit.targets))
    fig, axes = plt.subplots(feats, segs, figsize=(4 * segs, 2.2 * feats), squeeze=False)
    t = np.arange(fit.targets.shape[1]) * dt
    for i in range(segs):
        for f in range(feats):
            ax = axes[f, i]
            ax.plot(t, fit.targets[i, :, f], "k.", ms=3, label="log")
            ax.plot(t, fit.predicted_nominal[i, :, f], color="tab:gray", ls="--", label="nominal")
            ax.plot(t, fit.predicted[i, :, f], color="tab:blue", label="identified")
            ax.set_title(f"segment {i}: {names[f]}", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.supxlabel("s into the segment")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def latency_figure(fit: FitResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.semilogy(range(len(fit.cost_by_latency)), fit.cost_by_latency, "o-")
    ax.axvline(fit.latency, color="tab:orange", ls="--")
    ax.set_xlabel("sensor latency (control steps)")
    ax.set_ylabel("fit cost")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def as_json(fit: FitResult, truth: dict[str, float] | None, extra: dict[str, Any]) -> dict[str, Any]:
    values = {
        n: {"value": v, "ci95": fit.ci95[n], "identified": fit.identified[n]} for n, v in fit.values.items()
    }
    if truth:
        for n, entry in values.items():
            if n in truth:
                entry["true"] = truth[n]
                entry["error_pct"] = 100 * (entry["value"] - truth[n]) / truth[n]
    return {
        "parameters": values,
        "latency_steps": fit.latency,
        "cost_by_latency": fit.cost_by_latency,
        "obs_noise_scale": fit.noise_scale,
        "residual_rms_nominal": fit.rms_nominal,
        "residual_rms_identified": fit.rms_fit,
        "correlation": fit.correlation,
        "true_dynamics": truth,
        "segment_starts": [list(c) for c in fit.slots],  # (episode, step) of each segment fitted
        "dropped_segments": [list(c) for c in fit.dropped],  # outliers: no start explains them
        **extra,
    }


def markdown(rep: dict[str, Any], figures: list[str]) -> str:
    lines = [
        f"# System identification: {rep['log']}",
        "",
        f"task `{rep['task']}`, {rep['steps']} logged steps, {rep['segments']} segments of "
        f"{rep['segment_steps']} steps; residual RMS (noise units) nominal "
        f"{rep['residual_rms_nominal']:.2f} -> identified {rep['residual_rms_identified']:.2f}",
        "",
        *_dropped_lines(rep),
        "| parameter | identified | 95% CI | told apart by the log | true |",
        "|---|---|---|---|---|",
    ]
    for n, e in rep["parameters"].items():
        true = f"{e['true']:.3f} ({e['error_pct']:+.1f}%)" if "true" in e else "-"
        told = "yes" if e["identified"] else "no (keeps its prior / training range)"
        lines.append(f"| {n} | {e['value']:.3f} | ± {e['ci95']:.3f} | {told} | {true} |")
    for n, v in rep.get("fixed", {}).items():
        lines.append(f"| {n} | {v:.3f} | given | (identify.fixed) | - |")
    truth = rep.get("true_dynamics") or {}
    lines += [
        f"| latency_steps | {rep['latency_steps']} | search 0..{len(rep['cost_by_latency']) - 1} | yes | "
        f"{_num(truth.get('latency_steps'))} |",
        f"| obs_noise_scale | {rep['obs_noise_scale']:.3f} | residual std | yes | "
        f"{_num(truth.get('obs_noise_scale'))} |",
        "",
        f"Re-centred ranges: `{rep['ranges_file']}` (use `task.randomization={rep['ranges_file']}`).",
        "",
        *[f"![{Path(f).stem}]({Path(f).name})" for f in figures],
    ]
    return "\n".join(lines) + "\n"


def dropped_text(dropped: list[tuple[int, int]] | list[list[int]]) -> str:
    """The segments `identify` left out, in words (report.md and the console)."""
    where = ", ".join(f"episode {e} step {t}" for e, t in dropped)
    return (
        f"{len(dropped)} segment(s) left out: no start under any latency explains their readings (a "
        f"robot restarted, caught or pushed mid-log?): {where}"
    )


def _dropped_lines(rep: dict[str, Any]) -> list[str]:
    dropped = rep.get("dropped_segments") or []
    return [dropped_text(dropped), ""] if dropped else []


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"
