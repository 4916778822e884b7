"""Fit the task's dynamics parameters to a log: multiple shooting over segments, latency by search.

Each segment of K steps starts from its own state (qpos, qvel: free variables, since a robot's
sensors do not give the full state), replays the logged actions, and is compared with the logged
readings L steps later (the sensor latency). The continuous parameters and all segment states are
fitted together by `mujoco.minimize.least_squares`; the latency is the L with the smallest cost.
Segments the dynamics cannot explain from any start (a robot restarted or caught mid-log: its
readings jump) are dropped before the fit, the same ones for every latency, and reported.
Residuals are in units of each feature's nominal sensor noise, and a weak prior (std `prior_std`
around the nominal value) keeps a parameter the log cannot tell apart from another one (on a
pendulum, mass and motor strength only act as their ratio) where it was; such a parameter's
confidence interval says so (`identified` False).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np
from mujoco import minimize

from envs import parameters
from sim2real.errors import UserError
from sim2real.identify.log import LogData
from sim2real.identify.sim import TaskSim

Z_PRIOR = 1e-3  # prior weight on segment state offsets: fixes directions the readings do not see
# a segment whose own best fit under nominal dynamics costs this many times the typical segment's (or
# the cost of nominal noise, if more) at some latency is an outlier. Measured on the pendulum loop's
# logs: a restart inside a segment costs 230-830x the median; a fast swing under dynamics 1.3x off
# nominal up to 22x
OUTLIER_FACTOR = 100.0


@dataclass(frozen=True)
class FitSettings:
    names: tuple[str, ...]  # continuous parameters to fit
    fixed: dict[str, float] = field(default_factory=dict)  # known values (a weighed robot's mass_scale)
    segment_steps: int = 20
    segments: int = 16
    max_latency: int = 5
    max_iter: int = 40
    prior_std: float = 1.0


@dataclass
class Problem:
    """The data of one latency hypothesis: segment starts, actions, target readings, weights."""

    sim: TaskSim
    settings: FitSettings
    slots: list[tuple[int, int]]  # (episode, first step) of each segment
    actions: np.ndarray  # (N, K-1, nu)
    targets: np.ndarray  # (N, K, F) logged readings
    weights: np.ndarray  # (F,) 1 / nominal noise std
    base_qpos: np.ndarray  # (N, nq) the tangent origin of each segment's start
    prior: np.ndarray  # (P,) nominal values

    @property
    def n_segments(self) -> int:
        return len(self.actions)

    @property
    def n_state(self) -> int:
        return 2 * self.sim.nv

    @property
    def n_params(self) -> int:
        return len(self.settings.names)


@dataclass
class FitResult:
    latency: int
    values: dict[str, float]
    ci95: dict[str, float]  # half-width
    identified: dict[str, bool]
    noise_scale: float
    cost_by_latency: list[float]
    rms_nominal: float  # residual RMS (noise units) with nominal parameters, same segment states
    rms_fit: float
    correlation: list[list[float]]
    predicted: np.ndarray  # (N, K, F) with the fitted parameters
    predicted_nominal: np.ndarray  # (N, K, F)
    targets: np.ndarray  # (N, K, F)
    slots: list[tuple[int, int]]  # (episode, first step) of each segment fitted
    dropped: list[tuple[int, int]]  # segments left out as outliers (a restart, a catch)


def segment_starts(log: LogData, k: int, n: int, max_latency: int) -> list[tuple[int, int]]:
    """(episode, first step) of up to `n` non-overlapping segments spread over the log."""
    span = k + max_latency
    slots = [(e, t) for e, r in enumerate(log.readings) for t in range(0, len(r) - span + 1, k)]
    if len(slots) <= n:
        return slots
    return [slots[i] for i in np.linspace(0, len(slots) - 1, n).round().astype(int)]


def build_problem(
    sim: TaskSim, log: LogData, settings: FitSettings, latency: int, starts: list[tuple[int, int]]
) -> Problem:
    k = settings.segment_steps
    actions = np.stack([log.actions[e][t : t + k - 1] for e, t in starts])
    targets = np.stack([log.readings[e][t + latency : t + latency + k] for e, t in starts])
    noise = sim.sensors.noise_std
    std = noise if len(noise) == targets.shape[2] else np.full(targets.shape[2], noise.mean())
    weights = 1.0 / np.maximum(std, 1e-4)
    base = np.stack([_static_qpos(sim, tg[0]) for tg in targets])
    prior = np.array([parameters.TABLE[n].nominal for n in settings.names], float)
    return Problem(sim, settings, list(starts), actions, targets, weights, base, prior)


def _static_qpos(sim: TaskSim, reading: np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
    """A qpos whose noise-free features match one reading (velocity 0): the one nearest `near` when
    given (the next step of a segment must not jump a turn of a hinge), else the best of a few guesses."""
    qpos0 = sim.model.qpos0.copy() if near is None else near.copy()
    zero = np.zeros(sim.nv)

    def residual(x: np.ndarray) -> np.ndarray:
        cols = x.reshape(sim.nv, -1).T
        rows = [
            np.concatenate([sim.features(_qpos(sim, qpos0, dq), zero) - reading, Z_PRIOR * dq]) for dq in cols
        ]
        r = np.stack(rows, axis=1)  # (R, M)
        return r[:, 0] if x.ndim == 1 else r

    best, best_cost = qpos0, np.inf
    for c in (0.0,) if near is not None else (0.0, np.pi / 2, np.pi, -np.pi / 2):
        x, _ = minimize.least_squares(np.full(sim.nv, c), residual, max_iter=30, verbose=0)
        cost = float(np.sum(residual(x) ** 2))
        if cost < best_cost:
            best, best_cost = _qpos(sim, qpos0, x), cost
    return best


def _qpos(sim: TaskSim, base: np.ndarray, dq: np.ndarray) -> np.ndarray:
    q = base.copy()
    mujoco.mj_integratePos(sim.model, q, dq, 1.0)
    return q


def predictions(p: Problem, thetas: np.ndarray, z: np.ndarray) -> np.ndarray:
    """thetas (M, P), z (M, N, 2nv) -> predicted features (M, N, K, F), one rollout per (m, n)."""
    sim, nv = p.sim, p.sim.nv
    m, n = len(thetas), p.n_segments
    models, starts = [], []
    for j in range(m):
        model = sim.model_with({**p.settings.fixed, **dict(zip(p.settings.names, thetas[j], strict=True))})
        for i in range(n):
            models.append(model)
            starts.append(np.concatenate([_qpos(sim, p.base_qpos[i], z[j, i, :nv]), z[j, i, nv:]]))
    actions = np.broadcast_to(p.actions, (m, *p.actions.shape)).reshape(m * n, *p.actions.shape[1:])
    out = sim.predict(models, np.stack(starts), actions)
    return out.reshape(m, n, *out.shape[1:])


def split(p: Problem, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (P + N·2nv, M) -> thetas (M, P), z (M, N, 2nv)."""
    th = x[: p.n_params].T
    z = x[p.n_params :].T.reshape(x.shape[1], p.n_segments, p.n_state)
    return th, z


