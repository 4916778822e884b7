"""`DemoStore`: the schema-v1 Zarr store of demonstrations; crash-safe appends, checked reads.

Write order is what makes a `kill -9` harmless: each array's new rows are written before its new
length is published, and `meta/episode_ends` is extended last, so a reader (or a resumed writer)
sees exactly the episodes committed before the crash. Zarr's LocalStore replaces files atomically,
so rewriting a chunk that holds committed rows never exposes half a chunk.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from sim2real.artifacts import code_version, utc_now
from sim2real.data import checks
from sim2real.data.lock import StoreLock
from sim2real.data.schema import (
    DATA_ARRAYS,
    META_ARRAYS,
    SCHEMA,
    SCHEMA_VERSION,
    Episode,
    StoreSpec,
    append_rows,
    chunk_rows,
    joined_ends,
    joined_sums,
)
from sim2real.errors import UserError

_FILL = {"f4": float("nan"), "i4": -1, "i8": -1, "bool": False}


def _json(obj: Any) -> Any:
    """Plain JSON types (numpy scalars and paths become numbers and strings)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def stored_path(path: str | Path) -> Path:
    return Path(path).expanduser()


def exists(path: str | Path) -> bool:
    return (stored_path(path) / "zarr.json").is_file()


def _garbled_json(path: Path) -> Path | None:
    """The first `zarr.json` under a store that does not parse (what a failed open names)."""
    for f in sorted(path.rglob("zarr.json")):
        try:
            json.loads(f.read_bytes())
        except ValueError:
            return f
    return None


