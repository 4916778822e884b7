"""`teacher.init_from`: start a new teacher from a trained one, for the same robot on another task.

legged_gym trains rough-ground walkers by curriculum; the cheapest curriculum is a teacher that already
walks on flat ground. Its weights are copied into the new model input by input, matched by privileged
observation name: an input the old teacher never saw (the rough task's height scan) starts with zero
weights, so the new teacher first acts exactly as the old one, then learns what the new inputs are for.
The observation statistics come along the same way; they weigh as `PRIOR_COUNT` observations, so they
follow the new task's data within the first few hundred thousand steps. A teacher trained blind to some
inputs (`teacher.blind_params`) saw zeros there, so its weights on them never left their random start: they
are copied as zeros, and the new teacher acts as the old one whether or not it sees those inputs.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

import envs
from envs import parameters
from sim2real.errors import UserError
from sim2real.teacher.policy import load_teacher, read_info

PRIOR_COUNT = 10_000.0  # observations the copied statistics weigh as
MIN_VAR = 1e-4  # floor of a new input's first variance estimate


def privileged_names(task: str) -> tuple[str, ...]:
    """The names of a task's privileged observation entries; a base without names gets task-private ones,
    so two tasks share an input only where both name it."""
    env = gym.make(envs.env_id(task))
    try:
        u = env.unwrapped
        physical = parameters.physical(task)
        base = getattr(u.base, "obs_names", None)
        if base is None:
            base = [f"{task}:obs/{i}" for i in range(u.privileged_dim - len(physical))]
        return (*base, *(f"param/{n}" for n in physical))
    finally:
        env.close()


def warm_start(model: BaseAlgorithm, venv: VecNormalize, source: Path, task: str) -> str:
    """Copy the teacher in `source` into `model` (new, for `task`) and its statistics into `venv`; a line
    saying what was copied."""
    info = read_info(source)
    if info["algo"] != type(model).__name__.lower():
        algo = type(model).__name__
        raise UserError(f"teacher.init_from={source}: a {info['algo']} teacher, this run trains {algo}")
    old_names, new_names = privileged_names(info["task"]), privileged_names(task)
    missing = [n for n in old_names if n not in new_names]
    if missing:
        raise UserError(
            f"teacher.init_from={source}: its task {info['task']!r} observes {missing[:4]} "
            f"({len(missing)} inputs) that task {task!r} lacks"
        )
    columns = np.array([new_names.index(n) for n in old_names])  # (D_old,) new column of each old input
    teacher = load_teacher(source)
    blind = teacher.normalizer.hidden if teacher.normalizer is not None else ()
    _copy_weights(teacher.model.policy, model.policy, columns, len(new_names), source, blind)
    fresh = _copy_statistics(teacher.normalizer, venv, columns)
    return (
        f"train-teacher: started from {source} ({info['task']}, step {info.get('checkpoint_step')}); "
        f"{len(new_names) - len(old_names)} new inputs at zero weight; statistics weigh {fresh} observations"
    )


def _copy_weights(
    old: torch.nn.Module,
    new: torch.nn.Module,
    columns: np.ndarray,
    width: int,
    source: Path,
    blind: tuple[int, ...] = (),
) -> None:
    """Equal shapes are copied; an input layer (out, D_old + k) goes to columns `columns` of (out, width + k),
    the k trailing inputs (a critic's action) after them, other columns zero. The old input layers' weights
    on `blind` (old columns the old teacher only ever saw as zero) are copied as zeros."""
    old_state, new_state = old.state_dict(), new.state_dict()
    old_state = {k: _zero_inputs(k, w, blind, len(columns)) for k, w in old_state.items()}
    if set(old_state) != set(new_state):
        odd = sorted(set(old_state) ^ set(new_state))[:4]
        raise UserError(f"teacher.init_from={source}: another network ({odd})")
    d_old = len(columns)
    if d_old == width and not np.array_equal(columns, np.arange(width)):
        raise UserError(f"teacher.init_from={source}: the same inputs in another order are not supported")
    index = torch.as_tensor(columns)
    out = {}
    for key, w_old in old_state.items():
        w_new = new_state[key]
        if w_old.shape == w_new.shape:
            out[key] = w_old.clone()
            continue
        k = w_old.shape[1] - d_old if w_old.ndim == 2 else -1
        if k < 0 or w_new.shape != (w_old.shape[0], width + k):
            raise UserError(
                f"teacher.init_from={source}: {key} is {tuple(w_old.shape)} there and "
                f"{tuple(w_new.shape)} here (another net_arch?)"
            )
        w = torch.zeros_like(w_new)
        w[:, index] = w_old[:, :d_old]
        w[:, width:] = w_old[:, d_old:]
        out[key] = w
    new.load_state_dict(out)


def _zero_inputs(key: str, w: torch.Tensor, blind: tuple[int, ...], d_old: int) -> torch.Tensor:
    """`w` with its columns `blind` zeroed if it is an input layer: the first Linear of one of SB3's MLPs
    (`mlp_extractor.policy_net.0.weight`, `actor.latent_pi.0.weight`, `critic.qf0.0.weight`, ...)."""
    if not blind or w.ndim != 2 or not key.endswith(".0.weight") or w.shape[1] < d_old:
        return w
    w = w.clone()
    w[:, list(blind)] = 0.0
    return w


def _copy_statistics(normalizer, venv: VecNormalize, columns: np.ndarray) -> int:
    """The old statistics where the old teacher had them, the new inputs' first from a reset batch; the
    observations they all weigh as."""
    if not venv.norm_obs:
        return 0
    if normalizer is None:
        raise UserError("teacher.init_from: that teacher was trained without observation statistics")
    rms = venv.obs_rms
    first = np.asarray(venv.venv.reset(), np.float64)  # (n_envs, D) raw observations of fresh episodes
    mean, var = first.mean(axis=0), np.maximum(first.var(axis=0), MIN_VAR)
    mean[columns], var[columns] = normalizer.mean, normalizer.var
    count = min(normalizer.count, PRIOR_COUNT)
    rms.mean, rms.var, rms.count = mean, var, count
    return int(count)
