"""What `sweep-summary` writes: the table as CSV rows, markdown and a rich table, and the figure."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from sim2real.sweep.summary import GroupSummary, RunResult

HEADER = ("group", "seed", "student return", "95% CI", "score", "failure", "gate")


def _num(x: float) -> float | str:
    return x if math.isfinite(x) else ""


def table_rows(results: list[RunResult], groups: list[GroupSummary]) -> list[dict]:
    """One table: each group's runs, then the group's aggregate row (CSV; numbers unformatted)."""
    rows = []
    for g in groups:
        for r in (r for r in results if r.group == g.group):
            rows.append(
                {
                    "row": "run",
                    "group": g.group,
                    "run": r.run,
                    "seed": "" if r.seed is None else r.seed,
                    "student_return": r.student_mean,
                    "student_return_std": "",
                    "ci95_low": r.ci95_low,
                    "ci95_high": r.ci95_high,
                    "score": _num(r.score),
                    "score_std": "",
                    "failure_rate": r.failure_rate,
                    "failure_rate_std": "",
                    "gate": "passed" if r.gate_passed else "failed",
                }
            )
        rows.append(
            {
                "row": "group",
                "group": g.group,
                "run": "",
                "seed": " ".join(str(s) for s in g.seeds),
                "student_return": g.student_mean,
                "student_return_std": _num(g.student_std),
                "ci95_low": "",
                "ci95_high": "",
                "score": _num(g.score_mean),
                "score_std": _num(g.score_std),
                "failure_rate": g.failure_mean,
                "failure_rate_std": _num(g.failure_std),
                "gate": f"{g.gates_passed}/{g.runs} passed",
            }
        )
    return rows


def plural(k: int, noun: str) -> str:
    return f"{k} {noun}{'' if k == 1 else 's'}"


def _pm(mean: float, std: float, fmt: str) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:{fmt}}" + (f" ± {std:{fmt}}" if math.isfinite(std) else "")


def display_rows(results: list[RunResult], groups: list[GroupSummary]) -> list[tuple[bool, tuple[str, ...]]]:
    """(is_aggregate, cells) per line of the human-readable table, in HEADER's columns."""
    lines = []
    for g in groups:
        runs = [r for r in results if r.group == g.group]
        for i, r in enumerate(runs):
            cells = (
                g.group if i == 0 else "",
                "?" if r.seed is None else str(r.seed),
                f"{r.student_mean:.1f}",
                f"[{r.ci95_low:.1f}, {r.ci95_high:.1f}]",
                "n/a" if not math.isfinite(r.score) else f"{r.score:.3f}",
                f"{r.failure_rate:.0%}",
                "PASSED" if r.gate_passed else "FAILED",
            )
            lines.append((False, cells))
        agg = (
            "",
            f"mean ± std ({g.runs})",
            _pm(g.student_mean, g.student_std, ".1f"),
            "",
            _pm(g.score_mean, g.score_std, ".3f"),
            _pm(100 * g.failure_mean, 100 * g.failure_std, ".0f") + "%",
            f"{g.gates_passed}/{g.runs} passed",
        )
        lines.append((True, agg))
    return lines


def markdown(root: Path, scenario: str, results, groups, figure_name: str) -> str:
    lines = [
        f"# Sweep summary: {root}",
        "",
        f"{plural(len(results), 'run')} in {plural(len(groups), 'group')}. Numbers are the student's in the "
        f"`{scenario}` scenario of each run's `validation/report.json`; a group is the runs' settings other "
        "than the seed, and its last row is the mean ± sample std over its seeds. "
        "Score: (R − random) / (teacher − random).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    for agg, cells in display_rows(results, groups):
        shown = [f"**{c}**" if agg and c else c.replace("|", "\\|") for c in cells]
        lines.append("| " + " | ".join(shown) + " |")
    lines += ["", f"![sweep summary]({figure_name})", ""]
    return "\n".join(lines)


def print_table(results, groups, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for name in HEADER:
        left = name in ("group", "seed", "gate")
        table.add_column(
            name, justify="left" if left else "right", overflow="fold", ratio=3 if name == "group" else None
        )
    for agg, cells in display_rows(results, groups):
        table.add_row(*cells, style="bold" if agg else None, end_section=agg)
    console = Console()
    # a pipe or a file gets rich's 80 columns unless told otherwise: too narrow for override labels
    Console(width=max(console.width, 140) if not console.is_terminal else None).print(table)


def figure(groups: list[GroupSummary], results: list[RunResult], path: Path) -> Path:
    """Per group: each seed as a dot, the mean ± std as a bar; normalized score and student return."""
    panels = [("score", "score_mean", "score_std", "normalized score (1 = teacher, 0 = random)")]
    if not any(math.isfinite(r.score) for r in results):
        panels = []
    panels.append(("student_mean", "student_mean", "student_std", "student return"))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(5.0, 1.3 * len(groups) + 2) * len(panels), 4.2), squeeze=False
    )
    x = np.arange(len(groups))
    for ax, (run_field, mean_field, std_field, ylabel) in zip(axes[0], panels, strict=True):
        for i, g in enumerate(groups):
            ys = [getattr(r, run_field) for r in results if r.group == g.group]
            offsets = np.linspace(-0.15, 0.15, len(ys)) if len(ys) > 1 else np.zeros(1)
            ax.plot(i + offsets, ys, "o", color="tab:blue", alpha=0.6, ms=5)
            mean, std = getattr(g, mean_field), getattr(g, std_field)
            ax.errorbar(
                i, mean, yerr=std if math.isfinite(std) else None, fmt="_", color="k", ms=18, capsize=6
            )
        if run_field == "score":
            ax.axhline(1.0, color="tab:orange", ls="--", lw=1, label="teacher")
            ax.axhline(0.0, color="tab:gray", ls="--", lw=1, label="random")
            ax.legend(fontsize=7)
        labels = ["\n".join(textwrap.fill(o, 30) for o in g.group.split(" ")) for g in groups]
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel(ylabel)
    fig.suptitle("Sweep: each seed (dots), mean ± std over seeds (black)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