class DemoStore:
    """A demonstration store. `DemoStore.open(path)` reads; `open(path, "a")`/`create` write (locked)."""

    def __init__(self, path: Path, group: zarr.Group, lock: StoreLock | None):
        self.path, self._group, self._lock = path, group, lock
        self.spec = StoreSpec.from_attrs(group.attrs, str(path))
        self._arrays: dict[str, zarr.Array] = {}
        # episode_ends first: every other array's length, read after it, covers what it commits
        for name in (
            "meta/episode_ends",
            *(f"data/{k}" for k in DATA_ARRAYS),
            *(f"meta/{k}" for k in META_ARRAYS),
        ):
            try:
                self._arrays[name.split("/")[1]] = group[name]
            except KeyError:
                raise UserError(f"{path}: missing array {name}") from None
            if name == "meta/episode_ends":
                # the array just opened: a second `group[name]` may see a later commit's longer shape
                self._ends = np.asarray(self._arrays["episode_ends"][:], dtype=np.int64)
        if lock is None:  # a reader: source table as of now, so it names every committed episode's source
            self._group = zarr.open_group(path, mode="r", zarr_format=3)

    # ---- opening -------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, spec: StoreSpec, overwrite: bool = False) -> DemoStore:
        """A new empty store at `path`, locked for writing (an existing one is an error unless overwrite).

        It is built in a temporary directory and renamed into place, so no reader ever sees half a store.
        """
        path = stored_path(path)
        lock = StoreLock(path).acquire()
        try:
            if path.exists() and not overwrite and (exists(path) or any(path.iterdir())):
                raise UserError(f"{path} already exists (remove it, or open it to append)")
            tmp = path.with_name(f".{path.name}.creating.{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            _build(tmp, spec)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
            return cls(path, zarr.open_group(path, mode="r+", zarr_format=3), lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> DemoStore:
        """`mode="r"`: read (no lock; committed episodes only); "a": append (lock, drop uncommitted tail)."""
        if mode not in ("r", "a"):
            raise ValueError(f"DemoStore.open: mode must be 'r' or 'a', not {mode!r}")
        path = stored_path(path)
        if not exists(path):
            if (path / ".zgroup").is_file():
                raise UserError(
                    f"{path} is a Zarr v2 group, not a sim2real store; import it with "
                    f"`sim2real import source={path} format=diffusion_policy out=...`"
                )
            raise FileNotFoundError(f"no demo store at {path} (no zarr.json)")
        lock = StoreLock(path).acquire() if mode == "a" else None
        try:
            group = zarr.open_group(path, mode="r" if mode == "r" else "r+", zarr_format=3)
            checks.check_header(group.attrs, str(path))
            store = cls(path, group, lock)
            checks.check_ends(store._ends, str(path))
            if mode == "a":
                store._drop_uncommitted()
            return store
        except BaseException as e:
            if lock is not None:
                lock.release()
            bad = _garbled_json(path) if isinstance(e, ValueError) else None
            if bad is not None:
                raise UserError(f"{bad}: not valid JSON ({e}); the store's metadata is damaged") from e
            raise

    def _drop_uncommitted(self) -> None:
        """Cut every array back to the committed episodes (what a crash mid-append left behind)."""
        rows = {k: a.shape[0] for k, a in self._arrays.items()}
        checks.check_lengths(rows, self._ends, str(self.path))
        for name, arr in self._arrays.items():
            keep = self.num_steps if name in DATA_ARRAYS else self.num_episodes
            if arr.shape[0] > keep:
                arr.resize((keep, *arr.shape[1:]))
        for p in self.path.rglob("*.partial"):  # temp files of writes a kill interrupted
            p.unlink(missing_ok=True)

    def truncate(self, num_episodes: int) -> None:
        """Keep only the first `num_episodes` (e.g. drop a previous run's DAgger rounds).

        `meta/episode_ends` is cut first, so a crash part-way leaves a consistent, shorter dataset.
        """
        self._require_writable()
        if not 0 <= num_episodes <= self.num_episodes:
            raise ValueError(f"{self.path}: cannot truncate {self.num_episodes} episodes to {num_episodes}")
        self._arrays["episode_ends"].resize((num_episodes,))
        self._ends = self._ends[:num_episodes]
        self._drop_uncommitted()

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> DemoStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading -------------------------------------------------------------------------------------
    @property
    def writable(self) -> bool:
        return self._lock is not None

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._group.attrs)

    @property
    def sources(self) -> list[dict[str, Any]]:
        return list(self._group.attrs.get("sources", []))

    @property
    def num_episodes(self) -> int:
        return len(self._ends)

    @property
    def num_steps(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def episode_ends(self) -> np.ndarray:
        return self._ends.copy()

    def meta(self, name: str) -> np.ndarray:
        """One per-episode array, cut at the committed episodes."""
        arr = self._arrays[name]
        checks.check_lengths({name: arr.shape[0]}, self._ends, str(self.path))
        return np.asarray(arr[: self.num_episodes])

    def episodes_as_run(self) -> tuple[np.ndarray, np.ndarray]:
        """Episode ends (E,) and returns (E,) as the controller ran them: a deployment log's segments
        (`meta/continued`) joined into their episodes; any other store's as stored."""
        ends, ret = self._ends, self.meta("episode_return").astype(np.float64)  # (S,) each
        joined = joined_ends(self._group, ends)
        return (ends.copy(), ret) if len(joined) == len(ends) else (joined, joined_sums(ret, ends, joined))

    def load_arrays(self, episodes: Sequence[int] | np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Every array, checked, cut at the committed end (and to `episodes` if given), as numpy."""
        where, ends = str(self.path), self._ends
        checks.check_lengths({k: a.shape[0] for k, a in self._arrays.items()}, ends, where)
        out: dict[str, np.ndarray] = {}
        for name, arr in self._arrays.items():
            keep = self.num_steps if name in DATA_ARRAYS else self.num_episodes
            try:
                out[name] = np.asarray(arr[:keep])
            except Exception as e:  # a chunk file cut short or garbled
                kind = "data" if name in DATA_ARRAYS else "meta"
                raise UserError(f"{where}: {kind}/{name} cannot be read ({type(e).__name__}: {e})") from e
        out["episode_ends"] = ends.copy()
        checks.check_widths(out, self.spec, where)
        checks.check_values(out, ends, where)
        src = out["episode_source"]
        if len(src) and (src.min() < 0 or src.max() >= len(self.sources)):
            e = int(np.argmax((src < 0) | (src >= len(self.sources))))
            raise UserError(
                f"{where}: meta/episode_source of episode {e} is {src[e]}, not in the source table"
            )
        return out if episodes is None else select_episodes(out, episodes)

    def episode(self, index: int) -> Episode:
        """One committed episode (for inspection and tests)."""
        if not 0 <= index < self.num_episodes:
            raise IndexError(f"episode {index} out of range 0..{self.num_episodes - 1}")
        a, b = (0 if index == 0 else int(self._ends[index - 1])), int(self._ends[index])
        data = {k: np.asarray(self._arrays[k][a:b]) for k in DATA_ARRAYS}
        meta = {
            k: np.asarray(self._arrays[k][index])
            for k in ("episode_seed", "episode_dynamics", "episode_terminated")
        }
        return Episode(
            **data,
            seed=int(meta["episode_seed"]),
            dynamics=meta["episode_dynamics"],
            terminated=bool(meta["episode_terminated"]),
        )

    # ---- writing -------------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self.writable:
            raise UserError(f"{self.path} was opened read-only; open it with mode='a' to append")

    def find_source(self, match: Mapping[str, Any]) -> int | None:
        """Id of the first source-table entry that has every item of `match`."""
        match = _json(dict(match))
        for s in self.sources:
            if all(s.get(k) == v for k, v in match.items()):
                return int(s["id"])
        return None

    def add_source(self, entry: Mapping[str, Any]) -> int:
        """Id of `entry` in the source table, adding it (with id and created) if it is new."""
        self._require_writable()
        entry = _json(dict(entry))
        found = self.find_source(entry)
        if found is not None:
            return found
        sources = self.sources
        sources.append({"id": len(sources), **entry, "created": utc_now()})
        self._group.attrs.update({"sources": sources})
        return len(sources) - 1

    def append_episode(self, episode: Episode | Mapping[str, Any], source: int | Mapping[str, Any]) -> None:
        self.append_episodes([episode], source)

    def append_episodes(
        self, episodes: Iterable[Episode | Mapping[str, Any]], source: int | Mapping[str, Any]
    ) -> None:
        """Append and commit `episodes` (all or none on a crash), tagged with one source-table entry."""
        self._require_writable()
        eps = [Episode.coerce(e) for e in episodes]
        if not eps:
            return
        sid = self.add_source(source) if isinstance(source, Mapping) else int(source)
        if not 0 <= sid < len(self.sources):
            raise ValueError(f"source id {sid} is not in the source table of {self.path}")
        for i, ep in enumerate(eps):
            checks.check_episode(ep, self.spec, i)
        rows = {k: np.concatenate([getattr(e, k) for e in eps]).astype(DATA_ARRAYS[k]) for k in DATA_ARRAYS}
        k = len(self.spec.dynamics_names)
        meta = {
            "episode_return": np.array([e.ret for e in eps], dtype="f4"),
            "episode_dynamics": np.stack(
                [np.full(k, np.nan) if e.dynamics is None else e.dynamics for e in eps]
            ),
            "episode_source": np.full(len(eps), sid, dtype="i4"),
            "episode_seed": np.array([e.seed for e in eps], dtype="i8"),
            "episode_terminated": np.array([e.terminated for e in eps], dtype=bool),
            "episode_ends": self.num_steps + np.cumsum([e.length for e in eps], dtype=np.int64),
        }
        for name, values in rows.items():
            append_rows(self._arrays[name], values)
        for name in META_ARRAYS:  # episode_ends is last: the commit
            append_rows(self._arrays[name], meta[name].astype(META_ARRAYS[name]))
        self._ends = np.concatenate([self._ends, meta["episode_ends"]])


def _build(path: Path, spec: StoreSpec) -> None:
    """The empty hierarchy: header attributes and every array with zero rows."""
    root = zarr.open_group(path, mode="w", zarr_format=3, attributes=_header(spec))
    codec = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
    for group, names in (("data", DATA_ARRAYS), ("meta", META_ARRAYS)):
        for name, dtype in names.items():
            trailing = spec.widths()[name]
            root.create_array(
                f"{group}/{name}",
                shape=(0, *trailing),
                chunks=(chunk_rows(trailing, dtype), *(max(1, d) for d in trailing)),
                dtype=dtype,
                compressors=codec,
                fill_value=_FILL[dtype],
            )


def _header(spec: StoreSpec) -> dict[str, Any]:
    return _json(
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            **spec.to_attrs(),
            "sources": [],
            "created": utc_now(),
            "code_version": code_version(),
        }
    )


def select_episodes(
    arrays: Mapping[str, np.ndarray], episodes: Sequence[int] | np.ndarray
) -> dict[str, np.ndarray]:
    """The arrays of a subset of episodes (in the given order), with episode_ends recomputed."""
    idx = np.asarray(episodes, dtype=np.int64)
    ends = arrays["episode_ends"]
    starts = np.concatenate([[0], ends[:-1]])
    lengths = (ends - starts)[idx]
    rows = np.concatenate([np.arange(starts[e], ends[e]) for e in idx]) if len(idx) else np.zeros(0, np.int64)
    out = {k: v[rows] for k, v in arrays.items() if k in DATA_ARRAYS}
    out.update({k: v[idx] for k, v in arrays.items() if k in META_ARRAYS and k != "episode_ends"})
    out["episode_ends"] = np.cumsum(lengths, dtype=np.int64)
    return out
