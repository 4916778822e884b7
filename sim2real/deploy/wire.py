"""The UDP robot bridge's wire format, version 1 (little-endian, one message per datagram).

```
offset size  field
0      4     magic      b"S2RB"
4      1     version    1
5      1     type       1 HELLO, 2 DESCRIBE, 3 STATE, 4 ACTION, 5 RESET, 6 BYE
6      2     count      STATE/ACTION: number of float32 values; DESCRIBE/RESET: payload bytes
8      4     seq        sender's sequence number (u32, +1 per message, wraps)
12     8     stamp_us   sender's monotonic clock when sent, microseconds (u64)
20     ...   payload    count float32 values, or count bytes of UTF-8 JSON
20+n   4     crc32      CRC-32 (IEEE 802.3, as zlib.crc32) of bytes 0 .. 20+n
```
Exchanges (client = controller, server = robot):
- HELLO (empty) → DESCRIBE `{"readings": [names], "actions": [names], "extras": [names],
  "ack": <seq of the request>, "episode": n}` followed by a STATE.
- ACTION (Da floats, `actions` order) → the robot applies it and answers with a STATE
  (`readings` then `extras` floats: a simulator's reward etc., which a real robot leaves empty).
- RESET `{"seed": s}` (simulators only) → DESCRIBE (new episode) + STATE. BYE → the robot forgets
  the client.
A receiver drops a datagram with a bad magic, version, length or CRC, and one whose seq is not
newer than the newest it accepted from that sender (late or duplicated after reordering). A robot
also drops (and counts) a valid datagram whose meaning is wrong: an ACTION whose count is not its
action count or with a non-finite value, a RESET that is not `{"seed": null | 0..2**63-1}`, a
HELLO/BYE with a payload, a type a controller does not send, and anything from a second controller
while the first is active (heard from within a second). A robot
port needs: a UDP socket, CRC-32, this header, a const DESCRIBE string and two float arrays.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

MAGIC = b"S2RB"
VERSION = 1
HELLO, DESCRIBE, STATE, ACTION, RESET, BYE = 1, 2, 3, 4, 5, 6
TEXT_TYPES = (DESCRIBE, RESET)
HEADER = struct.Struct("<4sBBHIQ")  # 20 bytes
CRC = struct.Struct("<I")
MAX_DATAGRAM = 65507


class WireError(ValueError):
    """A datagram that is not a valid version-1 message (the reason says which check failed)."""


@dataclass(frozen=True)
class Message:
    type: int
    seq: int
    stamp_us: int
    floats: np.ndarray | None = None  # (count,) float32 for STATE / ACTION
    doc: dict[str, Any] | None = None  # parsed JSON for DESCRIBE / RESET


def encode(msg_type: int, seq: int, stamp_us: int, payload: np.ndarray | dict | None = None) -> bytes:
    if msg_type in TEXT_TYPES:
        body = json.dumps(payload or {}, separators=(",", ":")).encode()
        count = len(body)
    else:
        values = np.zeros(0, "<f4") if payload is None else np.asarray(payload, "<f4").ravel()
        body, count = values.tobytes(), values.size
    head = HEADER.pack(MAGIC, VERSION, msg_type, count, seq & 0xFFFFFFFF, stamp_us & 0xFFFFFFFFFFFFFFFF)
    frame = head + body
    return frame + CRC.pack(zlib.crc32(frame))


def decode(data: bytes) -> Message:
    if len(data) < HEADER.size + CRC.size:
        raise WireError(f"datagram of {len(data)} bytes is shorter than a header")
    magic, version, msg_type, count, seq, stamp = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireError(f"bad magic {magic!r}")
    if version != VERSION:
        raise WireError(f"wire version {version} (this side speaks {VERSION})")
    size = count if msg_type in TEXT_TYPES else 4 * count
    if len(data) != HEADER.size + size + CRC.size:
        raise WireError(f"length {len(data)} does not match count {count} of type {msg_type}")
    (crc,) = CRC.unpack_from(data, HEADER.size + size)
    if crc != zlib.crc32(data[: HEADER.size + size]):
        raise WireError("CRC mismatch")
    body = data[HEADER.size : HEADER.size + size]
    if msg_type in TEXT_TYPES:
        try:
            return Message(msg_type, seq, stamp, doc=json.loads(body))
        except (ValueError, RecursionError) as e:  # RecursionError: "[[[[..." nested past the limit
            raise WireError(f"bad JSON payload: {e}") from e
    if msg_type not in (HELLO, STATE, ACTION, BYE):
        raise WireError(f"unknown message type {msg_type}")
    return Message(msg_type, seq, stamp, floats=np.frombuffer(body, "<f4"))


MAX_SEED = 2**63 - 1  # a RESET seed is null or an integer 0..MAX_SEED (the log stores int64)


def seed_problem(seed: Any) -> str | None:
    """Why `seed` is not a valid RESET seed, or None when it is."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"seed {seed!r} is not an integer"
    if not 0 <= seed <= MAX_SEED:
        return f"seed {seed} is outside 0..2**63-1"
    return None


def newer(seq: int, last: int | None) -> bool:
    """Serial-number order (RFC 1982) on u32: is `seq` after `last`, across wraparound?"""
    return last is None or 0 < ((seq - last) & 0xFFFFFFFF) < 0x80000000
