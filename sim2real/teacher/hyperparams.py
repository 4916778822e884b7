"""RL Zoo-style hyperparameters from YAML to Stable-Baselines3 constructor arguments, checked by name."""

from __future__ import annotations

import inspect
from typing import Any

from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from sim2real.errors import UserError

TRAINABLE: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
# algorithms an SB3 zip expert may have been trained with
LOADABLE: dict[str, type[BaseAlgorithm]] = {**TRAINABLE, "td3": TD3, "a2c": A2C, "ddpg": DDPG}
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}
# arguments sim2real sets itself
_OWN = ("policy", "env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model")
_SCHEDULES = ("learning_rate", "clip_range", "clip_range_vf")


def sb3_kwargs(algo: str, hyperparams: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs for `TRAINABLE[algo]`; UserError naming `teacher.<algo>.hyperparams.<key>`."""
    where = f"teacher.{algo}.hyperparams"
    accepted = set(inspect.signature(TRAINABLE[algo].__init__).parameters) - {"self", *_OWN}
    for key in hyperparams:
        if key in _OWN:
            raise UserError(f"{where}.{key}: set by sim2real, not a hyperparameter")
        if key not in accepted:
            raise UserError(
                f"{where}.{key}: not an argument of SB3 {algo.upper()} (known: {', '.join(sorted(accepted))})"
            )
    kwargs = dict(hyperparams)
    for key in _SCHEDULES:
        if isinstance(kwargs.get(key), str):
            kwargs[key] = _schedule(kwargs[key], f"{where}.{key}")
    if isinstance(kwargs.get("train_freq"), list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = _policy_kwargs(dict(kwargs["policy_kwargs"]), f"{where}.policy_kwargs")
    return kwargs


def _schedule(value: str, where: str) -> LinearSchedule:
    """`lin_<start>`: linear decay from start to 0 over training, as the RL Zoo writes it."""
    try:
        start = float(value.removeprefix("lin_")) if value.startswith("lin_") else None
    except ValueError:
        start = None
    if start is None:
        raise UserError(f"{where}={value!r}: expected a number or lin_<number>")
    return LinearSchedule(start, 0.0, 1.0)


def _policy_kwargs(pk: dict[str, Any], where: str) -> dict[str, Any]:
    act = pk.get("activation_fn")
    if isinstance(act, str):
        if act not in ACTIVATIONS:
            raise UserError(f"{where}.activation_fn={act!r}: expected one of {', '.join(ACTIVATIONS)}")
        pk["activation_fn"] = ACTIVATIONS[act]
    return pk
