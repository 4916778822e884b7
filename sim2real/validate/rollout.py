"""Episode rollouts of one policy over a list of validation episodes, in worker processes.

The student is judged as the robot runs it: the exported artifact through `sim2real.deploy.load_policy`,
fed the task's student observation. The teacher acts on the privileged observation; the random
baseline sets the floor of the normalized score.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

import envs
from envs.spec import Trace
from sim2real.validate.scenarios import Episode

PUSH_SECONDS = 0.2
PUSH_PERIOD_SECONDS = 2.0
RAY_TASKS_PER_WORKER = 4  # smaller tasks than workers: load balance and a moving progress bar


@dataclass(frozen=True)
class PolicySource:
    """What a worker loads: `kind` student (export dir), teacher (expert config), or random."""

    kind: str
    task: str
    ranges: dict
    export_dir: str | None = None
    expert_kind: str | None = None
    expert_path: str | None = None
    run_dir: str | None = None


class _Random:
    def __init__(self, action_dim: int):
        self.action_dim, self.rng = action_dim, np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: dict) -> np.ndarray:
        return self.rng.uniform(-1, 1, self.action_dim).astype(np.float32)


class _Student:
    def __init__(self, export_dir: str, student_names: tuple[str, ...]):
        from sim2real.deploy import load_policy

        self.policy = load_policy(export_dir)
        if tuple(self.policy.spec.obs_names) != tuple(student_names):
            raise ValueError(f"{export_dir}: policy obs_names do not match the task's student observation")

    def reset(self, seed: int) -> None:
        self.policy.reset()

    def __call__(self, obs: dict) -> np.ndarray:
        return self.policy.act(obs["student"])


class _Teacher:
    def __init__(self, src: PolicySource):
        import torch

        torch.set_num_threads(1)  # one process per core: torch's own threads would oversubscribe
        from sim2real.teacher.config import ExpertConfig
        from sim2real.teacher.experts import load_expert

        cfg = ExpertConfig(kind=src.expert_kind or "teacher", path=src.expert_path)
        self.expert = load_expert(cfg, src.run_dir or ".", src.task)

    def reset(self, seed: int) -> None:
        pass

    def __call__(self, obs: dict) -> np.ndarray:
        return self.expert.act(obs["privileged"][None])[0]


def _make(src: PolicySource, env):
    task = env.unwrapped
    if src.kind == "student":
        return _Student(src.export_dir, task.student_names)
    if src.kind == "teacher":
        return _Teacher(src)
    if src.kind == "random":
        return _Random(env.action_space.shape[0])
    raise ValueError(f"unknown policy kind {src.kind!r}")


def run_chunk(src: PolicySource, episodes: list[Episode]) -> list[dict]:
    """Run `episodes` with one policy in this process; one result dict per episode."""
    import gymnasium as gym

    env = gym.make(envs.env_id(src.task), randomization=src.ranges)
    act = _make(src, env)
    out = [_episode(env, act, ep, src) for ep in episodes]
    env.close()
    return out


def _episode(env, act, ep: Episode, src: PolicySource) -> dict:
    task = env.unwrapped
    obs, _ = env.reset(seed=ep.seed, options={"dynamics": ep.dynamics})
    act.reset(ep.seed)
    rng = np.random.default_rng(ep.seed + 7)
    push_len = max(1, round(PUSH_SECONDS / task.dt))
    period = max(push_len + 1, round(PUSH_PERIOD_SECONDS / task.dt))
    total_mass = float(task.model.body_mass.sum())
    ret, actions, privileged, rewards, terminated, t = 0.0, [], [], [], False, 0
    last_student = obs["student"]
    while True:
        if ep.stress.dropout_prob and rng.random() < ep.stress.dropout_prob:
            obs = {**obs, "student": last_student}
        last_student = obs["student"]
        a = np.asarray(act(obs), dtype=np.float32)
        if ep.stress.push_accel:
            _push(task.data, t, period, push_len, ep.stress.push_accel * total_mass, rng)
        obs, r, terminated, truncated, info = env.step(a)
        ret += r
        actions.append(a)
        privileged.append(obs["privileged"])
        rewards.append(r)
        t += 1
        if terminated or truncated:
            break
    spec = envs.spec(src.task)
    trace = Trace(np.asarray(privileged), np.asarray(rewards), bool(terminated))
    return {
        "scenario": ep.scenario,
        "value": ep.value,
        "seed": ep.seed,
        "policy": src.kind,
        "return": ret,
        "length": t,
        "failed": spec.failed(trace),
        "fall_causes": list(info.get("falls", [])) if terminated else [],  # the Go2 names its falls
        "jerk": _jerk(np.asarray(actions)),
        "metrics": spec.metrics(trace),
    }


def _push(data, t: int, period: int, length: int, force: float, rng) -> None:
    phase = t % period
    if phase == period // 2:
        data.xfrc_applied[1, 0] = force * rng.choice([-1.0, 1.0])
    elif phase == period // 2 + length:
        data.xfrc_applied[1, :] = 0.0


def _jerk(actions: np.ndarray) -> float:
    """Mean magnitude of the action's second difference per step: how shaky the commands are."""
    if len(actions) < 3:
        return 0.0
    return float(np.abs(np.diff(actions, n=2, axis=0)).mean())


def run_all(src: PolicySource, episodes: list[Episode], workers: int, backend: str = "local") -> list[dict]:
    """Split episodes into chunks and run them in `workers` processes (in-process when workers <= 1),
    or as Ray tasks (`backend="ray"`, inside `ray_backend.session`); results in `episodes` order.

    Every episode is a pure function of its seed, dynamics and stress, so the split changes nothing."""
    if backend == "ray":
        from sim2real.ray_backend import absolute, run_tasks

        n = min(len(episodes), RAY_TASKS_PER_WORKER * workers)
        chunks = [episodes[i::n] for i in range(n)]
        paths = {k: absolute(getattr(src, k)) for k in ("export_dir", "run_dir", "expert_path")}
        src = dataclasses.replace(src, **paths)
        parts = run_tasks(
            run_chunk, [(src, c) for c in chunks], workers, desc=src.kind, weights=[len(c) for c in chunks]
        )
    elif workers <= 1 or len(episodes) < 8:
        return run_chunk(src, episodes)
    else:
        chunks = [episodes[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            parts = list(pool.map(run_chunk, [src] * workers, chunks))
    order = {(ep.scenario, ep.value, ep.seed): i for i, ep in enumerate(episodes)}
    results = [r for part in parts for r in part]
    return sorted(results, key=lambda r: order[(r["scenario"], r["value"], r["seed"])])
