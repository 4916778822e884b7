"""Domain randomization applied to an MjModel: the write rules of `envs.parameters.TABLE`.

Randomization is always written from a copy of the nominal model values taken once at construction,
so scales never compound across resets. Nothing here imports MuJoCo: the rules write numpy views of
the model's fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs import parameters


@dataclass(frozen=True)
class NominalModel:
    """Copies of the MjModel fields that the table's parameters write, taken before any change."""

    fields: dict[str, np.ndarray]

    @classmethod
    def of(cls, model: Any) -> NominalModel:
        names = dict.fromkeys(f for p in parameters.TABLE.values() for f in p.fields)
        return cls({f: getattr(model, f).copy() for f in names})


def apply(model: Any, nominal: NominalModel, dyn: Mapping[str, float]) -> None:
    """Write the model parameters of `dyn` into `model`, in table order, starting from the nominal values.

    Where two parameters write one field, the first rewrites it from its nominal copy and the later
    adjusts that (`mass_scale`, then `payload_kg`), so nothing compounds across resets."""
    for name, p in parameters.TABLE.items():
        if p.write is not None and name in dyn:
            p.write(model, nominal.fields, dyn[name])
