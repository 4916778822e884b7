"""One writer per store: a lock file beside the store, created with O_EXCL and holding the writer's pid.

A lock left by a process that died (kill -9) is taken over; a live writer's lock refuses the second
writer with a message naming the store and the pid. The lock lives beside the store
(`demos.zarr.lock`), not inside it, so Zarr never sees a foreign file in the hierarchy.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from sim2real.errors import UserError


def lock_path(store: str | Path) -> Path:
    p = Path(store).resolve()
    return p.with_name(p.name + ".lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner(path: Path) -> tuple[int | None, str]:
    try:
        text = path.read_text().split()
    except FileNotFoundError:
        return None, ""
    try:
        return int(text[0]), text[1] if len(text) > 1 else ""
    except (IndexError, ValueError):
        return None, ""  # half-written by a writer killed between create and write: stale


class StoreLock:
    """`with StoreLock(path):` holds the write lock of the store at `path`."""

    def __init__(self, store: str | Path):
        self.store = Path(store)
        self.path = lock_path(store)
        self.held = False

    def acquire(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}\n")
            self.held = True
            return self
        raise UserError(f"{self.store}: could not take the write lock {self.path}")

    def _take_over_if_stale(self) -> None:
        pid, host = _owner(self.path)
        same_host = host in ("", socket.gethostname())
        if pid is not None and (not same_host or _alive(pid)):
            where = "" if same_host else f" on host {host}"
            raise UserError(
                f"{self.store} is being written by another process (pid {pid}{where}); wait for it to "
                f"finish, or write a separate store and `sim2real data merge` them "
                f"(if that process is gone, remove {self.path})"
            )
        # stale: rename it away (atomic: of two racing takers only one moves it), then retry
        tmp = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}")
        try:
            os.replace(self.path, tmp)
        except FileNotFoundError:
            return
        moved, _ = _owner(tmp)
        if moved != pid and moved is not None and _alive(moved):
            # a racing taker had already replaced the stale lock with its own: put that one back
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.path)
        tmp.unlink(missing_ok=True)

    def release(self) -> None:
        if self.held:
            pid, _ = _owner(self.path)
            if pid == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
