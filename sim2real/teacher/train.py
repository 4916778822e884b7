"""`sim2real train-teacher`: SB3 PPO/SAC on the privileged observation under domain randomization.

Reads top to bottom: build the vectorized randomized envs (VecNormalize on observations), create
the model or resume it from `<run_dir>/teacher/checkpoints`, learn with a progress bar, periodic
evaluation on separate seeds (best kept) and checkpoints, then publish the chosen checkpoint as
`model.zip` + `obs_norm.json` + `teacher.json` and evaluate the published teacher once more, under
randomization and under nominal dynamics, through `load_teacher` itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

import envs
from sim2real.artifacts import RunLayout, sha256_file, stage_run, write_json_atomic
from sim2real.checks import ConfigError
from sim2real.config import Config
from sim2real.errors import UserError
from sim2real.metrics import MetricLogger
from sim2real.teacher.callbacks import EvalAndCheckpoint, MetricWriter, ProgressBar
from sim2real.teacher.checkpoint import Checkpoints, TrainState
from sim2real.teacher.curriculum import curriculum_of
from sim2real.teacher.evaluate import ExpertEvaluator
from sim2real.teacher.hyperparams import TRAINABLE, sb3_kwargs
from sim2real.teacher.policy import FORMAT, INFO, MODEL, NORMALIZER, load_teacher, read_info
from sim2real.teacher.record import RecordEpisodes
from sim2real.teacher.vec import HideColumns, ObsNoise, make_training_env
from sim2real.teacher.warm_start import warm_start

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never share seeds with training envs


@dataclass
class TrainResult:
    """The published teacher's summary, and the in-memory model with its (closed) training VecNormalize."""

    summary: dict[str, Any]
    model: BaseAlgorithm
    venv: VecNormalize


def run(cfg: Config) -> None:
    _check(cfg)  # bad input fails before anything is written
    out = RunLayout(cfg.run_dir).teacher
    with stage_run(out, "train-teacher", asdict(cfg), cfg.seed) as record:
        summary = train(cfg, out).summary
        record.summary.update(summary)
        record.outputs.update(
            {name: sha256_file(out / name) for name in (MODEL, NORMALIZER, INFO) if (out / name).exists()}
        )
    print(
        f"teacher {summary['name']}: {summary['algo']} {summary['num_timesteps']} steps; eval return "
        f"{summary['eval_return_randomized']:.1f} randomized, {summary['eval_return_nominal']:.1f} nominal"
        f" -> {out}"
    )


def train(cfg: Config, out: Path) -> TrainResult:
    """Train (or resume) to the budget, publish the teacher in `out`, return its summary."""
    _check(cfg)
    tc = cfg.teacher
    algo_cfg = tc.algo_config()
    kwargs = sb3_kwargs(tc.algo, algo_cfg.hyperparams)
    if tc.torch_threads > 0:
        import torch

        torch.set_num_threads(tc.torch_threads)
    checkpoints = Checkpoints(out / "checkpoints")
    state = _resume_state(cfg, checkpoints)
    seed = cfg.seed + state.num_timesteps  # a resumed run draws fresh episodes and noise
    venv = make_training_env(
        cfg.task.name,
        cfg.task.ranges(),
        tc.num_envs(),
        tc.vec_env,
        seed,
        tc.action_noise,
        tc.reset_pitch,
        tc.command_period,
        tc.record_episodes,
        tc.fall_penalty,
        tc.terrain_curriculum,
        tc.curriculum_progress,
        tc.max_pitch,
    )
    venv = VecNormalize(
        venv,
        norm_obs=tc.normalize_obs,
        norm_reward=algo_cfg.normalize_reward,
        clip_obs=tc.clip_obs,
        gamma=kwargs.get("gamma", 0.99),
    )
    policy_env = ObsNoise(venv, tc.obs_noise, seed) if tc.obs_noise > 0 else venv
    hidden = blind_columns(cfg.task.name) if tc.blind_params else ()
    policy_env = HideColumns(policy_env, hidden) if hidden else policy_env
    evaluator = ExpertEvaluator(
        cfg.task.name, cfg.task.ranges(), tc.eval_episodes, cfg.seed + EVAL_SEED_OFFSET
    )
    metrics = MetricLogger(cfg.logger, RunLayout(cfg.run_dir).logs("teacher"), "teacher", asdict(cfg))
    try:
        model = _model(cfg, kwargs, venv, policy_env, checkpoints, state)
        model.set_logger(Logger(None, [MetricWriter(metrics, tc.algo)]))
        recorder = _recorder(cfg, state)
        steps_per_s = _learn(cfg, model, evaluator, checkpoints, state, recorder, hidden)
        summary = _publish(cfg, out, checkpoints, state, evaluator, metrics)
        if recorder is not None:
            summary["recorded"] = {"path": str(recorder.path), "episodes": recorder.episodes}
        return TrainResult({**summary, "steps_per_second": steps_per_s}, model, venv)
    finally:
        venv.close()
        evaluator.close()
        metrics.close()


