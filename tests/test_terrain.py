"""Rough terrain (`envs.terrain`) and the Go2 on it (`task=go2_rough`)."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from envs import go2, parameters, terrain

NOMINAL = {**parameters.nominal("go2_rough"), "obs_noise_scale": 0.0}


@pytest.fixture(scope="module")
def env():
    env = gym.make("sim2real/Go2Rough-v0")
    yield env
    env.close()


def test_terrain_heights_are_the_heights_mujoco_collides_with(env):
    """`Terrain.height` (the teacher's scan, the spawn and the fall rule) agrees with a ray cast on the
    compiled heightfield, on every kind of tile and past the map's edge (the floor)."""
    model = env.unwrapped.model
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    t = env.unwrapped.base.terrain
    rng = np.random.default_rng(0)
    hx, hy = t.half
    points = rng.uniform([-hx, -hy], [hx, hy], size=(200, 2))
    points = np.vstack([points, [[hx + 3.0, 0.0], [0.0, -hy - 3.0]]])
    geomid = np.zeros(1, np.int32)
    for xy in points:
        depth = mujoco.mj_ray(
            model, data, np.array([*xy, 5.0]), np.array([0.0, 0.0, -1.0]), None, 1, -1, geomid
        )
        assert 5.0 - depth == pytest.approx(float(t.height(xy)), abs=2e-3)
    assert t.heights.min() >= 0.0 and t.top > 0.3  # stairs and slopes rise; nothing dips below the floor


def test_terrain_rows_get_harder_with_the_level():
    t = terrain.generate(0)
    n = round(terrain.TILE / terrain.RES)

    def roughness(level: int, kind: int) -> float:
        cx, cy = t.tile_centre(level, kind)
        xs = np.linspace(cx - 3.5, cx + 3.5, n)
        heights = t.height(np.stack(np.meshgrid(xs, np.linspace(cy - 3.5, cy + 3.5, n)), -1))
        return float(np.abs(np.diff(heights, axis=1)).mean())

    for kind in range(len(terrain.KINDS)):
        steps = [roughness(level, kind) for level in range(terrain.LEVELS)]
        assert steps == sorted(steps) and steps[-1] > 2 * steps[0], terrain.KINDS[kind]
    assert np.array_equal(terrain.generate(0).heights, t.heights)  # a function of its seed


def test_terrain_names_the_kind_of_tile_under_a_point_and_the_border_off_the_tiles():
    t = terrain.generate(0)
    for level in range(terrain.LEVELS):
        for k, kind in enumerate(terrain.KINDS):
            centre = t.tile_centre(level, k)
            assert t.kind_at(centre + terrain.TILE / 2 - 0.01) == kind  # a corner of the tile
            assert t.kind_at(centre - terrain.TILE / 2 + 0.01) == kind
    hx, hy = t.half
    assert t.kind_at(np.array([0.0, -hy + 1.0])) == "border"
    assert t.kind_at(np.array([hx + 5.0, 0.0])) == "border"  # past the map's edge


@pytest.mark.parametrize("level", [0.0, 1.0])
def test_rough_go2_starts_on_its_levels_row_above_the_ground_and_stands(env, level):
    env.reset(seed=4, options={"dynamics": {**NOMINAL, "terrain_level": level}})
    base = env.unwrapped.base
    t = base.terrain
    row = round(level * (terrain.LEVELS - 1))
    y0 = t.tile_centre(row, 0)[1]
    assert abs(base.data.qpos[1] - y0) <= terrain.TILE / 2  # on the row of its difficulty
    for _ in range(50):  # 1 s of the standing pose's targets
        _obs, _, terminated, _, info = env.step(np.zeros(12))
        assert not terminated
    assert info["ground"] == t.kind_at(base.data.qpos[:2]) != "border"  # where it stands, for fall reports
    feet = base.data.geom_xpos[base.rules.foot_geoms]  # (4, 3)
    soles = feet[:, 2] - base.model.geom_size[base.rules.foot_geoms, 0]
    assert np.all(soles >= t.height(feet[:, :2]) - 0.01)  # on the heightfield, not through it


def test_rough_go2_teacher_sees_the_ground_around_each_foot(env):
    obs, _ = env.reset(seed=6, options={"dynamics": {**NOMINAL, "terrain_level": 0.5}})
    for _ in range(10):
        obs, *_ = env.step(np.zeros(12))
    base = env.unwrapped.base
    names = go2.BASE_OBS + go2.SCAN_OBS
    scan = obs["privileged"][len(go2.BASE_OBS) : len(names)]
    feet = base.data.geom_xpos[base.rules.foot_geoms, :2]  # (4, 2)
    want = base.data.qpos[2] - base.terrain.height(feet[:, None, :] + go2.SCAN)  # (4, 5)
    np.testing.assert_allclose(scan, want.ravel(), rtol=1e-5, atol=1e-5)
    flat = gym.make("sim2real/Go2-v0")
    assert flat.unwrapped.privileged_dim == env.unwrapped.privileged_dim - len(go2.SCAN_OBS) - 1  # - level


def test_rough_go2_base_height_is_above_the_ground_under_the_trunk_as_on_flat_ground(env):
    """A flat teacher's base_height means the same on a stair top: world z there is ~0.2 m higher."""
    column = go2.BASE_OBS.index("base_height")
    heights = []
    for seed in range(12):
        obs, _ = env.reset(seed=seed, options={"dynamics": {**NOMINAL, "terrain_level": 1.0}})
        for _ in range(25):
            obs, *_ = env.step(np.zeros(12))
        base = env.unwrapped.base
        ground = base.terrain.height(base.data.qpos[None, :2])[0]
        assert obs["privileged"][column] == pytest.approx(base.data.qpos[2] - ground, abs=1e-5)
        heights.append((obs["privileged"][column], ground))
    standing = gym.make("sim2real/Go2-v0")
    flat_nominal = {**parameters.nominal("go2"), "obs_noise_scale": 0.0}
    flat, _ = standing.reset(seed=0, options={"dynamics": flat_nominal})
    for _ in range(25):
        flat, *_ = standing.step(np.zeros(12))
    assert max(g for _, g in heights) > 0.1  # some robots stand on high ground
    for h, _ in heights:  # and every one reads the standing height it reads on flat ground
        assert h == pytest.approx(flat["privileged"][column], abs=0.08)  # slopes, step edges: a few cm
