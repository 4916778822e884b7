import json

import numpy as np
import pytest

from envs import parameters as dr
from sim2real.validate import report, scenarios, stats
from sim2real.validate.config import GateConfig, ValidateConfig
from sim2real.validate.rollout import PolicySource, run_chunk
from sim2real.validate.verdict import NotValidated, require_validated, verdict


def _summary(mean, p10, failure=0.0):
    return {"mean": mean, "p10": p10, "failure_rate": failure, "episodes": 10, "ci95": [mean, mean],
            "iqm": mean, "jerk": 0.0}  # fmt: skip


def _metrics(student_mean, student_p10, failure=0.0):
    train = {
        "student": _summary(student_mean, student_p10, failure),
        "teacher": _summary(-150.0, -200.0),
        "random": _summary(-1200.0, -1500.0),
    }
    train["ratio"] = stats.normalized_ratios(train["student"], train["teacher"], train["random"])
    return {"train": train, "nominal": {"student": _summary(student_mean, student_p10, failure)}}


def test_gate_passes_a_student_close_to_the_teacher():
    g = stats.gate(_metrics(-180.0, -230.0), GateConfig())
    assert g["passed"], g


def test_gate_fails_a_student_far_below_the_teacher_on_negative_rewards():
    g = stats.gate(_metrics(-400.0, -900.0), GateConfig())
    assert not g["passed"]
    assert {c["name"] for c in g["checks"] if not c["passed"]} >= {"mean score vs teacher"}


def test_gate_fails_on_failure_rate_even_with_good_mean():
    g = stats.gate(_metrics(-160.0, -210.0, failure=0.3), GateConfig(max_failure_rate=0.1))
    assert not g["passed"]
    assert any(c["name"].startswith("failure rate") and not c["passed"] for c in g["checks"])


def test_gate_allows_the_student_its_teachers_failure_rate_plus_the_margin():
    metrics = _metrics(-160.0, -210.0, failure=0.35)
    metrics["train"]["teacher"]["failure_rate"] = 0.3  # a hopper teacher that falls in 30% of episodes
    checks = {c["name"]: c for c in stats.gate(metrics, GateConfig(max_failure_rate=0.1))["checks"]}
    assert checks["failure rate (train)"]["passed"] and checks["failure rate (train)"]["threshold"] == 0.4
    assert not checks["failure rate (nominal)"]["passed"]  # no teacher there: 0.35 > 0 + 0.1


def test_gate_without_reference_does_not_pass():
    metrics = {"train": {"student": _summary(-150.0, -200.0)}}
    assert not stats.gate(metrics, GateConfig())["passed"]


def _weak_teacher_metrics():
    """A locomotion run whose teacher is weak: the student matches it, both far below a published agent."""
    train = {
        "student": _summary(1700.0, 900.0),
        "teacher": _summary(1800.0, 950.0),
        "random": _summary(20.0, 5.0),
    }
    train["ratio"] = stats.normalized_ratios(train["student"], train["teacher"], train["random"])
    nominal = {
        "student": _summary(1220.0, 800.0),
        "teacher": _summary(1260.0, 900.0),
        "random": _summary(20.0, 5.0),
    }
    return {"train": train, "nominal": nominal}


def test_published_scores_put_student_and_teacher_on_the_published_agents_scale():
    pub = stats.published_scores(_weak_teacher_metrics(), "RL Zoo PPO Hopper-v3", 2420.0)
    assert pub["student"] == pytest.approx(0.5) and pub["teacher"] == pytest.approx(1240.0 / 2400.0)
    assert stats.published_scores({"train": _weak_teacher_metrics()["train"]}, "x", 1.0) is None


def test_published_floor_fails_the_student_of_a_weak_teacher_the_relative_gate_passes():
    metrics = _weak_teacher_metrics()
    pub = stats.published_scores(metrics, "RL Zoo PPO Hopper-v3", 2420.0)
    assert stats.gate(metrics, GateConfig(), pub)["passed"]  # 0.94 of its teacher: the relative gate passes
    floored = stats.gate(metrics, GateConfig(min_published_ratio=0.8), pub)
    failing = [c for c in floored["checks"] if not c["passed"]]
    assert not floored["passed"] and [c["name"] for c in failing] == [
        "score vs RL Zoo PPO Hopper-v3 (nominal)"
    ]
    assert stats.gate(metrics, GateConfig(min_published_ratio=0.4), pub)["passed"]