def blind_columns(task: str) -> tuple[int, ...]:
    """The privileged columns holding the physical parameters, for `teacher.blind_params`."""
    env = gym.make(envs.env_id(task))
    try:
        columns = getattr(env.unwrapped, "param_columns", None)
    finally:
        env.close()
    if not columns:
        raise ConfigError(f"teacher.blind_params: task {task!r} does not say where its parameters are")
    return tuple(columns)


def _check(cfg: Config) -> None:
    envs.env_id(cfg.task.name)  # ValueError naming the known tasks
    tc = cfg.teacher
    sb3_kwargs(tc.algo, tc.algo_config().hyperparams)
    for name, ok in (
        ("total_timesteps", tc.budget() >= 1),
        ("n_envs", tc.num_envs() >= 1),
        ("eval_episodes", tc.eval_episodes >= 1),
        ("eval_freq", tc.eval_freq >= 0),
        ("checkpoint_freq", tc.checkpoint_freq >= 0),
    ):
        if not ok:
            raise UserError(f"teacher.{name} is out of range")
    if tc.init_from is not None:
        read_info(tc.init_from)  # FileNotFoundError naming the folder


def _resume_config(cfg: Config) -> dict[str, Any]:
    """What a checkpoint must have been trained with to be continued (the budget may grow)."""
    tc = cfg.teacher
    algo = asdict(tc.algo_config())
    del algo["total_timesteps"], algo["n_envs"]  # SB3 continues with another budget or env count
    return {
        "task": asdict(cfg.task),
        "seed": cfg.seed,
        "algo": tc.algo,
        "normalize_obs": tc.normalize_obs,
        "clip_obs": tc.clip_obs,
        "init_from": tc.init_from,
        tc.algo: algo,
    }


def _resume_state(cfg: Config, checkpoints: Checkpoints) -> TrainState:
    want = json.loads(json.dumps(_resume_config(cfg)))
    state = checkpoints.load_state() if cfg.teacher.resume else None
    if state is None:
        return TrainState(resume_config=want)
    diff = _first_difference(state.resume_config, want)
    if diff is not None:
        raise UserError(
            f"{checkpoints.dir} holds a teacher trained with a different config ({diff}); "
            "use another run_dir, or teacher.resume=false to start over"
        )
    return state


def _first_difference(old: Any, new: Any, key: str = "") -> str | None:
    """The first setting that differs, or None; a key one side lacks counts as None, so a config key added
    later with a None default does not orphan earlier checkpoints."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                return _first_difference(old.get(k), new.get(k), f"{key}.{k}" if key else k)
        return None
    return None if old == new else f"{key}: {old!r} -> {new!r}"


def _device(cfg: Config) -> str:
    if cfg.device != "auto":
        return cfg.device
    import torch

    # PPO's small MLPs run faster on the CPU (SB3's advice); SAC's many updates gain from a GPU
    return "cuda" if cfg.teacher.algo == "sac" and torch.cuda.is_available() else "cpu"


def _model(
    cfg: Config,
    kwargs: dict[str, Any],
    venv: VecNormalize,
    policy_env: VecEnv,
    checkpoints: Checkpoints,
    state: TrainState,
) -> BaseAlgorithm:
    """A new or resumed model acting in `policy_env` (`venv`, or `venv` under ObsNoise)."""
    algo = TRAINABLE[cfg.teacher.algo]
    if state.num_timesteps > 0:
        model, normalizer = checkpoints.load_last(algo, policy_env, _device(cfg))
        if normalizer is not None:
            normalizer.restore_into(venv)
        if state.reward_stats is not None and venv.norm_reward:
            venv.ret_rms.mean, venv.ret_rms.var, venv.ret_rms.count = state.reward_stats
        _restore_levels(venv, state)
        print(f"train-teacher: resuming from {checkpoints.dir} at step {model.num_timesteps}")
        return model
    try:
        model = algo("MlpPolicy", policy_env, seed=cfg.seed, device=_device(cfg), verbose=0, **kwargs)
    except (TypeError, ValueError, AssertionError) as e:
        raise UserError(f"teacher.{cfg.teacher.algo}.hyperparams: SB3 refused them: {e}") from e
    if cfg.teacher.init_from is not None:
        print(warm_start(model, venv, Path(cfg.teacher.init_from), cfg.task.name))
    return model


def _restore_levels(venv: VecEnv, state: TrainState) -> None:
    """A resumed curriculum continues on its envs' levels (the same number of envs; else it starts over)."""
    curriculum = curriculum_of(venv)
    levels = state.terrain_levels
    if curriculum is not None and levels is not None and len(levels) == len(curriculum.levels):
        curriculum.levels[:] = levels


