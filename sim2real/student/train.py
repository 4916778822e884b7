"""`sim2real distill`: behaviour cloning of the student from a demo store, then optional DAgger rounds.

Reads `data=PATH.zarr` (default `<run_dir>/demos.zarr`) and nothing else: no expert or teacher dir is
needed unless `distill.dagger_rounds > 0`. Writes `<run_dir>/student/` (model.safetensors,
config.json, manifest.json, metrics) and, while unfinished, resumable progress files.
Under `torchrun` it trains data-parallel (DDP) with the trajectory of one process (see `distributed`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sim2real.artifacts import RunLayout, sha256_file, sha256_tree, stage_run
from sim2real.config import Config, LoggerConfig
from sim2real.data.sampler import WindowSampler, fit_stats, split_episodes
from sim2real.data.store import exists, stored_path
from sim2real.errors import UserError
from sim2real.metrics import MetricLogger
from sim2real.student import checkpoint as ckpt
from sim2real.student.best import BestEval
from sim2real.student.distributed import (
    World,
    barrier,
    forwards,
    local_batch_size,
    process_group,
    rank_device,
    resolve_backend,
    resolve_device,
    shard,
    sharded_masked_mse,
    sum_over_ranks,
)
from sim2real.student.episodes import filter_line, keep_top, load_training_data, return_conditioned
from sim2real.student.loss import DistillLoss
from sim2real.student.model import ModelConfig
from sim2real.student.normalizer import return_stats
from sim2real.student.optim import lr_at, make_optimizer, masked_mse
from sim2real.student.rollout import env_matches, evaluate, mean_ci95

EVAL_SEED_BASE = 2**31 - 2**20  # evaluation seeds EVAL_SEED_BASE + i: far from collection and DAgger seeds
VAL_MAX_BATCHES = 20


def run(cfg: Config) -> None:
    world = World.from_env()
    local_batch_size(cfg.distill.batch_size, world)  # a bad split fails before any networking
    data = stored_path(cfg.data) if cfg.data else RunLayout(cfg.run_dir).demos
    if not exists(data):
        hint = "pass data=PATH.zarr" if cfg.data else "run `sim2real collect` first or pass data=PATH.zarr"
        raise FileNotFoundError(f"no demonstration store at {data}: {hint}")
    device = rank_device(resolve_device(cfg.device), world)
    backend = resolve_backend(cfg.distill.ddp_backend, device) if world.distributed else None
    with process_group(world, backend, device, cfg.distill.ddp_timeout_s):
        summary = _distill(cfg, data, world)
        barrier(world, device)  # the others wait for rank 0's final evaluation and manifest
    if summary is None:
        return
    out = RunLayout(cfg.run_dir).student
    ret = summary.get("eval_return_mean")
    tail = f"; return {ret:.1f} ± {summary['eval_return_ci95']:.1f} (95% CI)" if ret is not None else ""
    print(f"distill: student ({summary['parameters']} parameters) saved to {out}{tail}")


def _distill(cfg: Config, data: Path, world: World) -> dict[str, Any] | None:
    """Rank 0 trains inside `stage_run` (manifest) with the DAgger expert; other ranks alongside it."""
    out = RunLayout(cfg.run_dir).student
    if not world.is_main:
        Trainer(cfg, data, out, world=world).fit()
        return None
    from sim2real.student.dagger import load_dagger_expert

    expert = load_dagger_expert(cfg)
    parents = {"demos": sha256_tree(data)}
    with stage_run(out, "distill", asdict(cfg), cfg.seed, parents) as stage:
        trainer = Trainer(cfg, data, out, expert=expert, world=world)
        summary = trainer.fit()
        stage.outputs.update({f: sha256_file(out / f) for f in (ckpt.MODEL_FILE, ckpt.CONFIG_FILE)})
        if cfg.distill.dagger_rounds:
            stage.outputs["demos_after_dagger"] = sha256_tree(data)
        stage.summary.update(summary)
    return summary


class Trainer:
    """Owns the model, optimizer, samplers and progress; `fit()` runs BC then the DAgger rounds.

    With several processes (`world`, inside `distributed.process_group`) each trains on its slice of
    the same global batch; only rank 0 writes, logs, evaluates and collects DAgger episodes.
    """

    def __init__(self, cfg: Config, data: Path, out: Path, expert=None, world: World | None = None):
        self.cfg, self.dc, self.data, self.out, self.expert = cfg, cfg.distill, data, out, expert
        self.world = world or World()
        local_batch_size(self.dc.batch_size, self.world)
        if self.dc.log_every < 1:
            raise UserError(f"distill.log_every={self.dc.log_every} must be >= 1")
        self.device = rank_device(resolve_device(cfg.device), self.world)
        if self.device.type == "cpu" and self.dc.threads > 0:
            torch.set_num_threads(self.dc.threads)
        self.total = self.dc.steps + self.dc.dagger_rounds * self.dc.dagger_steps
        self.step, self.round = 0, 0
        self._env_matches: bool | None = None
        self._load_data()
        self.kept_eps, self.filter = keep_top(self.arrays, self.sources, self.dc.keep_top_fraction, data)
        train, val = split_episodes(len(self.kept_eps), self.dc.val_fraction, cfg.seed)
        self.train_eps, self.val_eps = self.kept_eps[train], self.kept_eps[val]
        if self.filter:
            self._say(filter_line(self.filter))
        torch.manual_seed(cfg.seed)
        self.model = ckpt.build_model(self._model_config()).to(self.device)
        self._fit_normalizer()
        s = cfg.student
        self.loss = DistillLoss.build(
            self.spec, self.arrays, self.train_eps, self.dc.saturated_labels, s.aux_privileged, self.device
        )
        self.opt = make_optimizer(self.model, self.dc, self.device)
        log_cfg = cfg.logger if self.world.is_main else LoggerConfig(kind="none")
        self.logger = MetricLogger(log_cfg, out, "distill", asdict(cfg))
        self.best_eval = BestEval(out) if self.dc.keep == "best" and self.world.is_main else None
        self.resumed = self._maybe_resume()
        self.forward, self.train_forward = forwards(self.model, self.world, self.device, self.dc.compile)
        self._make_samplers()

    def _say(self, message: str) -> None:
        if self.world.is_main:
            tqdm.write(message)

    # ---- data ----------------------------------------------------------------------------------------
    def _load_data(self) -> None:
        d = load_training_data(self.data, self.cfg.task.name, self.cfg.task_explicit, self.dc.dagger_rounds)
        self.spec, self.arrays, self.sources, self.bound = d.spec, d.arrays, d.sources, d.bound
        self.num_eps = d.num_episodes
        for note in d.notes:  # only on the first load: DAgger (which reloads) never runs on a bound store
            self._say(note)

    def _make_samplers(self, val: bool = True) -> None:
        """Train sampler seeded by (seed, step): rebuilt at every checkpoint, so a resumed run draws the
        same batches as an uninterrupted one."""
        K, dev, seed = self.cfg.student.history, self.device, self.cfg.seed
        arrays = return_conditioned(self.arrays, self.data) if self.cfg.student.rtg else self.arrays
        step_seed = seed + 7919 * self.step
        self.sampler = WindowSampler(
            arrays, K, episodes=self.train_eps, device=dev, seed=step_seed, privileged=self.loss.uses_aux
        )
        if val:
            self.val_sampler = WindowSampler(arrays, K, episodes=self.val_eps, device=dev, seed=seed)

    def _model_config(self) -> ModelConfig:
        s = self.cfg.student
        if s.arch == "transformer" and not 1 <= s.attn_window <= s.history:
            raise UserError(f"student.attn_window={s.attn_window} must be in 1..student.history={s.history}")
        if s.aux_privileged > 0 and (s.arch != "transformer" or not self.spec.privileged_dim):
            raise UserError(
                f"student.aux_privileged={s.aux_privileged} needs a transformer student and a store with "
                f"privileged observations ({self.data}: arch={s.arch}, "
                f"privileged_dim={self.spec.privileged_dim})"
            )
        return ModelConfig.from_student(
            s,
            self.spec.student_names,
            self.spec.action_names,
            self.spec.task or self.cfg.task.name,
            float(self.spec.control_dt or 0.0),
            aux_dim=int(self.spec.privileged_dim),
        )

    def _fit_normalizer(self) -> None:
        stats: dict[str, Any] = dict(fit_stats(self.arrays, self.train_eps))
        if self.cfg.student.rtg:
            returns = self.arrays["episode_return"][self.train_eps]
            stats.update(return_stats(returns, self.cfg.student.rtg_quantile))
        self.model.normalizer.fit(stats)

    # ---- loop ----------------------------------------------------------------------------------------
    def fit(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to `total` steps (BC, then each DAgger round's collection and steps); returns a summary.

        `stop_at` abandons the run after that step, as a kill would (tests): a later run resumes from
        the last checkpoint.
        """
        start, t0 = self.step, time.monotonic()
        end = self.total if stop_at is None else min(stop_at, self.total)
        bar = tqdm(
            total=self.total, initial=self.step, desc="distill", unit="step", dynamic_ncols=True,
            disable=not self.world.is_main,
        )  # fmt: skip
        try:
            while self.step < end:
                if self.step >= self._phase_end(self.round):
                    self._dagger_round(self.round + 1)
                self._train_until(min(self._phase_end(self.round), end), bar)
            if self.step < self.total:
                return {"step": self.step}
            bar.close()
            summary = self._final_summary(self.step - start, time.monotonic() - t0)
            self.logger.log_summary(summary)
            return summary
        finally:
            bar.close()
            self.logger.close()

    def _phase_end(self, round_: int) -> int:
        return self.dc.steps + round_ * self.dc.dagger_steps

    def _train_until(self, end: int, bar: tqdm) -> None:
        self.model.train()
        losses, t_log = [], time.monotonic()
        while self.step < end:
            lr = lr_at(self.step, self.total, self.dc)
            losses.append(self.train_step(self.sampler.sample(self.dc.batch_size), lr))
            self.step += 1
            bar.update(1)
            if self.step % self.dc.log_every == 0 or self.step == end:
                loss = float(sum_over_ranks(torch.stack(losses), self.world).mean()) / self.world.size
                rate = len(losses) * self.dc.batch_size / (time.monotonic() - t_log)
                metrics = {"train/loss": loss, "train/lr": lr, "train/sequences_per_s": rate}
                self.logger.log(metrics, self.step)
                bar.set_postfix(loss=f"{loss:.4f}")
                losses, t_log = [], time.monotonic()
            self._periodic(end)

    def _periodic(self, end: int) -> None:
        s, dc = self.step, self.dc
        if self.world.is_main:  # validation and rollouts on rank 0 alone: the others wait at the next step
            if dc.val_every and (s % dc.val_every == 0 or s == self.total):
                self.logger.log({"val/loss": self.val_loss()}, s)
            if dc.eval_every and s % dc.eval_every == 0 and s < self.total and self.can_evaluate():
                self._evaluate()
        if dc.checkpoint_every and s % dc.checkpoint_every == 0 and s < self.total:
            self.checkpoint()

    def train_step(self, batch, lr: float) -> torch.Tensor:
        """One AdamW step on a global WindowBatch, of which this process trains on its slice; returns
        this process's share of the loss (the batch loss is their mean; a tensor: no device sync here)."""
        for group in self.opt.param_groups:
            group["lr"] = lr
        part = shard(batch, self.world)
        rtg = part.rtg if self.cfg.student.rtg else None
        with self._autocast():
            out = self.train_forward(part.obs, part.mask, rtg, aux=self.loss.uses_aux)
        pred, aux = out if self.loss.uses_aux else (out, None)
        target = self.model.normalizer.action(part.action)
        pred = self.loss.past_bounds(pred, target, part.action)
        loss = sharded_masked_mse(pred, target, part.mask, batch.mask, self.world)
        if aux is not None:
            aux_target = self.loss.aux_target(part.privileged)  # (b, K, Dp)
            aux_loss = sharded_masked_mse(aux, aux_target, part.mask, batch.mask, self.world)
            loss = loss + self.loss.aux_weight * aux_loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.dc.grad_clip)
        self.opt.step()
        return loss.detach()

    def _autocast(self):
        if self.dc.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def val_loss(self) -> float:
        self.model.eval()
        total, weight = 0.0, 0.0
        for i, batch in enumerate(self.val_sampler.iterate(4 * self.dc.batch_size)):
            if i >= VAL_MAX_BATCHES:
                break
            with self._autocast():
                pred = self.forward(batch.obs, batch.mask, batch.rtg if self.cfg.student.rtg else None)
            n = float(batch.mask.sum())
            target = self.model.normalizer.action(batch.action)
            pred = self.loss.past_bounds(pred, target, batch.action)
            total += float(masked_mse(pred, target, batch.mask)) * n
            weight += n
        self.model.train()
        return total / max(weight, 1.0)

    def can_evaluate(self) -> bool:
        """Rollouts need the store's observations to be the task env's (not so for foreign imports)."""
        if self._env_matches is None:
            task = self.cfg.task.name
            self._env_matches = env_matches(task, self.spec.student_names, self.spec.action_names)
            if not self._env_matches:
                hint = " (it names no task: distill task=NAME binds it)" if self.spec.task is None else ""
                self._say(f"distill: {self.data} has other observations than task {task}: no rollouts{hint}")
        return self._env_matches

    @torch.no_grad()
    def eval_rollouts(self, episodes: int | None = None) -> dict[str, float]:
        """Mean return of the student (streaming, as deployed) under the training randomization."""
        n = episodes or self.dc.eval_episodes
        self.model.eval()
        seeds = [EVAL_SEED_BASE + i for i in range(n)]
        returns = evaluate(self.cfg.task.name, self.cfg.task.ranges(), seeds, self.model)
        self.model.train()
        return {f"eval/return_{k}": v for k, v in mean_ci95(returns).items()}

    def _evaluate(self) -> dict[str, float]:
        ev = self.eval_rollouts()
        self.logger.log(ev, self.step)
        if self.best_eval is not None:
            self.best_eval.offer(self.model, ev["eval/return_mean"], ev["eval/return_ci95"], self.step)
        return ev

    # ---- DAgger --------------------------------------------------------------------------------------
    def _dagger_round(self, r: int) -> None:
        from sim2real.student.dagger import collect_round

        if not self.can_evaluate():
            raise UserError(
                f"DAgger needs a store of task {self.cfg.task.name}'s observations; {self.data} differs"
            )
        before, stats = self.num_eps, None
        if self.world.is_main:  # rank 0 rolls out and appends; the others wait, then all reload the store
            self.model.eval()
            stats = collect_round(self.model, self.expert, self.cfg, self.data, r)
        barrier(self.world, self.device)
        self._load_data()
        self.train_eps = np.concatenate([self.train_eps, np.arange(before, self.num_eps)])
        self.round = r
        if stats is not None:
            self.logger.log(stats, self.step)
            self._say(
                f"dagger round {r}: {self.num_eps - before} episodes appended (β={stats['dagger/beta']:.2f}, "
                f"mixture return {stats['dagger/return_mean']:.1f}, "
                f"expert steps {stats['dagger/expert_step_fraction']:.2f})"
            )
        self.checkpoint()

    # ---- checkpoints ---------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Weights + config + progress (rank 0), then the train sampler is reseeded on every rank (see
        `_make_samplers`)."""
        if self.world.is_main:
            ckpt.save_student(self.out, self.model)
            info = {
                "step": self.step, "round": self.round,
                "config_key": ckpt.config_key(self.cfg, self.data, self.bound),
                "num_episodes": self.num_eps, "train_episodes": self.train_eps.tolist(),
                "val_episodes": self.val_eps.tolist(), "best": self.best_eval and self.best_eval.state(),
                "torch_rng": torch.get_rng_state().numpy().tobytes().hex(),
            }  # fmt: skip
            ckpt.save_progress(self.out, self.opt, info)
        self._make_samplers(val=False)

    def _maybe_resume(self) -> bool:
        info = ckpt.read_progress_info(self.out) if self.dc.resume else None
        if info is None:
            return False
        key = ckpt.config_key(self.cfg, self.data, self.bound)
        if info.get("config_key") != key or info.get("num_episodes") != self.num_eps:
            self._say(f"distill: progress in {self.out} is for another config or store; starting afresh")
            return False
        self.model.load_state_dict(ckpt.load_weights(self.out), strict=True)
        ckpt.load_progress(self.out, self.opt)
        self.step, self.round = int(info["step"]), int(info["round"])
        if self.best_eval is not None:
            self.best_eval.load(info.get("best"))
        self.train_eps, self.val_eps = np.asarray(info["train_episodes"]), np.asarray(info["val_episodes"])
        rng = np.frombuffer(bytes.fromhex(info["torch_rng"]), np.uint8).copy()
        torch.set_rng_state(torch.from_numpy(rng))
        self._say(f"distill: resuming from step {self.step} (DAgger round {self.round})")
        return True

    def _final_summary(self, steps: int, seconds: float) -> dict[str, Any]:
        if not self.world.is_main:
            return {"steps": self.step}
        ev = self._evaluate() if self.dc.eval_episodes > 0 and self.can_evaluate() else None
        kept = self.best_eval.finish(self.model, ev["eval/return_mean"]) if self.best_eval and ev else None
        ckpt.save_student(self.out, self.model)
        ckpt.clear_progress(self.out)
        summary: dict[str, Any] = {
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "steps": self.step, "dagger_rounds": self.round, "episodes": self.num_eps,
            "resumed": self.resumed,
            "train_seconds": round(seconds, 2),
            "sequences_per_s": round(steps * self.dc.batch_size / max(seconds, 1e-9), 1),
            "val_loss": self.val_loss(),
            **({"bound_task": self.spec.task} if self.bound else {}),
            **({"filter": self.filter} if self.filter else {}),
        }  # fmt: skip
        if ev is not None:  # the kept student's evaluation, when distill.keep=best kept an earlier one
            summary.update(eval_return_mean=ev["eval/return_mean"], eval_return_ci95=ev["eval/return_ci95"],
                           eval_episodes=self.dc.eval_episodes)  # fmt: skip
            summary.update(kept or {})
        return summary
