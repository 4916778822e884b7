"""Student model and distillation configs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StudentConfig:
    arch: str = "transformer"  # transformer | mlp
    history: int = 16


@dataclass
class DistillConfig:
    dagger_rounds: int = 0
    steps: int = 2000
    batch_size: int = 256
