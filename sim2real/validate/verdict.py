"""Is an exported artifact cleared for a robot? Standard library only: the deploy runtime calls it."""

from __future__ import annotations

import json
from pathlib import Path

from sim2real.artifacts import POLICY_ONNX, RunLayout, sha256_file


class NotValidated(RuntimeError):
    """The artifact has no passing validation report (or was modified after validation)."""


def verdict(export_dir: str | Path, report_path: str | Path) -> tuple[bool, str]:
    """(cleared, reason): cleared only if the report passed its gate for this very ONNX file."""
    onnx, report = Path(export_dir) / POLICY_ONNX, Path(report_path)
    if not onnx.exists():
        return False, f"{onnx} does not exist"
    if not report.exists():
        return False, f"no validation report at {report}: run `sim2real validate` first"
    rep = read_report(report)
    if rep is None:
        return False, f"{report} is not valid JSON (a garbled report): re-run `sim2real validate`"
    sha = sha256_file(onnx)
    if rep.get("artifact_sha256") != sha:
        return False, (
            f"{onnx} (sha256 {sha[:12]}) is not the artifact {report} validated "
            f"(sha256 {str(rep.get('artifact_sha256'))[:12]}): modified or re-exported since"
        )
    gate = rep.get("gate") if isinstance(rep.get("gate"), dict) else {}
    if not gate.get("passed"):
        checks = gate.get("checks") if isinstance(gate.get("checks"), list) else []
        failed = [str(c.get("name")) for c in checks if isinstance(c, dict) and not c.get("passed")]
        return False, f"validation gate failed for {onnx} ({', '.join(failed) or 'no checks'}); see {report}"
    return True, f"validated by {report}"


def read_report(report: Path) -> dict | None:
    """The report's JSON object, or None when the file is garbled (cut short, not JSON, not an object)."""
    try:
        rep = json.loads(report.read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    return rep if isinstance(rep, dict) else None


def report_path(export_dir: str | Path, run_dir: str | Path) -> Path:
    """The run's `validation/report.json`; for a release folder (`release/<task>`, the export and its
    report side by side) the one inside the export dir."""
    own = RunLayout(export_dir).report
    return own if own.exists() and not RunLayout(run_dir).report.exists() else RunLayout(run_dir).report


def require_validated(export_dir: str | Path, run_dir: str | Path, force: bool = False) -> dict:
    """Raise NotValidated unless cleared or forced; the returned record goes into the deployment log."""
    report = report_path(export_dir, run_dir)
    cleared, reason = verdict(export_dir, report)
    if not cleared and not force:
        raise NotValidated(f"{reason} (deploy.force=true overrides, and is recorded)")
    return {"validated": cleared, "forced": bool(force and not cleared), "reason": reason}
