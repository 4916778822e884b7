"""The controller's loop and safety layer against an in-process robot, with a real ONNX policy.

`ScriptedRobot` is a real `Robot` (no simulator): its readings follow a fixed signal and the test
decides when they go stale, turn NaN, or when sending takes too long.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time

import numpy as np
import pytest
from test_deploy_policy import tiny_export

from sim2real.data.store import DemoStore
from sim2real.deploy import (
    Controller,
    ControllerConfig,
    ControllerFault,
    DeployLog,
    PolicyMismatch,
    load_policy,
    safety,
)

RATE = 200.0  # Hz: 5 ms periods keep the tests short and the timing checks loose enough for a busy CI box


class ScriptedRobot:
    reading_names = ("pole/cos", "pole/sin")
    action_names = ("torque",)

    def __init__(
        self, silent_after=None, nan_steps=(), slow_steps=(), slow_s=0.0, read_delay_s=0.0, back_after=None
    ):
        self.silent_after, self.back_after, self.nan_steps = silent_after, back_after, set(nan_steps)
        self.slow_steps, self.slow_s, self.read_delay_s = set(slow_steps), slow_s, read_delay_s
        self.sent: list[np.ndarray] = []
        self.sent_at: list[float] = []
        self.step = 0

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def read(self):
        if self.read_delay_s:
            time.sleep(self.read_delay_s)
        k = self.step
        if (
            self.silent_after is not None
            and k >= self.silent_after
            and (self.back_after is None or k < self.back_after)
        ):
            return None
        angle = 0.1 * k
        value = math.nan if k in self.nan_steps else math.cos(angle)
        return {"pole/cos": value, "pole/sin": math.sin(angle)}

    def send(self, action: np.ndarray) -> None:
        if self.step in self.slow_steps:
            time.sleep(self.slow_s)
        self.sent.append(np.array(action, copy=True))
        self.sent_at.append(time.monotonic())
        self.step += 1


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("ctl") / "export")


@pytest.fixture
def policy(export_dir):
    return load_policy(export_dir)


def cfg(**kw) -> ControllerConfig:
    return ControllerConfig(**{"rate_hz": RATE, "soft_start_s": 0.0, "stale_after_s": 0.03, **kw})


def test_actions_are_clipped_to_the_exported_bounds(policy):
    robot = ScriptedRobot()
    stats = Controller(policy, robot, cfg()).run(steps=40)
    sent = np.array(robot.sent[:-1])  # the last one is the shutdown's safe action
    assert np.abs(sent).max() <= 1.0
    assert stats.event_counts.get("clipped", 0) > 0  # the tiny policy's gain 2 does exceed ±1


def test_stale_sensors_hold_the_safe_action_and_raise_a_latched_fault(policy):
    robot = ScriptedRobot(silent_after=10, back_after=30)  # readings stop, then come back
    ctl = Controller(policy, robot, cfg(safe_action=(0.25,)))
    stats = ctl.run(steps=60)
    kinds = [f.kind for f in stats.faults]
    assert kinds == ["stale_sensors"]
    first = stats.faults[0].step
    assert 10 < first <= 10 + 0.03 * RATE + 3  # within the watchdog timeout (+ scheduling slack)
    np.testing.assert_array_equal(np.array(robot.sent[first:]), 0.25)  # held, even after readings return
    assert stats.event_counts["stale_sensors"] >= 1 and stats.event_counts["fault_hold"] > 10


def test_stale_fault_is_raised_after_the_run_when_asked(policy):
    with pytest.raises(ControllerFault, match="stale_sensors"):
        Controller(policy, ScriptedRobot(silent_after=0), cfg(raise_on_fault=True)).run(steps=20)


def test_unlatched_watchdog_resumes_with_a_new_soft_start(policy):
    robot = ScriptedRobot(silent_after=10, back_after=30)
    stats = Controller(policy, robot, cfg(latch_faults=False, soft_start_s=5 / RATE)).run(steps=60)
    assert stats.faults[0].kind == "stale_sensors"
    assert np.any(np.array(robot.sent[40:59]) != 0.0)  # acting again
    assert abs(robot.sent[30][0]) <= 0.4 + 1e-6  # ramp: first step back is 1/5 of the policy action (≤ 2)


def test_nan_reading_gives_the_safe_action_without_stepping_the_policy(policy):
    robot = ScriptedRobot(nan_steps={12, 13})
    stats = Controller(policy, robot, cfg(safe_action=(-0.5,))).run(steps=30)
    assert robot.sent[12][0] == -0.5 and robot.sent[13][0] == -0.5
    assert np.isfinite(np.array(robot.sent)).all()
    assert stats.event_counts["nonfinite_obs"] == 2
    assert [f.kind for f in stats.faults] == ["nonfinite_obs"]  # one fault for the one glitch
    assert robot.sent[14][0] != -0.5  # acting again on the next good reading


def test_overrun_is_counted_and_missed_deadlines_are_skipped_not_burst(policy):
    robot = ScriptedRobot(slow_steps={10}, slow_s=4.5 / RATE)
    stats = Controller(policy, robot, cfg()).run(steps=30)
    assert stats.overruns >= 1
    assert stats.skipped_deadlines >= 3
    # step i runs at deadline i + skipped: catching up in a burst would put step 29 at ~29 periods and count
    # ten or more skips. Slack of 3 periods: on a busy machine step 0 itself may wake late (seen: 1.7)
    span = robot.sent_at[29] - robot.sent_at[0]
    assert span >= (29 + stats.skipped_deadlines - 3) / RATE


def test_deadlines_are_absolute_so_slow_steps_do_not_drift(policy):
    robot = ScriptedRobot(read_delay_s=0.4 / RATE)  # each step works 40% of its period
    stats = Controller(policy, robot, cfg(stale_after_s=1.0)).run(steps=100)
    elapsed = robot.sent_at[99] - robot.sent_at[0]
    assert stats.steps == 100
    # on the grid: 99 periods (+ deadlines skipped after an overrun on a busy machine); sleeping a
    # period after each step's work would take ≥ 139
    assert elapsed < (99 + stats.skipped_deadlines + 6) / RATE


def test_estop_callback_stops_with_the_safe_action(policy):
    robot = ScriptedRobot()
    stats = Controller(policy, robot, cfg(safe_action=(0.1,)), estop=lambda: robot.step >= 15).run(steps=100)
    assert stats.stop_reason == "estop" and [f.kind for f in stats.faults] == ["estop"]
    assert robot.step == 17  # step 15 sent the safe action, then the shutdown sent it again
    assert robot.sent[15][0] == 0.1 and robot.sent[16][0] == 0.1


def test_estop_from_another_thread(policy):
    robot = ScriptedRobot()
    ctl = Controller(policy, robot, cfg())
    threading.Timer(0.05, ctl.trigger_estop).start()
    stats = ctl.run(steps=1000)
    assert stats.stop_reason == "estop" and stats.steps < 1000
    assert robot.sent[-1][0] == 0.0


def test_sigint_stops_cleanly_and_restores_the_handler(policy):
    robot = ScriptedRobot()
    before = signal.getsignal(signal.SIGINT)
    threading.Timer(0.08, os.kill, (os.getpid(), signal.SIGINT)).start()
    stats = Controller(policy, robot, cfg(safe_action=(0.3,))).run()  # no step limit
    assert stats.stop_reason == "sigint"
    assert robot.sent[-1][0] == 0.3
    assert signal.getsignal(signal.SIGINT) is before


def test_rate_limit_and_soft_start_shape_the_actions(export_dir):
    policy = load_policy(export_dir)
    robot = ScriptedRobot()
    Controller(policy, robot, cfg(max_action_rate=20.0, soft_start_s=10 / RATE)).run(steps=40)
    sent = np.array(robot.sent[:-1])[:, 0]
    assert np.abs(np.diff(sent)).max() <= 20.0 / RATE + 1e-6  # 0.1 per step
    assert abs(sent[0]) <= 0.1 + 1e-6


def test_rate_limit_comes_from_the_export_metadata(tmp_path):
    policy = load_policy(tiny_export(tmp_path / "export", max_action_rate=10.0))
    ctl = Controller(policy, ScriptedRobot(), cfg())
    assert ctl.filter.max_delta == pytest.approx(10.0 / RATE)


def test_robot_with_another_layout_is_refused_before_any_step(policy):
    class Other(ScriptedRobot):
        reading_names = ("pole/angle",)

    robot = Other()
    with pytest.raises(PolicyMismatch, match="'pole/cos'"):
        Controller(policy, robot, cfg())
    assert robot.sent == []


def test_every_step_is_logged_as_a_demo_store(policy, tmp_path):
    robot = ScriptedRobot(nan_steps={5})
    path = tmp_path / "deploy" / "log.zarr"
    log = DeployLog(
        path, {"task": "pendulum"}, policy.spec.obs_names, policy.spec.action_names, chunk_steps=16
    )
    ctl = Controller(policy, robot, cfg(), log)
    ctl.run(steps=40, seed=3)
    ctl.run(steps=10, seed=4)
    log.close({"note": "test"})
    store = DemoStore.open(path)
    arrays = store.load_arrays()  # the data helper's checks accept it as training data
    assert len(store.episodes_as_run()[0]) == 2 and store.num_steps == 50  # segments of a slow run joined
    np.testing.assert_array_equal(arrays["action"][:40], np.array(robot.sent[:40]))
    assert np.isnan(arrays["expert_action"]).all()
    assert arrays["episode_seed"].tolist() == [3, 4]
    assert arrays["student_obs"][1, 2] == robot.sent[0][0]  # prev_action entry = the last action sent
    import zarr

    root = zarr.open_group(str(path), mode="r")
    events = root["data/events"][:]
    assert events[5] & safety.NONFINITE_OBS and events[6] & safety.NONFINITE_OBS == 0
    assert np.isnan(root["data/policy_action"][5]).all()  # the policy did not run on the NaN reading
    assert root.attrs["deploy"]["note"] == "test"


def test_log_writer_failure_is_reported_on_close(policy, tmp_path):
    import shutil

    path = tmp_path / "log.zarr"
    log = DeployLog(
        path, {"task": "pendulum"}, policy.spec.obs_names, policy.spec.action_names, chunk_steps=8
    )
    shutil.rmtree(path)  # the disk under the log goes away
    Controller(policy, ScriptedRobot(), cfg(), log).run(steps=20)
    with pytest.raises(RuntimeError, match="deployment log writer failed"):
        log.close()


def _fill_past_the_pipe(log, spec, episodes: int = 6, steps: int = 5000) -> bool:
    """Log 30k steps, ~2.5 MB (more than the pipe holds), from a thread; returns whether it finished in
    60 s."""

    def control_loop():
        for e in range(episodes):
            for k in range(steps):
                log.append(student_obs=np.full(spec.obs_dim, e, np.float32), action=[k], reward=1.0)
            log.end_episode(seed=e)

    loop = threading.Thread(target=control_loop, daemon=True)
    loop.start()
    loop.join(60)
    return not loop.is_alive()


def test_logging_never_blocks_on_a_stalled_writer_and_close_delivers_every_step(policy, tmp_path):
    path, spec, (episodes, steps) = tmp_path / "log.zarr", policy.spec, (6, 5000)
    log = DeployLog(path, {"task": "pendulum"}, spec.obs_names, spec.action_names, chunk_steps=4096)
    os.kill(log._writer._proc.pid, signal.SIGSTOP)  # the disk hangs: the writer takes nothing
    try:
        assert _fill_past_the_pipe(log, spec, episodes, steps), "a log append blocked on the stalled writer"
        assert log._writer._pending  # the pipe was full: frames wait in the queue
    finally:
        os.kill(log._writer._proc.pid, signal.SIGCONT)
    log.close()
    arrays = DemoStore.open(path).load_arrays()
    assert arrays["episode_ends"].tolist() == [steps * (e + 1) for e in range(episodes)]
    assert arrays["student_obs"][::steps, 0].tolist() == list(range(episodes))
    assert arrays["action"][:steps, 0].tolist() == list(range(steps))


def test_close_gives_up_on_a_writer_that_takes_nothing(policy, tmp_path):
    spec = policy.spec
    log = DeployLog(tmp_path / "log.zarr", {"task": "pendulum"}, spec.obs_names, spec.action_names)
    os.kill(log._writer._proc.pid, signal.SIGSTOP)
    assert _fill_past_the_pipe(log, spec)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="took no data for 1 s"):
        log.close(timeout=1.0)
    assert time.monotonic() - t0 < 30  # killed, not waited for


# -- exponential action filter (deploy.action_filter) ---------------------------------------------


def _filter(smoothing: float, **kw) -> safety.ActionFilter:
    one = np.ones(1, np.float32)
    args = {"low": -one, "high": one, "safe": 0 * one, "max_delta": None, "ramp_steps": 1}
    return safety.ActionFilter(**{**args, **kw}, smoothing=smoothing)


def test_action_filter_is_an_exponential_average_starting_at_the_first_output():
    f = _filter(0.5)
    sent = [f(np.array([x], np.float32))[0][0] for x in (0.8, 0.0, 0.0, 0.4)]
    np.testing.assert_allclose(sent, [0.8, 0.4, 0.2, 0.3], atol=1e-6)  # α·previous + (1 − α)·policy


def test_action_filter_smooths_before_clipping():
    f = _filter(0.5)
    f(np.zeros(1, np.float32))
    action, events = f(np.array([1.6], np.float32))  # filtered 0.8: inside the bounds, so not clipped
    assert action[0] == pytest.approx(0.8) and not events & safety.CLIPPED
    action, events = f(np.array([3.0], np.float32))  # filtered 1.9 → clipped to 1
    assert action[0] == 1.0 and events & safety.CLIPPED


def test_action_filter_restarts_after_a_safe_hold_and_a_reset():
    f = _filter(0.9)
    f(np.array([1.0], np.float32))
    f.hold_safe()
    assert f(np.array([-0.5], np.float32))[0][0] == pytest.approx(-0.5)  # no memory of the 1.0
    f.reset()
    assert f(np.array([0.25], np.float32))[0][0] == pytest.approx(0.25)


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 2.0])
def test_action_filter_outside_zero_one_is_refused_naming_it(policy, alpha):
    with pytest.raises(ValueError, match="action_filter"):
        Controller(policy, ScriptedRobot(), cfg(action_filter=alpha))


def test_controller_sends_the_filtered_policy_output_and_logs_the_raw_one(policy, tmp_path):
    alpha = 0.8
    log = DeployLog(
        tmp_path / "log.zarr", {"task": "pendulum"}, policy.spec.obs_names, policy.spec.action_names
    )
    robot = ScriptedRobot()
    Controller(policy, robot, cfg(action_filter=alpha), log).run(steps=30)
    log.close()
    import zarr

    raw = zarr.open_group(str(tmp_path / "log.zarr"), mode="r")["data/policy_action"][:, 0]
    ema = np.zeros_like(raw)
    for t, r in enumerate(raw):
        ema[t] = r if t == 0 else alpha * ema[t - 1] + (1 - alpha) * r
    np.testing.assert_allclose(np.array(robot.sent[:30])[:, 0], np.clip(ema, -1, 1), atol=1e-5)
    assert np.abs(np.diff(np.array(robot.sent[:30])[:, 0])).max() < np.abs(np.diff(raw)).max()


def _may_use_sched_fifo() -> bool:
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        return False
    os.sched_setscheduler(0, *before)
    return True


def test_realtime_priority_runs_the_loop_on_sched_fifo_then_restores_the_scheduler(policy):
    class SchedulerProbe(ScriptedRobot):
        def read(self):
            self.seen = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
            return super().read()

    robot, before = SchedulerProbe(), os.sched_getscheduler(0)
    ctl = Controller(policy, robot, cfg(realtime_priority=7))
    if not _may_use_sched_fifo():  # not root here: the error must say what grants it
        with pytest.raises(PermissionError, match="CAP_SYS_NICE"):
            ctl.run(steps=3)
    else:
        assert ctl.run(steps=5).steps == 5
        assert robot.seen == (os.SCHED_FIFO, 7)
    assert os.sched_getscheduler(0) == before


def test_realtime_priority_outside_fifo_range_is_refused(policy):
    with pytest.raises(ValueError, match="realtime_priority=100"):
        Controller(policy, ScriptedRobot(), cfg(realtime_priority=100)).run(steps=1)


def test_soft_start_is_the_users_else_the_exports_else_half_a_second(policy, tmp_path):
    """A walking policy's export asks for no ramp (blended with the standing pose it fell); a flag wins."""
    walking = load_policy(tiny_export(tmp_path / "export", soft_start_s=0.0))
    assert walking.spec.soft_start_s == 0.0 and policy.spec.soft_start_s is None
    ramp = {
        "default": Controller(policy, ScriptedRobot(), cfg(soft_start_s=None)).filter.ramp_steps,
        "export": Controller(walking, ScriptedRobot(), cfg(soft_start_s=None)).filter.ramp_steps,
        "flag": Controller(walking, ScriptedRobot(), cfg(soft_start_s=0.2)).filter.ramp_steps,
    }
    assert ramp == {"default": round(0.5 * RATE), "export": 1, "flag": round(0.2 * RATE)}


def test_a_run_faster_than_the_policy_says_its_soft_start_spans_more_robot_steps(policy):
    """Against a lockstep simulator a faster wall rate is not the policy's behaviour: the controller says."""
    own_rate = 1.0 / policy.spec.control_dt
    at_own = Controller(policy, ScriptedRobot(), cfg(rate_hz=own_rate))
    assert at_own.rate_note is None
    fast = Controller(policy, ScriptedRobot(), cfg(rate_hz=10 * own_rate, max_action_rate=2.0))
    assert "10× the policy's own" in fast.rate_note and "soft start spans 10× as many steps" in fast.rate_note
    assert "rate limit allows 0.1× the change per step" in fast.rate_note
