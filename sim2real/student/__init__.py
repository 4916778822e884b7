"""Observation-only student: causal transformer (or MLP baseline), BC and DAgger distillation.

`load_student(dir)` is imported lazily so that reading configs does not import torch.
"""

from __future__ import annotations

from typing import Any


def load_student(path: Any, device: Any = "cpu") -> Any:
    """The student saved in `path` (`<run_dir>/student/`), rebuilt from model.safetensors + config.json."""
    from sim2real.student.checkpoint import load_student as _load

    return _load(path, device)
