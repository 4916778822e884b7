"""`sim2real release`: a cleared export becomes a deployable `release/<task>/`; a failed gate, not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_deploy_policy import tiny_export

from sim2real.artifacts import sha256_file
from sim2real.deploy import load_policy
from sim2real.errors import UserError
from sim2real.release import MANIFEST, release
from sim2real.validate.verdict import require_validated


def _validated_run(tmp_path: Path, passed: bool = True) -> Path:
    run = tmp_path / "run"
    export = tiny_export(run / "export")
    (run / "validation").mkdir()
    report = {
        "artifact_sha256": sha256_file(export / "policy.onnx"),
        "gate": {"passed": passed, "checks": []},
    }
    (run / "validation" / "report.json").write_text(json.dumps(report))
    (run / "validation" / "report.md").write_text("# report\n")
    return run


def test_release_copies_a_cleared_export_with_its_report_and_manifest(tmp_path):
    run = _validated_run(tmp_path)
    out = release(run, tmp_path / "release" / "pendulum", "pendulum", 3, {"seed": 3}, "sim2real pipeline")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "policy.json", "policy.onnx", "validation"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "sim2real pipeline" and manifest["seed"] == 3 and manifest["gate"] is True
    assert manifest["artifact_sha256"] == sha256_file(out / "policy.onnx")
    assert load_policy(out).spec.task == "pendulum"
    # the deploy gate finds the report inside the release folder (its parent holds none)
    assert require_validated(out, out.parent)["validated"]
    assert not (tmp_path / "release" / ".pendulum.partial").exists()


def test_release_refuses_an_export_whose_gate_failed_and_leaves_no_folder(tmp_path):
    run = _validated_run(tmp_path, passed=False)
    with pytest.raises(UserError, match="not released: validation gate failed"):
        release(run, tmp_path / "out", "pendulum", 0, {}, "x")
    assert not (tmp_path / "out").exists()
