"""scripts/results_table.py: rows from finished runs, and never a silent row of dashes over a measured one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "results_table.py"
DOC = "# Results\n\n<!-- results_table: begin -->\nold table\n<!-- results_table: end -->\n\nnotes stay\n"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def _validated_run(root: Path) -> Path:
    run = root / "run"
    (run / "validation").mkdir(parents=True)
    stats = {"mean": 10.0, "ci95": [9.0, 11.0], "episodes": 30}
    report = {"task": "pendulum", "gate": {"passed": True},
              "metrics": {"train": {"student": stats, "teacher": stats, "ratio": {"mean": 0.5}}}}  # fmt: skip
    (run / "validation" / "report.json").write_text(json.dumps(report))
    return run


def test_print_leaves_the_document_untouched(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(DOC)
    out = _run(str(_validated_run(tmp_path)), "--out", str(doc), "--print")
    assert out.returncode == 0, out.stderr
    assert "| pendulum |" in out.stdout and "0.500" in out.stdout
    assert doc.read_text() == DOC


def test_writing_replaces_only_the_table(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(DOC)
    assert _run(str(_validated_run(tmp_path)), "--out", str(doc)).returncode == 0
    text = doc.read_text()
    assert "old table" not in text and "| pendulum |" in text and text.endswith("notes stay\n")


def test_a_run_without_a_report_is_refused_by_name(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(DOC)
    out = _run(str(_validated_run(tmp_path)), str(tmp_path / "gone"), "--out", str(doc))
    assert out.returncode != 0 and "gone" in out.stderr
    assert doc.read_text() == DOC
