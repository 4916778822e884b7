"""The Unitree command/state CRC: CRC-32 with polynomial 0x04C11DB7, MSB first, over uint32 words.

The vendor (unitree_sdk2 `crc32_core`; unitree_sdk2_python `unitree_sdk2py/utils/crc.py`) feeds each
little-endian uint32 word of the C struct, most significant bit first, into a register that starts at
0xFFFFFFFF, with no final xor: CRC-32/MPEG-2 over the words' big-endian bytes. The last word (the crc
field itself) is left out.

`crc32_core_reference` is that algorithm bit by bit (slow; tests and vectors). The fast path is
fastcrc's table-driven CRC-32/MPEG-2 (Rust, MIT): ~0.3 µs for 2 KB here, where zlib's reflected CRC-32
needs every byte bit-reversed first (~4 µs of table lookups for the same 2 KB).
"""

from __future__ import annotations

import numpy as np
from fastcrc import crc32 as _crc32

POLY = 0x04C11DB7


def crc32_core_reference(words: np.ndarray | list[int]) -> int:
    """The vendor's crc32_core, bit by bit, over a sequence of uint32 words (published algorithm)."""
    crc = 0xFFFFFFFF
    for word in np.asarray(words, dtype=np.uint32).tolist():
        for bit in range(31, -1, -1):
            top = crc & 0x80000000
            crc = (crc << 1) & 0xFFFFFFFF
            if top:
                crc ^= POLY
            if (word >> bit) & 1:
                crc ^= POLY
    return crc


def crc32_big_endian(words_be) -> int:
    """The vendor CRC over the words' big-endian bytes (bytes-like, 4n bytes, most significant first)."""
    return _crc32.mpeg_2(words_be)


def crc32_core(words: np.ndarray) -> int:
    """The vendor CRC over (n,) uint32 words."""
    return _crc32.mpeg_2(np.asarray(words, dtype=">u4").tobytes())


def crc32_c_struct(packed: bytes | np.ndarray) -> int:
    """The CRC the vendor puts in the last word of a packed C struct (`packed` includes that word)."""
    buf = np.frombuffer(packed, dtype="<u4") if isinstance(packed, bytes | bytearray) else packed.view("<u4")
    return crc32_core(buf[:-1])
