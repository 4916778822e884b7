"""Stop signals: SIGTERM and SIGHUP mean what SIGINT means, wherever a controller runs.

`docker stop`, compose and systemd send SIGTERM; a closed terminal or ssh session sends SIGHUP; Ctrl-C
sends SIGINT. Inside `Controller.run` each of them stops the loop cleanly (safe action, stop message,
log committed). Outside the loop (connecting, between episodes) `interrupts()` turns SIGTERM/SIGHUP
into the `KeyboardInterrupt` SIGINT already raises there, so the same cleanup runs; `shielded()`
keeps a second signal from cutting that cleanup short (the log commit, the robot's stop message).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_REASONS = tuple(s.name.lower() for s in STOP_SIGNALS)  # ("sigint", "sigterm", "sighup")


class Stopped(KeyboardInterrupt):
    """A stop signal arrived outside the control loop; `reason` is "sigint", "sigterm" or "sighup"."""

    def __init__(self, reason: str = "sigint"):
        super().__init__(reason)
        self.reason = reason


def reason_of(signum: int) -> str:
    return signal.Signals(signum).name.lower()


def install(
    handler: Callable[[int], None], signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> dict[int, object] | None:
    """Route `signals` (every stop signal) to `handler(signum)`; returns the previous handlers (None off the
    main thread, where Python cannot install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {s: signal.signal(s, lambda signum, _frame: handler(signum)) for s in signals}


def restore(old: dict[int, object] | None) -> None:
    for s, h in (old or {}).items():
        signal.signal(s, h)


def _raise(signum: int) -> None:
    raise Stopped(reason_of(signum))


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """Within: every stop signal raises `Stopped` (a KeyboardInterrupt), as SIGINT does by default."""
    old = install(_raise)
    try:
        yield
    finally:
        restore(old)


@contextlib.contextmanager
def terminations() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise `Stopped` as SIGINT raises KeyboardInterrupt, so a long stage
    (`sim2real train-teacher`, `distill`, ...) stopped by `docker stop`, systemd or a closed session saves its
    checkpoint as Ctrl-C does. SIGINT keeps Python's own handling: a background job that ignores it still
    does."""
    old = install(_raise, (signal.SIGTERM, signal.SIGHUP))
    try:
        yield
    finally:
        restore(old)


@contextlib.contextmanager
def shielded() -> Iterator[list[str]]:
    """Within: stop signals are noted (the yielded list gets their reasons), not raised, so cleanup
    that must finish (committing the log, the robot's stop message) is not interrupted."""
    seen: list[str] = []
    old = install(lambda signum: seen.append(reason_of(signum)))
    try:
        yield seen
    finally:
        restore(old)
