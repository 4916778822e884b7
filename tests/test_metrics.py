import csv
import json

from sim2real.config import LoggerConfig
from sim2real.metrics import MetricLogger


def test_local_logger_writes_jsonl_and_widens_csv_for_new_keys(tmp_path):
    log = MetricLogger(LoggerConfig(kind="local"), tmp_path, "train")
    log.log({"loss": 1.0}, step=1)
    log.log({"loss": 0.5, "eval_return": -150.0}, step=2)
    log.close()
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert rows == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5, "eval_return": -150.0}]
    with open(tmp_path / "train.csv") as f:
        table = list(csv.DictReader(f))
    assert table[0]["eval_return"] == "" and float(table[1]["eval_return"]) == -150.0


def test_none_logger_writes_nothing(tmp_path):
    log = MetricLogger(LoggerConfig(kind="none"), tmp_path / "x", "train")
    log.log({"loss": 1.0}, step=1)
    assert not (tmp_path / "x").exists()
