"""`Controller`: the fixed-rate loop that runs a policy against a robot, with the safety layer.

Step k is due at t0 + k·period on the monotonic clock (absolute deadlines: lateness never
accumulates into drift). A step that finishes after the next deadline is an overrun; the loop then
skips the deadlines already passed instead of bursting to catch up. Each step: read sensors →
watchdog / e-stop / fault checks → observation → policy → action filter → send → log.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from envs.observations import student_vector
from sim2real.deploy import safety, signals
from sim2real.deploy.config import DEFAULT_SOFT_START_S, LoopSettings
from sim2real.deploy.log import DeployLog
from sim2real.deploy.policy import OBS_LIMIT, Policy
from sim2real.deploy.robot import Robot
from sim2real.deploy.spec import PolicySpec


def rate_note(period: float, control_dt: float | None, rate_limited: bool) -> str | None:
    """Why a run faster (or slower) than the policy's own rate may not be the policy's behaviour, or None.

    The soft start and the rate limit count wall seconds. A lockstep simulator (`robot-sim`, the in-process
    sim robot) moves one control_dt per action whatever the wall rate, so at 10× the policy's rate the
    soft start spans 10× as many robot steps: a 20 Hz pendulum run at 200 Hz spent half of each 200-step
    episode ramping in and scored 0.50 of a privileged controller, against 0.76 at 20 Hz (on the same
    robot and starts; benchmarks/reality_gap.py ran at 200 Hz until this note)."""
    if not control_dt or abs(period - control_dt) <= 0.01 * control_dt:
        return None
    factor = control_dt / period
    limited = f", and its rate limit allows {1 / factor:.3g}× the change per step" if rate_limited else ""
    own = 1 / control_dt
    return (
        f"deploy: {1 / period:.4g} Hz is {factor:.3g}× the policy's own {own:.4g} Hz: its soft start spans "
        f"{factor:.3g}× as many steps{limited}; against a lockstep simulator that is not what the policy "
        "does on the robot (leave deploy.rate_hz unset to measure that)"
    )


class ControllerFault(RuntimeError):
    """Raised after a run that ended with a fault when `raise_on_fault` is set."""


def soft_start(cfg: LoopSettings, spec: PolicySpec) -> float:
    """Seconds of soft start: the user's, else the export's, else `DEFAULT_SOFT_START_S`."""
    for value in (cfg.soft_start_s, spec.soft_start_s):
        if value is not None:
            return float(value)
    return DEFAULT_SOFT_START_S


@dataclass
class ControllerConfig(LoopSettings):
    """The loop's options (`LoopSettings`, shared with `deploy.*`) plus those only code sets."""

    latch_faults: bool = True  # a stale-sensor fault holds the safe action until the run ends
    raise_on_fault: bool = False  # raise ControllerFault when the run ended with a fault
    handle_sigint: bool = True  # SIGINT, SIGTERM and SIGHUP stop the loop cleanly (main thread only)
    stop_on_episode_end: bool = True  # a simulated robot's `done` extra ends the run
    gc_freeze: bool = True  # gc.freeze() before the loop: full collections skip everything loaded so far


@dataclass
class Fault:
    step: int
    time: float  # s since the loop started
    kind: str
    detail: str = ""


@dataclass
class ControllerStats:
    steps: int = 0
    overruns: int = 0  # steps that finished after the next deadline
    skipped_deadlines: int = 0  # deadlines passed over after overruns
    max_lateness_s: float = 0.0  # worst wake-up after a deadline
    event_counts: dict[str, int] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    stop_reason: str = ""
    episode_return: float = 0.0

    def count(self, events: int) -> None:
        for name in safety.describe(events):
            self.event_counts[name] = self.event_counts.get(name, 0) + 1


