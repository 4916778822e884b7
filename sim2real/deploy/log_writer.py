"""The deployment log's writer process: Zarr work away from the control loop's interpreter.

Zarr appends are Python-heavy; in a thread of the controller's process they hold the GIL for
milliseconds and the loop misses deadlines. `WriterProcess` runs `main(PATH)` in a child Python at
low priority, off the controller's CPUs, and streams it frames over a pipe: one JSON header line,
then the header's arrays as raw bytes (no pickles). A sender thread does the pipe writes, so a
slow disk never blocks a control step.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# the child loads this file alone (not the sim2real.deploy package, whose imports it does not need)
_ENTRY = (
    "import importlib.util as u, sys; s = u.spec_from_file_location('sim2real_log_writer', sys.argv[1]); "
    "m = u.module_from_spec(s); s.loader.exec_module(m); sys.exit(m.main(sys.argv[2:]))"
)
_META_ORDER = ("episode_return", "episode_dynamics", "episode_source", "episode_seed", "episode_terminated")


def write_frame(stream: BinaryIO, kind: str, arrays: Mapping[str, np.ndarray], doc: Any = None) -> None:
    """A JSON header line (kind, each array's name, dtype and shape, doc), then the arrays' raw bytes."""
    arrays = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    specs = [[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()]
    stream.write(json.dumps({"kind": kind, "arrays": specs, "doc": doc}).encode() + b"\n")
    for a in arrays.values():
        stream.write(a.tobytes())
    stream.flush()


def read_frame(stream: BinaryIO) -> tuple[str, dict[str, np.ndarray], Any] | None:
    line = stream.readline()
    if not line:
        return None  # the controller's process ended: everything committed so far stays
    header = json.loads(line)
    arrays = {}
    for name, dtype, shape in header["arrays"]:
        dt = np.dtype(dtype)
        size = dt.itemsize * int(np.prod(shape, dtype=np.int64))
        data = stream.read(size)
        if len(data) != size:
            raise EOFError(f"log frame cut short in array {name!r}")
        arrays[name] = np.frombuffer(data, dt).reshape(shape)
    return header["kind"], arrays, header["doc"]


class WriterProcess:
    """Handle on the writer process; `send` never blocks, `close` waits and reports a failed writer."""

    def __init__(self, path: Path):
        avoid = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, __file__, str(path), avoid],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, name="deploy-log-sender", daemon=True)
        self._thread.start()

    def send(self, kind: str, arrays: Mapping[str, np.ndarray], doc: Any = None) -> None:
        """Queue a frame. After a writer failure frames are dropped (the control loop goes on; `close`
        raises)."""
        if self._error is None:
            self._queue.put((kind, arrays, doc))

    def _pump(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            try:
                write_frame(self._proc.stdin, *item)
            except Exception as e:  # the writer died (or a bad frame); send() and close() report it
                self._error = e
                break

    def close(self, summary: Mapping[str, Any] | None, timeout: float = 120.0) -> None:
        self._queue.put(("close", {}, summary))
        self._queue.put(None)
        self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._proc.stdin.close()
        rc = self._proc.wait(timeout)
        err = self._proc.stderr.read().decode(errors="replace").strip()
        self._proc.stderr.close()
        if rc != 0 or self._error is not None:
            raise RuntimeError(f"deployment log writer failed (exit code {rc}): {err[-2000:] or self._error}")


def serve(path: str, stream: BinaryIO) -> None:
    """Apply frames to the store at `path` until a `close` frame (or the end of the stream)."""
    import zarr

    root = zarr.open_group(path, mode="r+")
    while (frame := read_frame(stream)) is not None:
        kind, arrays, doc = frame
        if kind == "data":
            for name, values in arrays.items():
                root[f"data/{name}"].append(values, axis=0)
        elif kind == "meta":
            for name in (*_META_ORDER, "episode_ends"):  # episode_ends last: the commit marker
                root[f"meta/{name}"].append(arrays[name], axis=0)
        elif kind == "close":
            if doc:
                root.attrs["deploy"] = {**dict(root.attrs.get("deploy", {})), **doc}
            return
        else:
            raise ValueError(f"unknown log frame kind {kind!r}")


def _leave_cpus(avoid: str) -> None:
    """Run off the controller's CPUs (when there are others) and below its priority."""
    busy = {int(c) for c in avoid.split(",") if c}
    others = set(range(os.cpu_count() or 1)) - busy
    if others:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, others)
    os.nice(10)


def main(argv: list[str]) -> int:
    path, avoid = argv[0], argv[1] if len(argv) > 1 else ""
    _leave_cpus(avoid)
    serve(path, sys.stdin.buffer)
    return 0
