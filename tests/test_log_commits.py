"""The deployment log inside a running episode, and faults around it: periodic commits a reader sees
whole, the unfinished-episode mark, a disk that goes away, an unwritable directory, a missing robot and
corrupt JSON, each one line naming the path or address."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from test_deploy_policy import tiny_export

from sim2real.data.store import DemoStore
from sim2real.deploy import DeployLog, load_policy
from sim2real.deploy.log import LogError
from sim2real.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("logc") / "run" / "export")


def new_log(path: Path, export_dir: Path, **kw) -> DeployLog:
    spec = load_policy(export_dir).spec
    return DeployLog(path, {"task": "pendulum"}, spec.obs_names, spec.action_names, **kw)


def unfinished(path: Path) -> list[int]:
    return zarr.open_group(str(path), mode="r").attrs["deploy"].get("unfinished_episodes")


def continued(path: Path) -> list[bool]:
    return zarr.open_group(str(path), mode="r")["meta/continued"][:].tolist()


def _whole_steps(path) -> int:
    """Steps a reader sees now; each is whole (its row holds its own index) whenever the writer commits."""
    store = DemoStore.open(path)
    assert store.load_arrays()["student_obs"][:, 0].tolist() == list(range(store.num_steps))
    return store.num_steps


def _settled(path, at_least: int, timeout_s: float = 60.0) -> tuple[DemoStore, list[int], list[bool]]:
    """The log, its unfinished marks and continued flags from one commit, once the writer has
    committed `at_least` steps: the writer runs at nice 10 (SCHED_BATCH) and, with other work on the
    cores, may trail the loop by seconds; it may also commit between two reads, so a read counts only
    when the step count is the same before and after it."""
    deadline = time.monotonic() + timeout_s
    while True:
        store = DemoStore.open(path)
        marks, cont = unfinished(path), continued(path)
        same = DemoStore.open(path).num_steps == store.num_steps
        if (same and store.num_steps >= at_least) or time.monotonic() > deadline:
            return store, marks, cont
        time.sleep(0.05)


def test_running_episode_is_committed_every_commit_interval_and_marked_unfinished(export_dir, tmp_path):
    path = tmp_path / "log.zarr"
    log = new_log(path, export_dir, commit_s=0.1)
    log.begin_episode(seed=7)
    seen, early = [], None
    for k in range(300):  # 300 steps over ~0.9 s, one episode that has not ended
        log.append(student_obs=np.full(3, k, np.float32), action=[k / 300], reward=1.0)
        time.sleep(0.003)
        if k == 100:
            early = DemoStore.open(path)  # held open while the log grows
        if k % 25 == 0:
            seen.append(_whole_steps(path))  # a reader meanwhile: whole steps only, every check passes
    store, marks, cont = _settled(path, at_least=200)
    seen.append(_whole_steps(path))
    assert 200 <= store.num_steps < 300 and store.num_episodes > 2  # all but the last commit interval
    assert sorted(seen) == seen and set(store.meta("episode_seed").tolist()) == {7}
    committed = list(range(store.num_episodes))  # a segment is listed just before it is written:
    assert marks in (committed, [*committed, store.num_episodes]) and all(cont)  # the next may show
    early.load_arrays()  # a store opened earlier still reads consistently: rows are never rewritten
    log.end_episode(seed=7)
    log.close()
    store = DemoStore.open(path)
    assert store.num_steps == 300 and unfinished(path) == [] and continued(path)[-1] is False
    assert store.meta("episode_return").sum() == 300.0 and all(continued(path)[:-1])


def test_close_without_an_episode_end_keeps_it_as_unfinished(export_dir, tmp_path):
    path = tmp_path / "log.zarr"
    log = new_log(path, export_dir)
    for _k in range(10):
        log.append(student_obs=np.zeros(3, np.float32), action=[0.0])
    log.end_episode()
    for _k in range(5):
        log.append(student_obs=np.ones(3, np.float32), action=[0.0])
    log.close()  # the process ends mid-episode: what it logged is kept, and said to be cut short
    store = DemoStore.open(path)
    assert store.episode_ends.tolist() == [10, 15] and unfinished(path) == [1]
    assert continued(path) == [False, True]


def test_writer_failure_mid_run_is_one_line_naming_the_log(export_dir, tmp_path):
    path = tmp_path / "log.zarr"
    log = new_log(path, export_dir, chunk_steps=8, commit_s=0.05)
    shutil.rmtree(path)  # the disk under the log goes away
    for _ in range(40):
        log.append(student_obs=np.zeros(3, np.float32), action=[0.0])
        time.sleep(0.005)  # the loop goes on, never waiting
    with pytest.raises(LogError) as err:
        log.close()
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "committed before are intact" in msg
    assert isinstance(err.value, UserError)


def test_unwritable_log_directory_is_one_line_naming_the_path(export_dir):
    with pytest.raises(LogError, match=r"cannot create the deployment log /proc/forbidden/log\.zarr"):
        new_log(Path("/proc/forbidden/log.zarr"), export_dir)


def _lean(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sim2real.deploy", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_missing_robot_is_one_line_naming_the_address_and_what_to_do(export_dir):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = _lean(str(export_dir), "--force", "--port", str(port), "--connect-timeout", "0.5")
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert f"udp://127.0.0.1:{port}" in line and "start `sim2real robot-sim`" in line
    assert line.endswith("set the robot's address (--host, --port)")  # in this CLI's words


def test_lean_cli_with_an_unwritable_log_dir_is_one_line(export_dir):
    from test_deploy_udp import CounterRobot, serving

    with serving(CounterRobot()) as server:
        out = _lean(str(export_dir), "--force", "--port", str(server.address[1]), "--log-dir", "/proc/nope")
    assert out.returncode == 2
    assert out.stderr.strip().startswith("deploy: error: cannot create the deployment log /proc/nope/")


# -- corrupt JSON -------------------------------------------------------------------------------------
def test_corrupt_validation_report_is_one_line_naming_it(export_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(export_dir, run / "export")
    (run / "validation").mkdir()
    (run / "validation" / "report.json").write_text("garbage{")
    out = _lean(str(run / "export"))
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert str(run / "validation" / "report.json") in line and "not valid JSON" in line and "--force" in line


def test_corrupt_store_metadata_names_the_file(export_dir, tmp_path):
    path = tmp_path / "log.zarr"
    log = new_log(path, export_dir)
    log.append(student_obs=np.zeros(3, np.float32), action=[0.0])
    log.end_episode()
    log.close()
    for garbled in (path / "zarr.json", path / "meta" / "episode_ends" / "zarr.json"):
        good = garbled.read_bytes()
        garbled.write_text("\x00not json")
        with pytest.raises(UserError, match=f"{garbled}: not valid JSON"):
            DemoStore.open(path)
        garbled.write_bytes(good)
    assert DemoStore.open(path).num_steps == 1


@pytest.mark.parametrize("content", ["{cut", "[1, 2]"])
def test_corrupt_manifest_names_the_file(tmp_path, content):
    from sim2real.artifacts import read_manifest

    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(UserError, match=r"manifest\.json"):
        read_manifest(tmp_path)
    assert read_manifest(tmp_path / "absent") is None


def test_replay_joins_the_segments_of_a_long_episode_into_one_history(export_dir, tmp_path):
    from test_deploy_controller import ScriptedRobot, cfg

    from sim2real.deploy import Controller
    from sim2real.deploy.replay import main as replay

    path = tmp_path / "log.zarr"
    log = new_log(path, export_dir, commit_s=0.05)
    Controller(load_policy(export_dir), ScriptedRobot(), cfg(), log).run(steps=120, seed=1)
    log.close()
    assert DemoStore.open(path).num_episodes > 3  # committed in segments while it ran
    assert replay([f"log={path}", f"export={export_dir}"]) == 0  # same history as the controller's


def test_replay_of_a_log_with_garbled_metadata_is_one_line_naming_the_file(export_dir, tmp_path):
    path = tmp_path / "log.zarr"
    log = new_log(path, export_dir)
    log.append(student_obs=np.zeros(3, np.float32), action=[0.0])
    log.close()
    (path / "zarr.json").write_text("garbage")
    out = _lean("replay", f"log={path}", f"export={export_dir}")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert f"{path / 'zarr.json'}: not valid JSON" in line


def log_in_segments(log: DeployLog, episodes: dict[int, list[dict]]) -> None:
    """Each episode (seed -> its steps' `append` arguments) logged slowly enough for the writer to commit
    it in several segments, as a controller's running episode is; then the log is closed."""
    for seed, steps in episodes.items():
        log.begin_episode(seed=seed)
        for step in steps:
            log.append(**step)
            time.sleep(0.005)
        log.end_episode(seed=seed)
    log.close()


def test_data_info_counts_an_episode_logged_in_segments_once(export_dir, tmp_path):
    from sim2real.data.cli import summary

    path = tmp_path / "log.zarr"
    step = {s: dict(student_obs=np.zeros(3, np.float32), action=[0.0], reward=float(s)) for s in (1, 2)}
    log_in_segments(new_log(path, export_dir, commit_s=0.05), {s: [step[s]] * 60 for s in (1, 2)})
    store = DemoStore.open(path)
    assert store.num_episodes > 2  # stored segments
    text = summary(store)
    assert f"episodes: 2 ({store.num_episodes} stored segments)" in text
    assert "length min/mean/max: 60/60.0/60" in text and "return: mean 90  min 60  max 120" in text


def test_identify_reads_an_episode_logged_in_segments_whole(export_dir, tmp_path):
    """At a 20 Hz policy's own rate a 1 s commit holds 20 steps: identify once refused such logs as short."""
    from sim2real.identify.log import load_log

    path = tmp_path / "log.zarr"
    rng = np.random.default_rng(0)
    steps = [
        dict(student_obs=rng.standard_normal(3).astype(np.float32), action=rng.uniform(-1, 1, 1), reward=0.0)
        for _ in range(60)
    ]
    log_in_segments(new_log(path, export_dir, commit_s=0.05), {1: steps})
    assert DemoStore.open(path).num_episodes > 1  # stored segments
    assert [len(r) for r in load_log(path, min_steps=50).readings] == [60]
