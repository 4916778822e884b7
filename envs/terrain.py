"""Procedural rough terrain for legged tasks: one heightfield of tiles, rows by difficulty, columns by kind.

As legged_gym's terrain: each 8 m tile is one kind (random bumps, a pyramid slope, pyramid stairs, scattered
blocks) at one difficulty, from gentle (first row) to the hardest (last row); a flat border surrounds the
tiles. A robot starts near a tile's centre, on the row its episode's `terrain_level` picks, so one map
shared by every simulation (MuJoCo keeps heightfield data per model, not per `mujoco.batch` simulation)
gives every episode its own ground. Heights are never below 0: the floor plane, 1 cm below, is the
ground past the map's edge. The map is a function of its seed (numpy); `compile_with` adds it to a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

TILE, RES, BORDER = 8.0, 0.05, 12.0  # m: tile side, cell size, flat border around the tiles
KINDS = ("bumps", "slope", "stairs", "blocks")
LEVELS = 5  # rows of difficulty
SPAWN_SPREAD = 1.0  # m: start within ± this of a tile's centre
STEP_WIDTH = 0.4  # m
FLOOR = -0.01  # m: the floor plane, the ground past the map's edge


@dataclass(frozen=True)
class Terrain:
    """Heights (ny, nx) in metres on a grid of `RES` cells whose centre is the world origin."""

    heights: np.ndarray  # (ny, nx), row i at y = -half_y + i·RES, column j at x = -half_x + j·RES

    @property
    def half(self) -> tuple[float, float]:
        """(half_x, half_y): the heightfield's `size[0:2]` in MJCF."""
        ny, nx = self.heights.shape
        return (nx - 1) * RES / 2, (ny - 1) * RES / 2

    @property
    def top(self) -> float:
        return float(self.heights.max())

    def height(self, xy: np.ndarray) -> np.ndarray:
        """Ground height (...,) under points xy (..., 2), bilinear as MuJoCo's triangles nearly are; the
        floor past the map's edge."""
        hx, hy = self.half
        ny, nx = self.heights.shape
        u = (xy[..., 0] + hx) / RES  # (...,) fractional column
        v = (xy[..., 1] + hy) / RES
        inside = (u >= 0) & (u <= nx - 1) & (v >= 0) & (v <= ny - 1)
        j = np.clip(np.floor(u).astype(np.int64), 0, nx - 2)
        i = np.clip(np.floor(v).astype(np.int64), 0, ny - 2)
        fu, fv = np.clip(u - j, 0.0, 1.0), np.clip(v - i, 0.0, 1.0)
        h = self.heights
        top = h[i, j] * (1 - fu) + h[i, j + 1] * fu
        bottom = h[i + 1, j] * (1 - fu) + h[i + 1, j + 1] * fu
        return np.where(inside, top * (1 - fv) + bottom * fv, FLOOR)

    def tile_centre(self, level: int, kind: int) -> np.ndarray:
        """(2,) world xy of the centre of the tile at row `level`, column `kind`."""
        hx, hy = self.half
        return np.array([-hx + BORDER + (kind + 0.5) * TILE, -hy + BORDER + (level + 0.5) * TILE])

    def kind_at(self, xy: np.ndarray) -> str:
        """The kind of tile under world point xy (2,), or "border" off the tiles: where a robot fell."""
        hx, hy = self.half
        col, row = int((xy[0] + hx - BORDER) // TILE), int((xy[1] + hy - BORDER) // TILE)
        return KINDS[col] if 0 <= col < len(KINDS) and 0 <= row < LEVELS else "border"

    def spawn(self, rng: np.random.Generator, level: float) -> np.ndarray:
        """(2,) a start near the centre of a random-kind tile of difficulty `level` in [0, 1]."""
        kind = int(rng.integers(len(KINDS)))
        return self.tile_centre(row_of(level), kind) + rng.uniform(-SPAWN_SPREAD, SPAWN_SPREAD, size=2)


def row_of(level: float) -> int:
    """The map's row (0 gentlest to LEVELS - 1) an episode's `terrain_level` in [0, 1] starts on."""
    return round(float(np.clip(level, 0.0, 1.0)) * (LEVELS - 1))


def compile_with(xml: str, terrain: Terrain, floor: str = "floor") -> mujoco.MjModel:
    """The model of `xml` standing on `terrain`: a heightfield geom at the origin with the floor's
    friction, the floor itself lowered 1 cm (it is the ground past the map's edge)."""
    spec = mujoco.MjSpec.from_file(xml)
    ground = spec.geom(floor)
    ny, nx = terrain.heights.shape
    hx, hy = terrain.half
    top = max(terrain.top, 1e-3)
    spec.add_hfield(
        name="terrain", nrow=ny, ncol=nx, size=[hx, hy, top, 0.1], userdata=terrain.heights.ravel() / top
    )
    spec.worldbody.add_geom(
        name="terrain", type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname="terrain",
        contype=ground.contype, conaffinity=ground.conaffinity, friction=ground.friction,
    )  # fmt: skip
    ground.pos = [0.0, 0.0, FLOOR]
    return spec.compile()


def generate(seed: int = 0) -> Terrain:
    """The map: `LEVELS` rows × `KINDS` columns of tiles inside a flat border."""
    rng = np.random.default_rng(seed)
    n = round(TILE / RES)
    b = round(BORDER / RES)
    heights = np.zeros((2 * b + LEVELS * n + 1, 2 * b + len(KINDS) * n + 1))
    for level in range(LEVELS):
        difficulty = level / (LEVELS - 1)
        for k, kind in enumerate(KINDS):
            tile = _TILES[kind](rng, n, difficulty)  # (n, n)
            heights[b + level * n : b + (level + 1) * n, b + k * n : b + (k + 1) * n] = tile
    return Terrain(heights)


def _pyramid_distance(n: int) -> np.ndarray:
    """(n, n) distance in metres from the tile's edge, growing to its centre (a square pyramid)."""
    edge = np.minimum(np.arange(n), n - 1 - np.arange(n)) * RES
    return np.minimum(edge[:, None], edge[None, :])


def _bumps(rng: np.random.Generator, n: int, d: float) -> np.ndarray:
    """Random heights on a 0.25 m grid, up to 2 to 8 cm: uneven ground."""
    coarse = round(0.25 / RES)
    cells = rng.uniform(0.0, 0.02 + 0.06 * d, size=(n // coarse + 1, n // coarse + 1))
    return np.kron(cells, np.ones((coarse, coarse)))[:n, :n]


def _slope(rng: np.random.Generator, n: int, d: float) -> np.ndarray:
    """A pyramid, grade 5% to 30% (3° to 17°), with a flat 2 m top."""
    grade = 0.05 + 0.25 * d
    return grade * np.minimum(_pyramid_distance(n), TILE / 2 - 1.0)


def _stairs(rng: np.random.Generator, n: int, d: float) -> np.ndarray:
    """Pyramid stairs, steps 0.4 m deep and 3 to 10 cm high, a flat 2 m top."""
    step = 0.03 + 0.07 * d
    return step * np.floor(np.minimum(_pyramid_distance(n), TILE / 2 - 1.0) / STEP_WIDTH)


def _blocks(rng: np.random.Generator, n: int, d: float) -> np.ndarray:
    """Scattered flat-topped blocks, 0.4 to 1 m wide, 2 to 10 cm high; the centre 2 m kept flat."""
    tile = np.zeros((n, n))
    for _ in range(40):
        w = round(rng.uniform(0.4, 1.0) / RES)
        i, j = rng.integers(0, n - w, size=2)
        tile[i : i + w, j : j + w] = rng.uniform(0.02, 0.02 + 0.08 * d)
    c, r = n // 2, round(1.0 / RES)
    tile[c - r : c + r, c - r : c + r] = 0.0
    return tile


_TILES = {"bumps": _bumps, "slope": _slope, "stairs": _stairs, "blocks": _blocks}
