"""`sim2real identify log=R/deploy/<stamp>.zarr`: fit the task's dynamics parameters to a deployment log.

Writes `<run_dir>/identify/` (or `identify.out`): report.json / report.md with values, 95% confidence
intervals and the latency search, residuals.png and latency.png, and ranges.yaml: randomization ranges
centred on the identified values, which `task.randomization=<that file>` trains on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from envs import parameters
from sim2real.artifacts import RunLayout, sha256_tree, stage_run, write_json_atomic
from sim2real.config import Config
from sim2real.errors import UserError
from sim2real.identify import report
from sim2real.identify.fit import FitSettings, identify
from sim2real.identify.log import load_log
from sim2real.identify.ranges import recentred, write_ranges


def settings(cfg: Config) -> FitSettings:
    c = cfg.identify
    fixed = c.fixed.fixed()
    # the parameters written to the model (a rule's, such as motor gains, the open-loop sim does not run)
    physical = [n for n in parameters.physical(cfg.task.name) if parameters.TABLE[n].write is not None]
    for name in [*(c.parameters or []), *fixed]:
        if name not in physical:
            raise UserError(
                f"identify: {name!r} is not a physical parameter; these are: {', '.join(physical)}"
            )
    names = tuple(c.parameters) if c.parameters else tuple(n for n in physical if n not in fixed)
    return FitSettings(names, fixed, c.segment_steps, c.segments, c.max_latency, c.max_iter, c.prior_std)


def run(cfg: Config) -> None:
    from sim2real.identify.sim import TaskSim

    c = cfg.identify
    if not c.log:
        raise UserError("usage: sim2real identify log=PATH.zarr [identify.fixed.mass_scale=1.1] (see --help)")
    log = load_log(c.log, c.segment_steps + c.max_latency)
    if log.task != cfg.task.name:
        cfg = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, name=log.task))
    fit_settings = settings(cfg)
    out = Path(c.out) if c.out else RunLayout(cfg.run_dir).identify
    sim = TaskSim(log.task)
    _check_names(sim, log)
    with stage_run(out, "identify", dataclasses.asdict(cfg), cfg.seed, {"log": sha256_tree(log.path)}) as rec:
        fit = identify(sim, log, fit_settings)
        # what the log cannot tell apart keeps its declared range: the run that trains on this file
        # stretches it by its own `task.widen` (the widened range here would be stretched twice)
        declared = dataclasses.replace(cfg.task, widen=None).ranges()
        ranges = recentred(fit, fit_settings.fixed, declared, c.range_ci, c.range_min)
        write_ranges(out / "ranges.yaml", ranges, str(log.path))
        figures = [
            str(report.residual_figure(fit, sim.feature_names, out / "residuals.png", sim.dt)),
            str(report.latency_figure(fit, out / "latency.png")),
        ]
        extra = {
            "log": str(log.path), "task": log.task, "steps": log.steps, "segments": len(fit.targets),
            "segment_steps": c.segment_steps, "fixed": fit_settings.fixed, "ranges": ranges,
            "ranges_file": str(out / "ranges.yaml"),
        }  # fmt: skip
        rep = report.as_json(fit, log.dynamics, extra)
        write_json_atomic(out / "report.json", rep)
        (out / "report.md").write_text(report.markdown(rep, figures))
        rec.summary.update(latency_steps=fit.latency, **{n: v for n, v in fit.values.items()})
    sim.close()
    told = ", ".join(f"{n} {v:.3f} ± {fit.ci95[n]:.3f}" for n, v in fit.values.items() if fit.identified[n])
    if fit.dropped:
        print(f"identify: {report.dropped_text(fit.dropped)}")
    print(
        f"identify: latency {fit.latency} steps, noise ×{fit.noise_scale:.2f}, "
        f"{told or 'no parameter told apart'}; "
        f"residual RMS {fit.rms_nominal:.2f} -> {fit.rms_fit:.2f}; ranges: {out / 'ranges.yaml'}"
    )


def _check_names(sim, log) -> None:
    if tuple(log.feature_names) != tuple(sim.feature_names):
        raise UserError(
            f"{log.path}: its readings {list(log.feature_names)} are not task {log.task!r}'s sensor features "
            f"{list(sim.feature_names)}"
        )
