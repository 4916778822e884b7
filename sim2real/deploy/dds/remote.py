"""The Unitree wireless remote as `LowState_.wireless_remote` carries it: 40 bytes whose sticks are
little-endian float32 at fixed offsets (the vendor's `xRockerBtnDataStruct`: 2 header bytes, 2 button
bytes, then lx, rx, ry, L2, ly), read as Unitree's own deploy code reads them. Pure numpy."""

from __future__ import annotations

import numpy as np

STICKS = ("lx", "rx", "ry", "ly")  # mapping `index` 0..3 of `field: remote`
OFFSETS = (4, 8, 12, 20)  # byte offset of each stick in the 40 bytes
SIZE = 40


_FLOATS = np.array(OFFSETS) // 4 - 1  # positions of the sticks among the 5 floats from byte 4 (L2 skipped)


def decode(raw: np.ndarray) -> np.ndarray:
    """(4,) stick values lx, rx, ry, ly in [-1, 1] from the 40 remote bytes (read on every state)."""
    floats = np.ascontiguousarray(raw, dtype=np.uint8)[4:24].view("<f4")  # (5,) lx, rx, ry, L2, ly
    return floats[_FLOATS].astype(np.float64)


def encode(sticks: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The 40 remote bytes (uint8) carrying stick values (4,) lx, rx, ry, ly (a simulator's remote)."""
    out = np.zeros(SIZE, np.uint8) if out is None else out
    for o, v in zip(OFFSETS, np.asarray(sticks, np.float64), strict=True):
        out[o : o + 4] = np.frombuffer(np.float32(v).tobytes(), np.uint8)
    return out