def residual(p: Problem, x: np.ndarray) -> np.ndarray:
    """Vectorized: x (n,) or (n, M) -> (R,) or (R, M): data rows, then prior rows."""
    cols = x[:, None] if x.ndim == 1 else x
    th, z = split(p, cols)
    pred = predictions(p, th, z)  # (M, N, K, F)
    r = _rows(p, pred, th, z)
    return r[:, 0] if x.ndim == 1 else r


def _rows(p: Problem, pred: np.ndarray, th: np.ndarray, z: np.ndarray) -> np.ndarray:
    m = len(th)
    data = ((pred - p.targets) * p.weights).reshape(m, -1)
    prior = (th - p.prior) / p.settings.prior_std
    zprior = Z_PRIOR * z[:, :, : p.sim.nv].reshape(m, -1)
    return np.concatenate([data, prior, zprior], axis=1).T


def jacobian(p: Problem, x: np.ndarray, r: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Finite differences in P + 2nv rollout batches: segment states only move their own segment,
    so the k-th state variable of every segment is perturbed at once."""
    x, r = np.ravel(x), np.ravel(r)
    n_p, n_s, n = p.n_params, p.n_state, p.n_segments
    cols = np.repeat(x[:, None], n_p + n_s, axis=1)
    for j in range(n_p):
        cols[j, j] += eps
    for k in range(n_s):
        cols[n_p + np.arange(n) * n_s + k, n_p + k] += eps
    rp = residual(p, cols)  # (R, P + 2nv)
    diff = (rp - r[:, None]) / eps
    jac = np.zeros((len(r), len(x)))
    jac[:, :n_p] = diff[:, :n_p]
    rows_per_seg = p.targets.shape[1] * p.targets.shape[2]
    for i in range(n):
        seg = slice(i * rows_per_seg, (i + 1) * rows_per_seg)
        zp = slice(n * rows_per_seg + n_p + i * p.sim.nv, n * rows_per_seg + n_p + (i + 1) * p.sim.nv)
        for k in range(n_s):
            c = n_p + i * n_s + k
            jac[seg, c] = diff[seg, n_p + k]
            if k < p.sim.nv:
                jac[zp, c] = diff[zp, n_p + k]
    return jac


def initial_x(p: Problem) -> np.ndarray:
    """Nominal parameters, and each segment's start fitted alone under them: from the first two
    readings' static fits (a finite-difference velocity), and from rest, keeping the better."""
    z = np.zeros((p.n_segments, p.n_state))
    for i in range(p.n_segments):
        q1 = _static_qpos(p.sim, p.targets[i, 1], near=p.base_qpos[i])
        v = np.zeros(p.sim.nv)
        mujoco.mj_differentiatePos(p.sim.model, v, p.sim.dt, p.base_qpos[i], q1)
        z[i] = _fit_segment(p, i, [np.concatenate([np.zeros(p.sim.nv), v]), np.zeros(p.n_state)])
    return np.concatenate([p.prior, z.ravel()])


def _fit_segment(p: Problem, i: int, guesses: Sequence[np.ndarray]) -> np.ndarray:
    one = subproblem(p, [i])

    def res(z: np.ndarray) -> np.ndarray:
        cols = z[:, None] if z.ndim == 1 else z
        x = np.concatenate([np.repeat(p.prior[:, None], cols.shape[1], axis=1), cols])
        r = residual(one, x)
        return r[:, 0] if z.ndim == 1 else r

    best, best_cost = guesses[0], np.inf
    for g in guesses:
        z, _ = minimize.least_squares(g, res, max_iter=20, verbose=0)
        cost = float(np.sum(res(z) ** 2))
        if cost < best_cost:
            best, best_cost = z, cost
    return best


def bounds(p: Problem) -> list[np.ndarray]:
    lo = [max(parameters.TABLE[n].bounds[0], 0.05) for n in p.settings.names]
    hi = [min(parameters.TABLE[n].bounds[1], 20.0) for n in p.settings.names]
    inf = np.full(
        p.n_segments * p.n_state, 1e6
    )  # segment states: unbounded in effect (minimize wants finite)
    return [np.concatenate([lo, -inf]), np.concatenate([hi, inf])]


def solve(p: Problem, x0: np.ndarray, max_iter: int) -> tuple[np.ndarray, float]:
    x, _ = minimize.least_squares(
        x0,
        lambda x: residual(p, x),
        bounds=bounds(p),
        jacobian=lambda x, r: jacobian(p, x, r),
        max_iter=max_iter,
        verbose=0,
    )
    return x, float(np.sum(residual(p, x) ** 2))


def identify(sim: TaskSim, log: LogData, settings: FitSettings) -> FitResult:
    """Drop the outlier segments, search the latency, fit the continuous parameters at the best one,
    and describe the fit."""
    k, n = settings.segment_steps, settings.segments
    candidates = segment_starts(log, k, 2 * n, settings.max_latency)  # spares for the outliers
    problems = [build_problem(sim, log, settings, lat, candidates) for lat in range(settings.max_latency + 1)]
    x0 = [initial_x(p) for p in problems]
    good = inliers(
        np.stack([segment_costs(p, x) for p, x in zip(problems, x0, strict=True)]), k * len(sim.feature_names)
    )
    dropped = [c for i, c in enumerate(candidates) if i not in good]
    keep = [good[i] for i in np.linspace(0, len(good) - 1, min(n, len(good))).round().astype(int)]
    costs, fits = [], []
    for p, x in zip(problems, x0, strict=True):
        p, x = take(p, x, keep)
        x, cost = solve(p, x, max(5, settings.max_iter // 3))
        costs.append(cost)
        fits.append((p, x))
    latency = int(np.argmin(costs))
    p, x = fits[latency]
    x, costs[latency] = solve(p, x, settings.max_iter)
    return describe(p, x, latency, costs, dropped)


def segment_costs(p: Problem, x: np.ndarray) -> np.ndarray:
    """(N,) each segment's data cost at x (noise units squared)."""
    th, z = split(p, x[:, None])
    pred = predictions(p, th, z)[0]  # (N, K, F)
    return np.sum(((pred - p.targets) * p.weights) ** 2, axis=(1, 2))


def inliers(costs: np.ndarray, noise_cost: float) -> list[int]:
    """Segments no latency finds an outlier in. costs (latencies, N): each segment's own best fit
    under nominal dynamics; an outlier costs OUTLIER_FACTOR x the median segment's, or x the cost of
    nominal sensor noise (`noise_cost`) when that is more (a noise-free log's median is ~0)."""
    limit = OUTLIER_FACTOR * np.maximum(np.median(costs, axis=1, keepdims=True), noise_cost)  # (L, 1)
    good = np.flatnonzero((costs <= limit).all(axis=0))
    if len(good) == 0:
        raise UserError(
            f"identify: every one of {costs.shape[1]} log segments is an outlier (costs "
            f"{OUTLIER_FACTOR:g}x the typical one): the log is not this task's dynamics"
        )
    return good.tolist()


def subproblem(p: Problem, idx: Sequence[int]) -> Problem:
    """The problem on the segments `idx` only."""
    idx = list(idx)
    return dataclasses.replace(
        p, slots=[p.slots[i] for i in idx], actions=p.actions[idx], targets=p.targets[idx],
        base_qpos=p.base_qpos[idx],
    )  # fmt: skip


def take(p: Problem, x: np.ndarray, idx: Sequence[int]) -> tuple[Problem, np.ndarray]:
    """The problem on the segments `idx` only, and the matching part of x."""
    z = x[p.n_params :].reshape(p.n_segments, p.n_state)[list(idx)]
    return subproblem(p, idx), np.concatenate([x[: p.n_params], z.ravel()])


def describe(
    p: Problem, x: np.ndarray, latency: int, costs: Sequence[float], dropped: list[tuple[int, int]]
) -> FitResult:
    r = residual(p, x)
    n_data = p.targets.size
    jac = jacobian(p, x, r)
    dof = max(1, n_data - len(x))
    sigma2 = float(np.sum(r[:n_data] ** 2)) / dof
    cov = sigma2 * np.linalg.pinv(jac.T @ jac)[: p.n_params, : p.n_params]
    std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    names = p.settings.names
    th, z = split(p, x[:, None])
    nominal = np.concatenate([p.prior, x[p.n_params :]])
    pred_nom = predictions(p, p.prior[None], split(p, nominal[:, None])[1])[0]
    pred = predictions(p, th, z)[0]
    raw = len(p.sim.sensors.noise_std)
    noise = float(np.sqrt(np.mean(np.sum(((pred - p.targets) * p.weights) ** 2, axis=2)) / raw))
    corr = cov / np.maximum(np.outer(std, std), 1e-300)
    return FitResult(
        latency=latency,
        values={n: float(v) for n, v in zip(names, x[: p.n_params], strict=True)},
        ci95={n: float(1.96 * s) for n, s in zip(names, std, strict=True)},
        identified={n: bool(s < 0.1 * p.settings.prior_std) for n, s in zip(names, std, strict=True)},
        noise_scale=noise,
        cost_by_latency=[float(c) for c in costs],
        rms_nominal=_rms(pred_nom, p),
        rms_fit=_rms(pred, p),
        correlation=np.round(corr, 3).tolist(),
        predicted=pred,
        predicted_nominal=pred_nom,
        targets=p.targets,
        slots=p.slots,
        dropped=dropped,
    )


def _rms(pred: np.ndarray, p: Problem) -> float:
    return float(np.sqrt(np.mean(((pred - p.targets) * p.weights) ** 2)))
