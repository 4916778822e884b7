"""The deployment log's writer process: Zarr work away from the control loop's interpreter.

Zarr appends are Python-heavy; in a thread of the controller's process they hold the GIL for
milliseconds and the loop misses deadlines. `WriterProcess` runs `main(PATH)` in a child Python
(SCHED_BATCH, nice 10), off the controller's CPUs, and streams it frames over a pipe: one JSON header
line, then the header's arrays as raw bytes (no pickles). The control thread itself writes the pipe,
non-blocking: what the pipe does not take now waits in a queue that each step's `pump()` drains, so a
slow disk never blocks a step, and no second thread of this process competes for the GIL (a sender
thread did, and delayed wake-ups by milliseconds whenever the OS preempted it while it held the GIL).

Every append writes the new rows first and publishes the new length after (as `DemoStore` does), and a
`meta` frame's arrays come in write order with `episode_ends` last: a reader never sees a row that is
not written yet. The writer ignores stop signals (systemd signals the whole group; Ctrl-C the whole
foreground group): it ends when its input does, after applying every whole frame it got, so a killed
controller loses only what it had not handed over yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sim2real.data.schema import append_rows

# the child loads this file alone (not the sim2real.deploy package, whose imports it does not need)
_ENTRY = (
    "import importlib.util as u, sys; s = u.spec_from_file_location('sim2real_log_writer', sys.argv[1]); "
    "m = u.module_from_spec(s); s.loader.exec_module(m); sys.exit(m.main(sys.argv[2:]))"
)
UNFINISHED = "unfinished_episodes"  # key in the `deploy` attribute: episodes that have not ended (yet)


def encode_frame(kind: str, arrays: Mapping[str, np.ndarray], doc: Any = None) -> list[memoryview]:
    """A JSON header line (kind, each array's name, dtype and shape, doc), then the arrays' raw bytes;
    the arrays are not copied (the caller leaves them alone until they are written)."""
    arrays = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    specs = [[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()]
    header = json.dumps({"kind": kind, "arrays": specs, "doc": doc}).encode() + b"\n"
    return [memoryview(header), *(memoryview(a.reshape(-1).view(np.uint8)) for a in arrays.values())]


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
    """Handle on the writer process: `send` and `pump` never block, `close` waits for everything and
    reports a failed writer."""

    def __init__(self, path: Path, on_failure: Callable[[], None] | None = None):
        avoid = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, __file__, str(path), avoid],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self._fd = self._proc.stdin.fileno()
        with contextlib.suppress(AttributeError, OSError):  # Linux: room for a few chunks in the pipe
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        os.set_blocking(self._fd, False)
        self._pending: deque[memoryview] = deque()  # frame pieces the pipe has not taken yet
        self._error: BaseException | None = None
        self._on_failure = on_failure  # called once when the writer is found dead (from the loop)

    def send(self, kind: str, arrays: Mapping[str, np.ndarray], doc: Any = None) -> None:
        """Queue a frame and write what the pipe takes now. After a writer failure frames are dropped
        (the control loop goes on; `close` raises)."""
        if self._error is None:
            self._pending.extend(encode_frame(kind, arrays, doc))
            self.pump()

    def pump(self) -> None:
        """Write queued bytes until the pipe is full (non-blocking)."""
        pending = self._pending
        while pending:
            head = pending[0]
            try:
                n = os.write(self._fd, head)
            except BlockingIOError:
                return
            except OSError as e:  # the writer died: send() drops frames, close() reports it
                self._error = e
                pending.clear()
                if self._on_failure is not None:
                    self._on_failure()
                return
            if n == len(head):
                pending.popleft()
            else:
                pending[0] = head[n:]

    def close(self, summary: Mapping[str, Any] | None, timeout: float = 120.0) -> None:
        """Hand over everything queued (a writer that takes nothing for `timeout` s is killed), wait
        for it to commit, raise if it failed."""
        self.send("close", {}, summary)
        deadline = time.monotonic() + timeout
        while self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [self._fd], [], remaining)[1]:
                self._proc.kill()
                self._error = TimeoutError(f"the writer took no data for {timeout:.0f} s")
                break
            self.pump()
        with contextlib.suppress(OSError):
            self._proc.stdin.close()
        rc = self._proc.wait(timeout)
        err = self._proc.stderr.read().decode(errors="replace").strip()
        self._proc.stderr.close()
        if rc != 0 or self._error is not None:
            reason = err.splitlines()[-1] if err else str(self._error)
            raise RuntimeError(f"deployment log writer failed (exit code {rc}): {reason}")


def serve(path: str, stream: BinaryIO) -> None:
    """Apply frames to the store at `path` until a `close` frame (or the end of the stream)."""
    import zarr

    root = zarr.open_group(path, mode="r+")
    while (frame := read_frame(stream)) is not None:
        kind, arrays, doc = frame
        if kind == "data":
            for name, values in arrays.items():
                append_rows(root[f"data/{name}"], values)
        elif kind == "meta":
            _commit_episode(root, arrays)
        elif kind == "close":
            if doc:
                root.attrs["deploy"] = {**dict(root.attrs.get("deploy", {})), **doc}
            return
        else:
            raise ValueError(f"unknown log frame kind {kind!r}")


def _commit_episode(root, arrays: Mapping[str, np.ndarray]) -> None:
    """Append one episode's meta row in the frame's order (episode_ends last). A segment of a running
    episode (`continued`) is listed in `deploy.unfinished_episodes` before it is written; an episode's
    last segment clears the list once written."""
    index = root["meta/episode_ends"].shape[0]
    continued = bool(arrays["continued"][0])
    if continued:
        _set_unfinished(root, [*_unfinished(root), index])
    for name, values in arrays.items():
        append_rows(root[f"meta/{name}"], values)
    if not continued and _unfinished(root):
        _set_unfinished(root, [])


def _unfinished(root) -> list[int]:
    return list(dict(root.attrs.get("deploy", {})).get(UNFINISHED, []))


def _set_unfinished(root, indices: list[int]) -> None:
    root.attrs["deploy"] = {**dict(root.attrs.get("deploy", {})), UNFINISHED: indices}


def _leave_cpus(avoid: str) -> None:
    """Run off the controller's CPUs (when there are others), below its priority and without waking
    into its time: SCHED_BATCH never preempts a running task on wake-up, and nice 10 keeps a share of
    a busy CPU (SCHED_IDLE starved the writer for minutes on a fully loaded machine)."""
    busy = {int(c) for c in avoid.split(",") if c}
    others = set(range(os.cpu_count() or 1)) - busy
    if others:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, others)
    with contextlib.suppress(AttributeError, OSError):  # Linux only
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    os.nice(10)


def main(argv: list[str]) -> int:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the controller decides when to stop
        signal.signal(s, signal.SIG_IGN)
    path, avoid = argv[0], argv[1] if len(argv) > 1 else ""
    _leave_cpus(avoid)
    try:
        serve(path, sys.stdin.buffer)
    except Exception as e:  # one line for the controller's message (full disk, store removed, ...)
        print(f"{type(e).__name__}: {e}".replace("\n", " "), file=sys.stderr)
        return 1
    return 0
