"""HalfCheetah: Gymnasium's HalfCheetah-v5 model and reward, randomized, with a student/privileged split."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import mujoco
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from envs.legged import make_legged

_TOTAL_MASS = re.compile(r'\s+settotalmass="([^"]+)"')


class HalfCheetahBase(HalfCheetahEnv):
    """HalfCheetah-v5 with its `settotalmass` applied after compiling, as MuJoCo 4 asks (the compiler
    attribute is deprecated and warns on every env made); the masses are bit-identical to -v5's."""

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        xml = Path(self.fullpath).read_text()
        total = _TOTAL_MASS.search(xml)
        model = mujoco.MjModel.from_xml_string(_TOTAL_MASS.sub("", xml))
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        data = mujoco.MjData(model)
        if total is not None:
            mujoco.mj_setTotalmass(model, float(total.group(1)))
            mujoco.mj_setConst(model, data)
        return model, data


def make_task(randomization: dict | None = None, **kwargs: Any):
    return make_legged(HalfCheetahBase, "halfcheetah", randomization, **kwargs)
