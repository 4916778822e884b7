"""Ray as an execution backend: connect (or start a local instance), run tasks with a bounded number in
flight, and turn Ray's failures into one-line errors that name the config key.

Collection (`sim2real.data.ray_collect`) and validation (`sim2real.validate.rollout`) use it with
`collect.backend=ray` / `validate.backend=ray`. Tasks are plain module-level functions, so a worker
imports them from the installed package (locally the same venv; on a cluster, the same install).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sim2real.errors import UserError

BACKENDS = ("local", "ray")
CONNECT_TIMEOUT_S = 5.0  # Ray itself retries an unreachable GCS address for minutes


def absolute(path: str | None) -> str | None:
    """A path a Ray worker can open whatever its working directory."""
    return None if path is None else str(Path(path).expanduser().resolve())


def check_backend(value: str, key: str) -> None:
    if value not in BACKENDS:
        raise UserError(f"{key}={value!r}: unknown backend; expected one of {', '.join(BACKENDS)}")


def _probe(address: str, key: str, shown: str | None = None) -> None:
    """Fail fast on a `host:port` / `ray://host:port` address that accepts no TCP connection."""
    shown = shown or repr(address)
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"{key}={shown}: expected 'auto', 'HOST:PORT' or 'ray://HOST:PORT'")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise UserError(f"{key}={shown}: no Ray cluster reachable there ({e})") from None


def _probe_auto(key: str) -> None:
    """`auto` means RAY_ADDRESS or the cluster `ray start` last recorded; Ray waits forever on a dead one."""
    from ray._private.utils import get_ray_address_file, read_ray_address

    found = os.environ.get("RAY_ADDRESS") or read_ray_address()
    if found and not found.startswith("ray://") and ":" in found:
        where = "RAY_ADDRESS" if os.environ.get("RAY_ADDRESS") else get_ray_address_file(None)
        _probe(found, key, f"'auto' ({found}, from {where})")


def _init(address: str | None, num_cpus: int | None, key: str) -> None:
    import ray

    if address == "auto":
        _probe_auto(key)
    elif address not in (None, "local"):
        _probe(address, key)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address in (None, "local"):  # a fresh local instance, never someone else's `ray start`
        kwargs.update(address="local", num_cpus=num_cpus)
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        # Ray sends its auth token only to clusters it found itself ("auto"), never to a named address
        named = address not in (None, "auto", "local") and "RAY_AUTH_MODE" not in os.environ
        hint = "; a cluster with token auth needs RAY_AUTH_MODE=token" if named else ""
        raise UserError(f"{key}={address!r}: cannot connect to Ray ({first}){hint}") from None


@contextlib.contextmanager
def session(address: str | None, workers: int | None, key: str) -> Iterator[None]:
    """Ray initialized for the block: an existing `ray.init` is used as is (and left running);
    otherwise a local instance (`address=None`, sized to max(workers, cores)) or a cluster by address
    is joined, and shut down on exit."""
    try:
        import ray
    except ImportError:
        backend = key.rsplit(".", 1)[0] + ".backend"
        raise UserError(f"{backend}=ray needs Ray: pip install 'sim2real[scale]'") from None

    if ray.is_initialized():
        yield
        return
    cpus = max(workers or 0, os.cpu_count() or 1) if address in (None, "local") else None
    _init(address, cpus, key)
    try:
        yield
    finally:
        ray.shutdown()


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def run_tasks(
    fn: Callable[..., Any],
    args: Sequence[tuple],
    workers: int | None,
    *,
    desc: str,
    weights: Sequence[int] | None = None,
    progress: bool = True,
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """`fn(*a)` for every `a` in `args` as Ray tasks (1 CPU each), at most `workers` (None: the
    cluster's CPUs) in flight; results in `args` order. `on_done(i, result)` runs on the driver as
    each task finishes; the bar advances by `weights[i]`. A task's own error is re-raised as itself."""
    import ray

    remote = ray.remote(num_cpus=1, max_retries=2)(fn)  # tasks are idempotent: a lost node reruns
    limit = workers or cluster_cpus()
    weights = weights or [1] * len(args)
    results: list[Any] = [None] * len(args)
    pending: dict[Any, int] = {}
    queue = iter(range(len(args)))
    bar = tqdm(total=sum(weights), desc=desc, disable=not progress)
    try:
        while True:
            while len(pending) < limit and (i := next(queue, None)) is not None:
                pending[remote.remote(*args[i])] = i
            if not pending:
                break
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            results[i] = _get(ref)
            bar.update(weights[i])
            if on_done is not None:
                on_done(i, results[i])
    finally:
        bar.close()
        for ref in pending:
            ray.cancel(ref, force=True)
    return results


def _get(ref: Any) -> Any:
    import ray
    from ray.exceptions import RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, UserError | ValueError | FileNotFoundError):
            raise cause from None
        raise