def test_a_published_floor_without_a_published_agent_fails_rather_than_passing_silently():
    g = stats.gate(_weak_teacher_metrics(), GateConfig(min_published_ratio=0.5), None)
    assert not g["passed"] and "no published agent" in g["checks"][-1]["detail"]


def test_report_places_the_student_against_the_published_agent():
    metrics = _weak_teacher_metrics()
    pub = stats.published_scores(metrics, "RL Zoo PPO Hopper-v3", 2420.0)
    rep = {"task": "hopper", "artifact": "x", "artifact_sha256": "ab", "seeds": {}, "metrics": metrics,
           "gate": stats.gate(metrics, GateConfig(), pub), "published": pub}  # fmt: skip
    md = report.markdown(rep, [])
    assert "## Against a published agent" in md and "student 0.50, teacher 0.52" in md


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(5, 1, 20), rng.normal(5, 1, 500)
    lo_s, hi_s = stats.bootstrap_ci(small)
    lo_l, hi_l = stats.bootstrap_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < hi_s - lo_s


def test_iqm_ignores_outliers():
    assert stats.iqm(np.array([1, 2, 2, 2, 2, 2, 2, 1000.0])) == pytest.approx(2.0)


def test_sweep_grid_extends_past_the_training_range():
    grid = scenarios.sweep_grid(dr.Range(0.8, 1.2), 5, 0.5)
    assert grid[0] < 0.8 and grid[-1] > 1.2 and len(grid) == 5
    lat = scenarios.sweep_grid(dr.Range(0, 2, integer=True), 5, 0.5)
    assert lat == [0.0, 1.0, 2.0, 3.0]
    level = scenarios.sweep_grid(dr.Range(0.0, 1.0), 3, 0.5, dr.TABLE["terrain_level"].bounds)
    assert level == [0.0, 0.5, 1.0]  # the hardest row is the end: never past the parameter's bounds


def test_scenarios_pair_seeds_and_disjoint_from_training():
    cfg = ValidateConfig(episodes=4, stress_episodes=2, sweep_episodes=2)
    eps = scenarios.build(cfg, dr.make_ranges(None))
    assert all(ep.seed >= cfg.seed_base for ep in eps)
    mass = [ep for ep in eps if ep.scenario == "sweep/mass_scale"]
    by_value = {}
    for ep in mass:
        by_value.setdefault(ep.value, []).append(ep.seed)
    assert len({tuple(s) for s in by_value.values()}) == 1  # the same seeds at every grid point
    lat1 = [ep for ep in eps if ep.scenario == "stress/latency+1"]
    assert all(ep.dynamics["latency_steps"] >= 1 for ep in lat1)


def test_stressed_rollouts_run_and_report_failures():
    eps = [
        scenarios.Episode("stress/pushes", None, 5, dict(dr.nominal()), scenarios.Stress(push_accel=4.0)),
        scenarios.Episode("stress/dropouts", None, 6, dict(dr.nominal()), scenarios.Stress(dropout_prob=0.5)),
    ]
    teacher = run_chunk(PolicySource("teacher", "pendulum", {}, expert_kind="scripted"), eps)
    random = run_chunk(PolicySource("random", "pendulum", {}), eps)
    assert all(r["length"] == 200 for r in teacher + random)
    assert sum(r["return"] for r in teacher) > sum(r["return"] for r in random)
    assert all(r["failed"] for r in random)


def test_validation_counts_the_fall_conditions_a_task_names():
    shove = scenarios.Stress(push_accel=40.0)  # hard enough to topple the standing Go2
    eps = [scenarios.Episode("stress/pushes", None, s, dict(dr.nominal("go2")), shove) for s in range(2)]
    results = run_chunk(PolicySource("random", "go2", {}), eps)
    assert all(r["failed"] and r["fall_causes"] for r in results)
    causes = stats.summarize(results)["fall_causes"]
    assert sum(causes.values()) >= 2 and "tilt" in causes
    calm = [scenarios.Episode("stress/pushes", None, 0, dict(dr.nominal()), shove)]
    pendulum = run_chunk(PolicySource("random", "pendulum", {}), calm)
    assert "fall_causes" not in stats.summarize(pendulum)  # tasks that name none report none


