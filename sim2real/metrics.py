"""Metric logging: JSONL + CSV in the stage dir always (unless `logger.kind=none`), wandb optionally.

wandb runs offline unless the user configured online mode (WANDB_MODE=online or an API key), so
nothing depends on a network; the local files are the record of truth.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from sim2real.config import LoggerConfig

KINDS = ("none", "local", "wandb")


class MetricLogger:
    def __init__(
        self, cfg: LoggerConfig, out_dir: str | Path, name: str, config: dict[str, Any] | None = None
    ):
        if cfg.kind not in KINDS:
            raise ValueError(f"logger.kind={cfg.kind!r} is not one of {KINDS}")
        self.kind = cfg.kind
        self._dir = Path(out_dir)
        self._name = name
        self._csv_fields: list[str] | None = None
        self._wandb = None
        if self.kind == "wandb":
            self._wandb = _start_wandb(cfg, self._dir, name, config or {})

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.kind == "none":
            return
        row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self._dir.mkdir(parents=True, exist_ok=True)
        with open(self._dir / f"{self._name}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        self._write_csv(row)
        if self._wandb is not None:
            self._wandb.log(metrics, step=int(step))

    def log_summary(self, summary: dict[str, Any]) -> None:
        if self._wandb is not None:
            self._wandb.summary.update(summary)

    def _write_csv(self, row: dict[str, Any]) -> None:
        """Append to the CSV; a key not seen before widens the header (rewritten from the JSONL)."""
        path = self._dir / f"{self._name}.csv"
        if self._csv_fields is None and path.exists():
            with open(path) as f:
                self._csv_fields = next(csv.reader(f), [])
        fields = self._csv_fields or []
        if not path.exists() or any(k not in fields for k in row):
            self._csv_fields = fields + [k for k in row if k not in fields]
            self._rewrite_csv(path)
            return
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, self._csv_fields, extrasaction="ignore").writerow(row)

    def _rewrite_csv(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(self._dir / f"{self._name}.jsonl") as src, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self._csv_fields, extrasaction="ignore")
            writer.writeheader()
            for line in src:
                writer.writerow(json.loads(line))
        os.replace(tmp, path)

    def log_images(self, images: dict[str, str | Path]) -> None:
        if self._wandb is not None:
            import wandb

            self._wandb.log({k: wandb.Image(str(v)) for k, v in images.items()})

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self._wandb is not None:
            import wandb

            self._wandb.log({name: wandb.Table(columns=columns, data=rows)})

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _plain(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _start_wandb(cfg: LoggerConfig, out_dir: Path, name: str, config: dict[str, Any]):
    import wandb

    mode = (
        cfg.mode
        or os.environ.get("WANDB_MODE")
        or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=cfg.project,
        entity=cfg.entity,
        name=name,
        dir=str(out_dir),
        mode=mode,
        config=config,
        reinit="create_new",
    )
