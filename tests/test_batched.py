"""The batched simulation (`envs.batched`, mujoco.batch) against the single env it stands in for."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import envs
from envs import batched
from envs.batched import BatchedTask
from sim2real.teacher.vec import (
    ActionNoise,
    BatchedVecEnv,
    FallPenalty,
    ObsNoise,
    make_privileged_env,
    make_training_env,
)


@pytest.mark.parametrize("task", ["hopper", "walker2d", "halfcheetah", "ant", "go2", "go2_rough"])
def test_batched_env_matches_the_single_env_step_for_step(task):
    n, steps = 3, 150
    batch = batched.make(task, n, nthread=2)
    singles = [gym.make(envs.env_id(task)) for _ in range(n)]
    batch.reset(range(n), seeds=[10 + i for i in range(n)])
    first = np.stack([s.reset(seed=10 + i)[0]["privileged"] for i, s in enumerate(singles)])
    np.testing.assert_array_equal(batch.observe(), first)
    rng, ended = np.random.default_rng(0), 0
    for _ in range(steps):
        actions = rng.uniform(1.5 * batch.action_low, 1.5 * batch.action_high, (n, batch.nu))  # both clip
        obs, reward, terminated, truncated = batch.step(actions)
        for i, single in enumerate(singles):
            s_obs, s_rew, s_term, s_trunc, info = single.step(actions[i])
            np.testing.assert_array_equal(obs[i], s_obs["privileged"])
            assert reward[i] == s_rew and terminated[i] == s_term and truncated[i] == s_trunc
            assert batch.dynamics[i] == info["dynamics"]
            if s_term or s_trunc:  # unseeded resets continue each one's random stream
                ended += 1
                s_first = single.reset()[0]["privileged"]
                batch.reset([i])
                np.testing.assert_array_equal(batch.observe()[i], s_first)
    if task not in ("halfcheetah", "ant"):
        assert ended > 0  # random actions fell: resets were compared too
    batch.reset([0])  # a reset mid-episode, unseeded, as an SB3 auto-reset after the time limit
    np.testing.assert_array_equal(batch.observe()[0], singles[0].reset()[0]["privileged"])


def test_per_episode_randomization_differs_across_simulations_and_does_not_compound():
    batch = BatchedTask("hopper", 4, nthread=1)
    nominal = batch.batch.get_model(0).body_mass.copy()
    batch.reset(range(4), seeds=range(4))
    scales = [d["mass_scale"] for d in batch.dynamics]
    assert len(set(scales)) == 4
    for _ in range(3):  # reset again and again with a fixed value: written from nominal, never compounded
        batch.reset(range(4), overrides={"mass_scale": 1.1})
    for i in range(4):
        np.testing.assert_allclose(batch.batch.get_model(i).body_mass, nominal * 1.1)
    fixed = BatchedTask("hopper", 2, {"mass_scale": [0.5, 0.5]}, nthread=1)
    fixed.reset([0, 1], seeds=[0, 1])
    np.testing.assert_allclose(fixed.batch.get_model(1).body_mass, nominal * 0.5)
    assert fixed.observe()[0, fixed.base_dim] == np.float32(0.5)  # the privileged tail says so


def test_batched_vec_env_auto_resets_like_a_dummy_vec_env_of_single_envs():
    n = 2
    ranges = {"mass_scale": [0.9, 1.1]}
    batched = BatchedVecEnv("hopper", ranges, n, nthread=1)
    dummy = DummyVecEnv([lambda: make_privileged_env("hopper", ranges)] * n)
    batched.seed(5)
    dummy.seed(5)
    np.testing.assert_array_equal(batched.reset(), dummy.reset())
    rng, dones = np.random.default_rng(1), 0
    for _ in range(120):
        actions = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        b_obs, b_rew, b_done, b_info = batched.step(actions)
        d_obs, d_rew, d_done, d_info = dummy.step(actions)
        np.testing.assert_array_equal(b_obs, d_obs)
        np.testing.assert_array_equal(b_done, d_done)
        np.testing.assert_allclose(b_rew, d_rew, rtol=0, atol=1e-6)
        for b, d in zip(b_info, d_info, strict=True):
            if "terminal_observation" in d:
                np.testing.assert_array_equal(b["terminal_observation"], d["terminal_observation"])
                assert b["TimeLimit.truncated"] == d["TimeLimit.truncated"]
        dones += int(d_done.sum())
    assert dones > 0


def test_auto_picks_the_batch_where_a_task_has_batched_rules():
    venv = make_training_env("hopper", {}, 2, "auto", seed=0)
    assert isinstance(venv.venv, BatchedVecEnv)
    with pytest.raises(ValueError, match="task 'pendulum' has no batched simulation"):
        make_training_env("pendulum", {}, 2, "batch", seed=0)


def test_teacher_action_noise_perturbs_executed_actions_within_bounds_reproducibly():
    def executed(sigma: float, seed: int, action: float) -> np.ndarray:
        inner = BatchedVecEnv("halfcheetah", {}, 2, nthread=1)
        venv = ActionNoise(inner, sigma, seed)
        venv.seed(3)
        venv.reset()
        out = []
        for _ in range(100):
            venv.step(np.full((2, 6), action, dtype=np.float32))
            out.append(inner._actions.copy())
        return np.stack(out)  # (100, 2, 6): what the simulations executed

    a = executed(0.2, seed=7, action=0.0)
    np.testing.assert_array_equal(a, executed(0.2, seed=7, action=0.0))  # fixed by the seed
    assert not np.array_equal(a, executed(0.2, seed=8, action=0.0))
    assert abs(float(a.std()) - 0.2) < 0.02 and abs(float(a.mean())) < 0.03  # std 0.2 x half-range 1
    near_bound = executed(0.2, seed=7, action=0.95)
    assert near_bound.max() == 1.0 and (near_bound == 1.0).mean() > 0.3  # clipped like the envs' own


def test_the_teacher_trains_on_perturbed_actions_only_when_asked():
    assert not isinstance(make_training_env("hopper", {}, 2, "auto", seed=0).venv, ActionNoise)
    assert isinstance(make_training_env("hopper", {}, 2, "auto", seed=0, action_noise=0.1).venv, ActionNoise)


def test_teacher_obs_noise_perturbs_what_the_policy_sees_not_the_normalizer_statistics():
    def run(sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        norm = VecNormalize(BatchedVecEnv("halfcheetah", {}, 2, nthread=1), norm_reward=False)
        venv = ObsNoise(norm, sigma, seed=7) if sigma else norm
        venv.seed(3)
        seen, clean = [venv.reset()], [norm.normalize_obs(norm.get_original_obs())]
        for _ in range(200):
            seen.append(venv.step(np.zeros((2, 6), dtype=np.float32))[0])
            clean.append(norm.normalize_obs(norm.get_original_obs()))
        return np.stack(seen), np.stack(clean), norm.obs_rms.mean.copy()  # (201, 2, Dp) x2, (Dp,)

    seen, clean, stats = run(0.3)
    noise = seen - clean
    assert abs(float(noise.std()) - 0.3) < 0.02 and abs(float(noise.mean())) < 0.02
    _, clean_only, stats_clean = run(0.0)
    np.testing.assert_array_equal(stats, stats_clean)  # statistics of the task as it is
    np.testing.assert_allclose(clean, clean_only, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(seen, run(0.3)[0])  # reproducible from its seed


def test_fall_penalty_lowers_only_the_reward_of_a_falling_step_and_not_the_logged_returns():
    def run(task: str, penalty: float, steps: int):
        venv = make_training_env(task, {}, 2, "batch", seed=0, fall_penalty=penalty)
        venv.reset()
        rng, rows = np.random.default_rng(1), []
        for _ in range(steps):
            actions = rng.uniform(-1, 1, (2, venv.action_space.shape[0])).astype(np.float32)
            _, reward, done, infos = venv.step(actions)
            fell = [d and not i["TimeLimit.truncated"] for d, i in zip(done, infos, strict=True)]
            rows.append((reward, np.array(fell), [i["episode"]["r"] for i in infos if "episode" in i]))
        return rows

    plain, penalized = run("hopper", 0.0, 300), run("hopper", 5.0, 300)
    falls = np.stack([f for _, f, _ in plain])  # (300, 2)
    assert falls.sum() >= 4  # random actions topple the hopper
    gap = np.stack([r for r, _, _ in plain]) - np.stack([r for r, _, _ in penalized])  # (300, 2)
    np.testing.assert_allclose(gap, 5.0 * falls, atol=1e-5)
    assert [e for *_, e in plain] == [e for *_, e in penalized]  # the monitor logs the task's returns
    assert isinstance(make_training_env("hopper", {}, 2, "batch", seed=0, fall_penalty=1.0), FallPenalty)
    timed_out = run("halfcheetah", 5.0, 1000)  # never falls: its 1,000th step is cut by the time limit
    assert not any(f.any() for _, f, _ in timed_out) and len(timed_out[-1][2]) == 2
    np.testing.assert_array_equal(timed_out[-1][0], run("halfcheetah", 0.0, 1000)[-1][0])


def test_reset_pitch_starts_every_training_episode_tilted_and_only_when_asked():
    def first_pitches(reset_pitch) -> tuple[np.ndarray, np.ndarray]:
        venv = make_training_env("halfcheetah", {}, 3, "batch", seed=0, reset_pitch=reset_pitch)
        start = venv.reset()[:, 1]  # (3,) rooty, the -v5 obs' second entry
        for _ in range(999):
            venv.step(np.zeros((3, 6), dtype=np.float32))
        obs, _, done, _ = venv.step(np.zeros((3, 6), dtype=np.float32))
        assert done.all()  # HalfCheetah's 1,000-step limit: the auto-reset's first obs came back
        return start, obs[:, 1]

    for pitches in first_pitches((1.0, 1.2)):
        assert ((pitches > 0.9) & (pitches < 1.3)).all()  # U(1.0, 1.2) + the reset's own ±0.1
    for pitches in first_pitches(None):
        assert (np.abs(pitches) <= 0.1).all()


def test_command_period_redraws_the_go2_command_that_often_in_training_only():
    def commands(period: int | None, steps: int) -> list[np.ndarray]:
        venv = BatchedVecEnv("go2", None, 4, seed=0, command_period=period)
        venv.reset()
        seen = []
        for _ in range(steps):
            venv.step(np.zeros((4, 12)))
            seen.append(venv.sim.userdata[:, :3].copy())  # (4, 3) the command in force
        return seen

    short, task = commands(20, 41), commands(None, 41)
    assert not np.array_equal(short[18], short[19])  # step 20: a new draw (rows that did not fall)
    assert np.array_equal(short[19], short[38]) and not np.array_equal(short[38], short[39])
    assert all(np.array_equal(task[0], c) for c in task)  # the task's own: one draw in 500 steps
    assert gym.make("sim2real/Go2-v0").unwrapped.base.rules.command_period == 500  # others untouched
    with pytest.raises(ValueError, match=r"hopper.*no resampled command"):
        make_training_env("hopper", {}, 2, "batch", seed=0, command_period=20)


def test_reset_pitch_is_refused_where_there_is_no_planar_pitch_or_no_batch():
    with pytest.raises(ValueError, match=r"go2.*no planar root pitch"):
        make_training_env("go2", {}, 2, "batch", seed=0, reset_pitch=(0.0, 1.0))
    with pytest.raises(ValueError, match="needs the batched simulation"):
        make_training_env("halfcheetah", {}, 2, "dummy", seed=0, reset_pitch=(0.0, 1.0))


def test_max_pitch_ends_a_training_episode_as_a_fall_once_the_root_pitches_past_it():
    venv = make_training_env("halfcheetah", {}, 2, "batch", seed=0, max_pitch=1.0)
    venv.reset()
    venv.venv.sim.tilt(np.array([1]), np.array([1.5]))  # env 1 nose down past the bound, env 0 upright
    _, _, done, infos = venv.step(np.zeros((2, 6), dtype=np.float32))
    assert done.tolist() == [False, True]
    assert infos[1]["TimeLimit.truncated"] is False  # a fall, so teacher.fall_penalty applies
    assert abs(infos[1]["terminal_observation"][1]) > 1.0  # rooty as it ended; the env restarted upright
    assert abs(venv.venv.sim.pitch()[1]) <= 0.1
    plain = make_training_env("halfcheetah", {}, 2, "batch", seed=0)
    plain.reset()
    plain.venv.sim.tilt(np.array([1]), np.array([1.5]))
    assert not plain.step(np.zeros((2, 6), dtype=np.float32))[2].any()  # the task's own rules: no end
    with pytest.raises(ValueError, match=r"go2.*no planar root pitch"):
        make_training_env("go2", {}, 2, "batch", seed=0, max_pitch=1.0)
    with pytest.raises(ValueError, match="needs the batched simulation"):
        make_training_env("halfcheetah", {}, 2, "dummy", seed=0, max_pitch=1.0)