def test_report_writes_markdown_and_nonempty_figures(tmp_path):
    results = []
    for policy, base in (("student", -200.0), ("teacher", -150.0), ("random", -1200.0)):
        for seed in range(6):
            results.append(
                {
                    "scenario": "train",
                    "value": None,
                    "seed": seed,
                    "policy": policy,
                    "return": base + seed,
                    "failed": False,
                    "jerk": 0.1,
                    "metrics": {"lin_vel_rmse": 0.1 * seed},
                }
            )
            for v in (0.6, 1.0, 1.4):
                results.append(
                    {
                        "scenario": "sweep/mass_scale",
                        "value": v,
                        "seed": seed,
                        "policy": policy,
                        "return": base * v,
                        "failed": False,
                        "jerk": 0.1,
                    }
                )
    metrics = stats.scenario_metrics(results)
    rob = report.robustness_figure(
        stats.sweep_curves(results), {"mass_scale": (0.8, 1.2)}, tmp_path / "r.png"
    )
    ret = report.returns_figure(stats.group(results), tmp_path / "d.png")
    for png in (rob, ret):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    rep = {
        "task": "pendulum",
        "artifact": "x",
        "artifact_sha256": "ab",
        "seeds": {},
        "gate": stats.gate(metrics, GateConfig(failure_scenarios=["train"])),
        "metrics": metrics,
    }
    md = report.markdown(rep, [str(rob), str(ret)])
    assert "PASSED" in md and "| train | student |" in md and "r.png" in md
    assert "| lin_vel_rmse 0.250 |" in md  # the task's own metric, averaged over the 6 episodes


def _export_and_report(tmp_path, passed=True):
    export = tmp_path / "export"
    export.mkdir()
    (export / "policy.onnx").write_bytes(b"onnx bytes")
    from sim2real.artifacts import sha256_file

    (tmp_path / "validation").mkdir()
    rep = {"artifact_sha256": sha256_file(export / "policy.onnx"), "gate": {"passed": passed, "checks": []}}
    (tmp_path / "validation" / "report.json").write_text(json.dumps(rep))
    return export


def test_verdict_clears_only_the_validated_artifact(tmp_path):
    export = _export_and_report(tmp_path)
    assert verdict(export, tmp_path / "validation" / "report.json")[0]
    (export / "policy.onnx").write_bytes(b"onnx bytez")
    cleared, reason = verdict(export, tmp_path / "validation" / "report.json")
    assert not cleared and "modified" in reason


def test_deploy_refuses_unvalidated_unless_forced(tmp_path):
    export = _export_and_report(tmp_path, passed=False)
    with pytest.raises(NotValidated, match="gate failed"):
        require_validated(export, tmp_path)
    record = require_validated(export, tmp_path, force=True)
    assert record["forced"] and not record["validated"]


def test_gate_reach_says_how_far_past_each_range_the_student_keeps_its_score():
    def curve(means: dict[float, float]) -> list[list[float]]:
        return [[v, m, m, m, 0.0] for v, m in sorted(means.items())]

    grid = (0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
    curves = {
        "mass_scale": {
            "teacher": curve(dict.fromkeys(grid, 100.0)),
            "random": curve(dict.fromkeys(grid, 0.0)),
            # holds inside [0.8, 1.2] and at 1.4; breaks at 0.6 below and at 1.6 above
            "student": curve({0.6: 50.0, 0.8: 95.0, 1.0: 97.0, 1.2: 92.0, 1.4: 91.0, 1.6: 70.0}),
        }
    }
    reach = stats.gate_reach(curves, {"mass_scale": (0.8, 1.2)}, 0.9)["mass_scale"]
    assert reach["inside"] and reach["below"] is None and reach["above"] == 1.4
    assert reach["above_widths"] == pytest.approx(0.5)
    dip = {**dict.fromkeys(grid, 95.0), 1.0: 80.0}  # fails inside the range, holds everywhere past it
    curves["mass_scale"]["student"] = curve(dip)
    reach = stats.gate_reach(curves, {"mass_scale": (0.8, 1.2)}, 0.9)["mass_scale"]
    assert not reach["inside"] and reach["below"] == 0.6 and reach["above"] == 1.6