class Controller:
    """Runs `policy` against a connected `robot`; one `run()` is one episode.

    `estop` is polled every step (True → safe action, loop ends); `stop()` and `trigger_estop()`
    may be called from any thread; SIGINT, SIGTERM and SIGHUP stop the loop the same way as `stop()`
    (stop reason "sigint", "sigterm", "sighup"): the safe action goes out within one period.
    """

    def __init__(
        self,
        policy: Policy,
        robot: Robot,
        config: ControllerConfig | None = None,
        log: DeployLog | None = None,
        estop: Callable[[], bool] | None = None,
    ):
        self.policy, self.robot, self.log, self._estop_cb = policy, robot, log, estop
        self.config = cfg = config or ControllerConfig()
        spec = policy.spec
        policy.check_robot(robot.reading_names, getattr(robot, "action_names", None))
        self.period = 1.0 / cfg.rate_hz if cfg.rate_hz else spec.control_dt
        rate = cfg.max_action_rate if cfg.max_action_rate is not None else spec.max_action_rate
        safe = np.zeros(spec.action_dim, np.float32) if cfg.safe_action is None else cfg.safe_action
        self.filter = safety.ActionFilter(
            low=np.asarray(spec.action_low, np.float32),
            high=np.asarray(spec.action_high, np.float32),
            safe=np.asarray(safe, np.float32),
            max_delta=None if rate is None else rate * self.period,
            ramp_steps=max(1, round(soft_start(cfg, spec) / self.period)),
            smoothing=cfg.action_filter or 0.0,
        )
        if self.filter.safe.shape != (spec.action_dim,):
            raise ValueError(
                f"safe_action has {self.filter.safe.size} entries, the policy has {spec.action_dim}"
            )
        self.watchdog = safety.Watchdog(cfg.stale_after_s or max(3 * self.period, 0.01))
        self.rate_note = rate_note(self.period, spec.control_dt, rate is not None)
        if not 0 <= cfg.realtime_priority <= 99:
            raise ValueError(f"realtime_priority={cfg.realtime_priority}: SCHED_FIFO takes 1-99 (0: off)")
        self._stop = threading.Event()
        self._estop = threading.Event()
        self._stop_reason = ""

    def stop(self, reason: str = "stop") -> None:
        self._stop_reason = self._stop_reason or reason
        self._stop.set()

    def trigger_estop(self) -> None:
        self._estop.set()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, steps: int | None = None, duration: float | None = None, seed: int | None = None):
        """Run until `steps` steps, `duration` seconds, stop(), e-stop or a stop signal; returns
        ControllerStats."""
        restore_scheduler = _realtime(self.config.realtime_priority)  # a refusal raises before any change
        try:
            return self._run(steps, duration, seed)
        finally:
            restore_scheduler()

    def _run(self, steps: int | None, duration: float | None, seed: int | None) -> ControllerStats:
        self._clear_stop()
        old_handlers = self._install_signals()  # before the reset: a robot's reset may take seconds
        try:
            self._reset_episode(seed)
        except BaseException:
            signals.restore(old_handlers)
            raise
        if self.config.gc_freeze:
            gc.collect()
            gc.freeze()
        stats = self.stats = ControllerStats()
        t0 = time.monotonic()
        self.watchdog.start(t0)
        k = 0
        try:
            while not self._stop.is_set() and (steps is None or stats.steps < steps):
                deadline = t0 + k * self.period
                if duration is not None and deadline - t0 >= duration:
                    stats.stop_reason = "duration"
                    break
                _sleep_until(deadline, self.config.spin_s)
                wake = time.monotonic()
                stats.max_lateness_s = max(stats.max_lateness_s, wake - deadline)
                events = self._step(wake, t0, wake - deadline)
                k += 1
                done = time.monotonic()
                if done > t0 + k * self.period:  # finished after the next deadline
                    stats.overruns += 1
                    k_next = math.ceil((done - t0) / self.period)
                    stats.skipped_deadlines += k_next - k
                    k = k_next
                if events & safety.ESTOP:
                    break
        finally:
            if self.config.gc_freeze:
                gc.unfreeze()
            self._shutdown(old_handlers, seed)
        stats.stop_reason = self._stop_reason or stats.stop_reason or "steps"
        if self.config.raise_on_fault and stats.faults:
            raise ControllerFault(f"run ended with fault(s): {[f.kind for f in stats.faults]}")
        return stats

    def _clear_stop(self) -> None:
        self._stop.clear()
        self._estop.clear()
        self._stop_reason = ""

    def _reset_episode(self, seed: int | None) -> None:
        if hasattr(self.robot, "reset"):
            self.robot.reset(seed)
        self.policy.reset()
        self.filter.reset()
        self._readings = None
        self._latched: Fault | None = None
        self._prev_action = self.filter.safe.copy()
        self._obs = np.full(self.policy.spec.obs_dim, np.nan, np.float32)  # logged before the first reading
        self._raw = None
        self._has_extras = hasattr(self.robot, "extras")
        if self.log is not None:
            dyn = self.robot.extras().get("dynamics") if self._has_extras else None
            self.log.begin_episode(seed=-1 if seed is None else seed, dynamics=dyn)

    def _step(self, now: float, t0: float, lateness: float) -> int:
        """One control step; returns its event bits."""
        fresh = self.robot.read()
        if fresh is not None:
            self._readings = fresh
            self.watchdog.feed(now)
        action, events = self._decide(now, now - t0)
        self.robot.send(action)
        self._prev_action = action
        self.stats.steps += 1
        if events:
            self.stats.count(events)
        extras = self.robot.extras() if self._has_extras else {}
        reward = extras.get("reward")
        if reward is not None:
            self.stats.episode_return += float(reward)
        if extras.get("done") and self.config.stop_on_episode_end:  # a simulated robot's episode ended
            self.stop("episode_end")
        if self.log is not None:
            self.log.append(
                student_obs=self._obs,
                privileged_obs=extras.get("privileged"),
                action=action,
                policy_action=self._raw,
                reward=reward,
                time=now - t0,
                lateness=lateness,
                events=events,
            )
        return events

    def _decide(self, now: float, t: float) -> tuple[np.ndarray, int]:
        """The action to send now and the step's event bits (the safety decisions, in priority order)."""
        self._raw = None  # the policy's output, when it ran this step
        if self._estop.is_set() or (self._estop_cb is not None and self._estop_cb()):
            self._fault(t, "estop", "e-stop requested")
            self.stop("estop")
            return self.filter.hold_safe(), safety.ESTOP
        if self._latched is not None:
            return self.filter.hold_safe(), safety.FAULT_HOLD
        if self.watchdog.stale(now):
            return self._on_stale(now, t)
        if self._readings is None:
            return self.filter.hold_safe(), safety.WAITING
        obs = self._obs = student_vector(self._readings, self.policy.spec.obs_names, self._prev_action)
        if not (np.abs(obs) <= OBS_LIMIT).all():  # NaN, inf or absurd (what Policy.act refuses)
            self._fault(t, "nonfinite_obs", f"non-finite or absurd observation {obs.tolist()}", once=True)
            return self.filter.hold_safe(), safety.NONFINITE_OBS
        raw = self._raw = self.policy.act(obs)
        if not np.isfinite(raw).all():
            self._fault(t, "nonfinite_action", f"policy output {raw.tolist()}")
            self.policy.reset()  # its history holds the non-finite values now
            return self.filter.hold_safe(), safety.NONFINITE_ACTION
        return self.filter(raw)

    def _on_stale(self, now: float, t: float) -> tuple[np.ndarray, int]:
        age = now - self.watchdog.last_fresh
        fault = self._fault(t, "stale_sensors", f"no fresh reading for {age * 1e3:.1f} ms", once=True)
        if self.config.latch_faults:
            self._latched = fault
        else:  # resume on the next fresh reading: new history, new soft start
            self.policy.reset()
            self.filter.reset()
            self._readings = None
            self.watchdog.start(now - self.watchdog.timeout)  # stale until a fresh reading comes
        return self.filter.hold_safe(), safety.STALE

    def _fault(self, t: float, kind: str, detail: str, once: bool = False) -> Fault:
        faults = self.stats.faults
        if once and faults and faults[-1].kind == kind and faults[-1].step >= self.stats.steps - 1:
            faults[-1].step = self.stats.steps  # same episode of the fault continues
            return faults[-1]
        fault = Fault(self.stats.steps, t, kind, detail)
        faults.append(fault)
        return fault

    # -- start and end ----------------------------------------------------------------------------
    def _install_signals(self):
        if not self.config.handle_sigint:
            return None
        return signals.install(lambda signum: self.stop(signals.reason_of(signum)))

    def _shutdown(self, old_handlers, seed: int | None) -> None:
        """Always: send the safe action, close the episode in the log, restore the signal handlers.
        Runs with stop signals noted, not raised: a second SIGTERM must not cut it short."""
        with signals.shielded() if old_handlers is not None else contextlib.nullcontext():
            self._finish(seed)
        signals.restore(old_handlers)

    def _finish(self, seed: int | None) -> None:
        try:
            self.robot.send(self.filter.hold_safe())
        finally:
            if self.log is not None:
                extras = self.robot.extras() if self._has_extras else {}
                dyn = extras.get("dynamics") or {}
                self.log.end_episode(
                    seed=-1 if seed is None else seed,
                    dynamics=dyn,
                    terminated=bool(extras.get("terminated", False)),
                )


def _realtime(priority: int):
    """Put the calling thread on SCHED_FIFO at `priority`; returns the function that undoes it."""
    if not priority:
        return lambda: None
    if not hasattr(os, "SCHED_FIFO"):
        raise ValueError(f"realtime_priority={priority}: SCHED_FIFO is Linux only")
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError:
        raise PermissionError(
            f"realtime_priority={priority}: SCHED_FIFO needs root or CAP_SYS_NICE (docker run --cap-add "
            "SYS_NICE --ulimit rtprio=99, or `ulimit -r 99` for the user); 0 runs without it"
        ) from None
    return lambda: os.sched_setscheduler(0, policy, param)


def _sleep_until(deadline: float, spin: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > spin:
        time.sleep(remaining - spin)
    while time.monotonic() < deadline:
        pass
