"""`sim2real validate`: judge the exported artifact itself under randomization, sweeps and stress."""

from __future__ import annotations

import dataclasses
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

import envs
from envs import parameters as dr
from sim2real.artifacts import RunLayout, sha256_file, stage_run, write_json_atomic
from sim2real.config import Config
from sim2real.errors import UserError
from sim2real.metrics import MetricLogger
from sim2real.ray_backend import check_backend, session
from sim2real.validate import report, scenarios, stats
from sim2real.validate.rollout import PolicySource, run_all


def run(cfg: Config) -> None:
    layout = RunLayout(cfg.run_dir)
    export_dir, out, onnx = layout.export, layout.validation, layout.policy_onnx
    if not onnx.exists():
        raise UserError(f"{onnx} not found: run `sim2real export run_dir={layout.root}` first")
    v = cfg.validate
    check_backend(v.backend, "validate.backend")
    if v.backend == "ray" and v.workers < 1:
        raise ValueError(f"validate.workers={v.workers!r}: validate.backend=ray needs at least 1")
    sha = sha256_file(onnx)
    ranges = dr.make_ranges(cfg.task.ranges(), task=cfg.task.name)
    episodes = scenarios.build(v, ranges)
    sources = _sources(cfg, export_dir)
    ray = v.backend == "ray"
    remote = session(v.ray_address, v.workers, "validate.ray_address") if ray else nullcontext()
    with (
        remote,
        stage_run(out, "validate", dataclasses.asdict(cfg), cfg.seed, parents={"export": sha}) as stage,
    ):
        results = []
        for src in sources:
            t0 = time.monotonic()
            print(f"validate: {src.kind} on {len(episodes)} episodes ({v.workers} {v.backend} workers)...")
            results += run_all(src, episodes, v.workers, v.backend)
            print(f"validate: {src.kind} done in {time.monotonic() - t0:.0f}s")
        metrics = stats.scenario_metrics(results)
        _demo_reference(cfg, layout, metrics)
        rep = _report(cfg, onnx, sha, metrics, results, ranges, layout)
        stage.outputs["report.json"] = rep["artifact_sha256"]
        stage.summary.update(gate_passed=rep["gate"]["passed"], **_headline(metrics))
    verdict = "PASSED" if rep["gate"]["passed"] else "FAILED"
    print(f"validate: gate {verdict} for {onnx} (sha256 {sha[:12]}); report: {layout.report_md}")


def _sources(cfg: Config, export_dir: Path) -> list[PolicySource]:
    common = {"task": cfg.task.name, "ranges": cfg.task.ranges()}
    out = [PolicySource("student", export_dir=str(export_dir), **common)]
    if _expert_available(cfg):
        expert = {"expert_kind": cfg.expert.kind, "expert_path": cfg.expert.path, "run_dir": cfg.run_dir}
        out.append(PolicySource("teacher", **expert, **common))
    out.append(PolicySource("random", **common))
    return out


def _expert_available(cfg: Config) -> bool:
    """The teacher reference runs if the configured expert can be loaded here."""
    from sim2real.teacher.experts import load_expert

    try:
        load_expert(cfg.expert, cfg.run_dir, cfg.task.name)
    except (UserError, FileNotFoundError, ValueError) as e:
        print(f"validate: no teacher reference ({e}); comparing with the demonstrations' returns")
        return False
    return True


def _demo_reference(cfg: Config, layout: RunLayout, metrics: dict) -> None:
    """Without a teacher, the demonstrations' returns (training randomization) are the reference."""
    train = metrics.get("train", {})
    if "teacher" in train or "random" not in train:
        return
    store = Path(cfg.data) if cfg.data else layout.demos
    if not store.exists():
        return
    import zarr

    returns = np.asarray(zarr.open_group(str(store), mode="r")["meta/episode_return"][:], dtype=np.float64)
    if len(returns) == 0:
        return
    ref = {"mean": float(returns.mean()), "p10": float(np.percentile(returns, 10))}
    train["ratio"] = stats.normalized_ratios(train["student"], ref, train["random"])
    train["reference"] = {"kind": "demonstrations", "store": str(store), **ref}


def _report(cfg, onnx: Path, sha: str, metrics: dict, results: list, ranges: dict, layout: RunLayout) -> dict:
    out = layout.validation
    published = _published(cfg.task.name, metrics)
    gate = stats.gate(metrics, cfg.validate.gate, published)
    curves = stats.sweep_curves(results)
    train_ranges = {k: (r.low, r.high) for k, r in ranges.items()}
    figures = [
        f
        for f in (
            report.robustness_figure(curves, train_ranges, out / "robustness.png"),
            report.returns_figure(stats.group(results), out / "returns.png"),
        )
        if f is not None
    ]
    rep = {
        "artifact_sha256": sha,
        "artifact": str(onnx),
        "task": cfg.task.name,
        "gate": gate,
        "metrics": metrics,
        "published": published,
        "sweeps": curves,
        "reach": stats.gate_reach(curves, train_ranges, cfg.validate.gate.min_mean_ratio),
        "seeds": {"base": cfg.validate.seed_base, "episodes": len({r["seed"] for r in results})},
        "config": dataclasses.asdict(cfg.validate),
    }
    write_json_atomic(layout.report, rep)
    layout.report_md.write_text(report.markdown(rep, [str(f) for f in figures]))
    _to_wandb(cfg, out, rep, figures)
    return rep


def _published(task: str, metrics: dict) -> dict | None:
    ref = envs.TASKS[task].published if task in envs.TASKS else None
    return None if ref is None else stats.published_scores(metrics, ref.label, ref.mean_return)


def _to_wandb(cfg, out: Path, rep: dict, figures: list) -> None:
    logger = MetricLogger(cfg.logger, out, "validation", dataclasses.asdict(cfg))
    rows = [
        [scenario, policy, s["mean"], s["p10"], s["failure_rate"]]
        for scenario, m in rep["metrics"].items()
        for policy, s in m.items()
        if policy in ("student", "teacher", "random")
    ]
    logger.log_table("validation", ["scenario", "policy", "mean", "p10", "failure_rate"], rows)
    logger.log_images({Path(f).stem: f for f in figures})
    published = {
        f"published_score/{k}": v
        for k, v in (rep.get("published") or {}).items()
        if k in ("student", "teacher")
    }
    logger.log_summary({"gate_passed": rep["gate"]["passed"], **published})
    logger.close()


def _headline(metrics: dict) -> dict:
    train = metrics.get("train", {})
    out = {f"{p}_mean_return": train[p]["mean"] for p in ("student", "teacher", "random") if p in train}
    if "ratio" in train:
        out["student_score"] = train["ratio"]["mean"]
    return out