def _recorder(cfg: Config, state: TrainState) -> RecordEpisodes | None:
    """`teacher.record_episodes`: the callback that keeps the run's episodes (a resumed run appends)."""
    if not cfg.teacher.record_episodes:
        return None
    from sim2real.data.rollout import task_spec

    spec = task_spec(cfg.task.name, cfg.task.ranges())
    path = RunLayout(cfg.run_dir).training
    return RecordEpisodes(path, spec, cfg.teacher.algo, cfg.teacher.record_every, state.num_timesteps == 0)


def _learn(
    cfg: Config,
    model: BaseAlgorithm,
    evaluator: ExpertEvaluator,
    checkpoints: Checkpoints,
    state: TrainState,
    recorder: RecordEpisodes | None = None,
    hidden: tuple[int, ...] = (),
) -> float | None:
    """Learn to the budget; env steps per wall second of this call (evaluations and checkpoints included)."""
    tc = cfg.teacher
    start_step, remaining = model.num_timesteps, tc.budget() - model.num_timesteps
    if remaining <= 0:
        print(f"train-teacher: checkpoint already at step {model.num_timesteps} of {tc.budget()}")
        return None
    progress = ProgressBar(tc.budget(), tc.progress)
    evals = EvalAndCheckpoint(
        evaluator,
        checkpoints,
        state,
        tc.eval_freq,
        tc.checkpoint_freq,
        tc.save_replay_buffer,
        progress,
        hidden,
    )
    callbacks = [evals, progress, *([recorder] if recorder is not None else [])]
    start = time.perf_counter()
    try:
        model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=model.num_timesteps == 0)
        return (model.num_timesteps - start_step) / (time.perf_counter() - start)
    except KeyboardInterrupt:
        evals.save_last()
        if recorder is not None:
            recorder.close()  # the episodes up to the interrupt stay recorded
        raise SystemExit(
            f"train-teacher: interrupted at step {model.num_timesteps}; checkpoint saved, "
            "rerun the same command to resume"
        ) from None


def _publish(
    cfg: Config,
    out: Path,
    checkpoints: Checkpoints,
    state: TrainState,
    evaluator: ExpertEvaluator,
    metrics: MetricLogger,
) -> dict[str, Any]:
    """Copy the kept checkpoint (`teacher.keep`: the best evaluated, or the last; the last where nothing was
    evaluated) to the teacher's files and describe it."""
    which = "best" if cfg.teacher.keep == "best" and state.best_step is not None else "last"
    checkpoints.publish(which, out, MODEL, NORMALIZER)
    info = {
        "format": FORMAT,
        "format_version": 1,
        "task": cfg.task.name,
        "env_id": envs.env_id(cfg.task.name),
        "algo": cfg.teacher.algo,
        "normalize_obs": cfg.teacher.normalize_obs,
        "num_timesteps": state.num_timesteps,
        "checkpoint": which,
        "checkpoint_step": state.best_step if which == "best" else state.num_timesteps,
        "checkpoint_eval_return": state.best_return if which == "best" else None,
        "evals": state.evals,
    }
    write_json_atomic(out / INFO, info)
    teacher = load_teacher(out)
    randomized, nominal = evaluator(teacher), evaluator(teacher, nominal=True)
    summary = {
        "name": teacher.name,
        "algo": cfg.teacher.algo,
        "num_timesteps": state.num_timesteps,
        "checkpoint": which,
        "checkpoint_step": info["checkpoint_step"],
        "eval_return_randomized": float(np.mean(randomized)),
        "eval_return_nominal": float(np.mean(nominal)),
        "eval_episodes": len(randomized),
        "sha256": teacher.sha256,
    }
    metrics.log_summary(summary)
    return summary
