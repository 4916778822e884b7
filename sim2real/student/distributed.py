"""Data-parallel distillation under `torchrun`: the process group, rank helpers, the sharded loss.

torchrun (or any launcher that sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) starts one
process per device. Every rank loads the whole store and draws the same global batch of windows from
the same seeded generator, then trains on its contiguous slice; DDP averages the gradients. A slice's
loss is normalized by the global batch's label count, so the averaged gradient is the full-batch
gradient of one process: the loss trajectory is that of `distill.batch_size` on one device.

Rank 0 alone writes (checkpoint, manifest, metrics, progress bar), evaluates and runs DAgger rollouts;
the others wait at a barrier and then reload the store, so multi-node runs need `run_dir` and the store
on a filesystem that every node sees.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor

from sim2real.data.sampler import WindowBatch
from sim2real.errors import UserError
from sim2real.student.optim import masked_mse

BACKENDS = ("nccl", "gloo", "mpi", "ucc", "xccl")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @classmethod
    def from_env(cls) -> World:
        """From torchrun's WORLD_SIZE / RANK / LOCAL_RANK; one process when WORLD_SIZE is unset."""
        env = os.environ
        if "WORLD_SIZE" not in env:
            return cls()
        try:
            size, rank = int(env["WORLD_SIZE"]), int(env.get("RANK", "0"))
            local = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError as e:
            raise UserError(f"bad torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK): {e}") from e
        if not 0 <= rank < size:
            raise UserError(f"RANK={rank} must be in 0..WORLD_SIZE-1={size - 1}")
        return cls(rank=rank, size=size, local_rank=local)


def local_batch_size(batch_size: int, world: World) -> int:
    """Windows per rank: `distill.batch_size` is the global batch, split evenly."""
    if batch_size % world.size:
        raise UserError(
            f"distill.batch_size={batch_size} is the global batch and must be divisible by the number of "
            f"processes (WORLD_SIZE={world.size})"
        )
    return batch_size // world.size


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """`distill.ddp_backend`: None picks nccl for CUDA and gloo for the CPU."""
    if backend is None:
        return "nccl" if device.type == "cuda" else "gloo"
    if backend not in BACKENDS:
        raise UserError(f"distill.ddp_backend={backend!r} is not one of {BACKENDS} (or null: automatic)")
    if backend == "nccl" and device.type != "cuda":
        raise UserError(f"distill.ddp_backend=nccl needs a CUDA device (device={device}); use gloo")
    return backend


def resolve_device(name: str) -> torch.device:
    """`device=auto|cpu|cuda[:i]`: auto picks CUDA when there is one; cuda without one is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={name}: CUDA is not available on this machine (use device=cpu)")
    return torch.device(name)


def rank_device(device: torch.device, world: World) -> torch.device:
    """One GPU per process: plain `cuda` becomes `cuda:LOCAL_RANK` under torchrun."""
    if device.type == "cuda" and device.index is None and world.distributed:
        device = torch.device("cuda", world.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def process_group(world: World, backend: str, device: torch.device, timeout_s: float) -> Iterator[World]:
    """The default process group for the duration of the block, destroyed also on errors."""
    if not world.distributed:
        yield world
        return
    dist.init_process_group(
        backend,
        rank=world.rank,
        world_size=world.size,
        timeout=timedelta(seconds=timeout_s),
        device_id=device if device.type == "cuda" else None,
    )
    try:
        yield world
    finally:
        dist.destroy_process_group()


def barrier(world: World, device: torch.device) -> None:
    if world.distributed:
        dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)


def sum_over_ranks(x: Tensor, world: World) -> Tensor:
    """Sum of `x` across ranks (in place; `x` itself with one process)."""
    if world.distributed:
        dist.all_reduce(x)
    return x


def shard(batch: WindowBatch, world: World) -> WindowBatch:
    """This rank's contiguous slice of a global batch (B, ...) -> (B / size, ...)."""
    if world.size == 1:
        return batch
    n = batch.obs.shape[0] // world.size
    lo = world.rank * n
    part = {f.name: getattr(batch, f.name) for f in fields(batch)}
    return WindowBatch(**{k: None if v is None else v[lo : lo + n] for k, v in part.items()})


def sharded_masked_mse(
    pred: Tensor, target: Tensor, mask: Tensor, global_mask: Tensor, world: World
) -> Tensor:
    """This rank's part of the global batch's masked MSE, scaled so that DDP's gradient average is the
    gradient of the whole batch's `masked_mse`: sum of this slice's squared errors / (global count / size).

    pred, target (b, K, Da); mask (b, K) bool of this slice; global_mask (B, K) bool of the whole batch.
    With one process it equals `optim.masked_mse`; the global loss is the mean of the ranks' values.
    """
    return masked_mse(pred, target, mask, count_mask=global_mask, parts=world.size)


def forwards(model: torch.nn.Module, world: World, device: torch.device, compile_: bool):
    """(evaluation forward, training forward); across processes the training one is DDP's, which
    broadcasts rank 0's weights (and normalizer) once and averages gradients at every step."""
    maybe_compile = torch.compile if compile_ and device.type == "cuda" else (lambda m: m)
    if not world.distributed:
        forward = maybe_compile(model)
        return forward, forward
    ids = [device.index] if device.type == "cuda" else None
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)
    return maybe_compile(model), maybe_compile(ddp)
