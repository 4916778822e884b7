"""`sim2real finetune`: PPO on the distilled student in the randomized simulator; writes <run_dir>/finetune/.

A return-conditioned student goes to `finetune/online.py` instead unless `finetune.method=ppo` (PPO then
tunes it at its constant deployment return target, as it is exported).

Reads `<run_dir>/student/` (and the expert only when `finetune.bc_coef > 0`); writes a student checkpoint
in the same format (`model.safetensors`, `config.json`) beside `manifest.json` and metrics, so `export`
takes it as it takes a distilled one. Progress is saved every `finetune.checkpoint_every` updates and a
stopped run resumes from it. The kept student is the best on the distill stage's evaluation seeds
(the distilled student itself counts), confirmed against the distilled one on fresh episodes
(`finetune.confirm_episodes`), never on validation scenarios.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from envs import lockstep
from sim2real.artifacts import RunLayout, sha256_file, stage_run, write_json_atomic
from sim2real.config import Config
from sim2real.errors import UserError
from sim2real.finetune.confirm import confirm_kept
from sim2real.finetune.ppo import Critic, PPOSettings, RewardScaler, update
from sim2real.finetune.rollout import EnvRunner
from sim2real.metrics import MetricLogger
from sim2real.stages import output_fields
from sim2real.student.checkpoint import CONFIG_FILE, MODEL_FILE, load_student, save_student
from sim2real.student.rollout import evaluate
from sim2real.student.train import EVAL_SEED_BASE

STATE_FILE, STATE_JSON = "finetune_state.safetensors", "finetune_state.json"
SEED_BASE = 3 * 2**29  # episode seeds of fine-tuning rollouts: apart from collection, DAgger and eval


def run(cfg: Config) -> None:
    fc = cfg.finetune
    if not fc.enabled:
        raise UserError("finetune.steps=0: nothing to do (set finetune.steps=N env steps)")
    layout = RunLayout(cfg.run_dir)
    src = layout.student
    if not (src / MODEL_FILE).is_file():
        raise FileNotFoundError(f"no student at {src}: run `sim2real distill run_dir={layout.root}` first")
    parents = {"student": sha256_file(src / MODEL_FILE)}
    rtg = bool(json.loads((src / CONFIG_FILE).read_text())["model"].get("rtg"))
    if fc.method == "online" and not rtg:
        raise UserError(
            f"finetune.method=online needs a return-conditioned student (student.rtg); {src} is not"
        )
    if fc.method == "online" or (fc.method == "auto" and rtg):
        from sim2real.finetune import online

        s = online.run(cfg, src, layout.finetune, parents)
        print(f"finetune (online, return-conditioned): student return {s['eval_before']:.1f} -> "
              f"{s['eval_kept']:.1f} ({s['env_steps']} env steps) -> {layout.finetune}")  # fmt: skip
        return
    with stage_run(layout.finetune, "finetune", asdict(cfg), cfg.seed, parents) as stage:
        summary = Finetuner(cfg, src, layout.finetune, parents["student"]).fit()
        stage.summary.update(summary)
        stage.outputs[MODEL_FILE] = sha256_file(layout.finetune / MODEL_FILE)
    print(
        f"finetune: student return {summary['eval_before']:.1f} -> {summary['eval_kept']:.1f} "
        f"(kept update {summary['kept_update']}, {summary['env_steps']} env steps) -> {layout.finetune}"
    )


class Finetuner:
    """Owns the actor (the student), the critic, their optimizers and the env runner; `fit()` runs PPO."""

    def __init__(self, cfg: Config, src: Path, out: Path, parent_sha: str):
        self.cfg, self.fc, self.src, self.out, self.parent_sha = cfg, cfg.finetune, src, out, parent_sha
        if self.fc.threads > 0:
            torch.set_num_threads(self.fc.threads)
        torch.manual_seed(cfg.seed)
        self.student = load_student(src).train()
        if self.student.cfg.arch != "transformer":
            raise UserError(f"finetune needs a transformer student; {src} holds arch={self.student.cfg.arch}")
        self.expert = self._expert()
        ranges = cfg.task.ranges()
        sims = lockstep.make(cfg.task.name, ranges, self.fc.n_envs, self.fc.vec_env)
        seeds = np.random.SeedSequence([cfg.seed, 0xF1E7]).generate_state(1)[0]
        context = self.student.receptive_field() - 1
        self.runner = EnvRunner(sims, self.student, _seed_stream(int(seeds)), context)
        self.log_std = torch.nn.Parameter(
            torch.full((self.student.cfg.action_dim,), float(np.log(self.fc.init_std)))
        )
        self.critic = Critic(sims.privileged_dim)
        self.ppo = PPOSettings(
            gamma=self.fc.gamma, gae_lambda=self.fc.gae_lambda, clip=self.fc.clip, epochs=self.fc.epochs,
            minibatch=self.fc.minibatch, ent_coef=self.fc.ent_coef, bc_coef=self.fc.bc_coef,
            max_grad_norm=self.fc.max_grad_norm, target_kl=self.fc.target_kl,
        )  # fmt: skip
        self.scaler = RewardScaler(self.fc.n_envs, self.fc.gamma)
        self.opt_actor = torch.optim.Adam([*self.student.parameters(), self.log_std], lr=self.fc.lr)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=self.fc.critic_lr)
        self.total = -(-self.fc.steps // (self.fc.n_envs * self.fc.n_steps))  # updates, rounded up
        self.update_no, self.best, self.best_update, self.before = 0, -np.inf, 0, None
        self.logger = MetricLogger(cfg.logger, out, "finetune", asdict(cfg))
        self.resumed = self._maybe_resume()

    def _expert(self):
        if self.fc.bc_coef <= 0:
            return None
        from sim2real.teacher.experts import load_expert

        try:
            return load_expert(self.cfg.expert, self.cfg.run_dir, self.cfg.task.name)
        except (UserError, FileNotFoundError) as e:
            raise UserError(f"finetune.bc_coef={self.fc.bc_coef} needs an expert: {e}") from e

    # ---- loop ----------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        t0, fc = time.monotonic(), self.fc
        if self.before is None:
            self.before = self._evaluate()
            self._keep(self.before, 0)
        bar = tqdm(
            total=self.total, initial=self.update_no, desc="finetune", unit="update", dynamic_ncols=True
        )
        recent: list[float] = []
        try:
            while self.update_no < self.total:
                recent = self._update_once(bar, recent)
        finally:
            bar.close()
            self.runner.close()
        confirm = self._confirm() if fc.confirm_episodes and self.best_update > 0 else None
        kept = load_student(self.out)  # the kept student, as written
        summary = {
            "env_steps": self.update_no * fc.n_envs * fc.n_steps, "updates": self.update_no,
            "eval_before": self.before, "eval_kept": self.best, "kept_update": self.best_update,
            "eval_episodes": fc.eval_episodes, "train_seconds": round(time.monotonic() - t0, 1),
            "parameters": sum(p.numel() for p in kept.parameters()), "resumed": self.resumed,
            "confirm": confirm,
        }  # fmt: skip
        self.logger.log_summary(summary)
        self.logger.close()
        for name in (STATE_FILE, STATE_JSON, "best_" + MODEL_FILE):
            (self.out / name).unlink(missing_ok=True)
        return summary

    def _update_once(self, bar: tqdm, recent: list[float]) -> list[float]:
        """Roll out, update actor and critic, log; evaluate and checkpoint on their schedules."""
        fc = self.fc
        r = self.runner.collect(fc.n_steps, self.log_std.detach(), self.critic, fc.gamma, self.expert)
        if self.update_no == 0 and not self.resumed:
            self.critic.fit(r.privileged.reshape(-1, r.privileged.shape[-1]))
        recent = (recent + (r.returns or []))[-2 * fc.n_envs :]
        self.update_no += 1
        actor = self.update_no > fc.critic_warmup
        logs = update(
            self.student,
            self.log_std,
            self.critic,
            self.opt_actor,
            self.opt_critic,
            self.scaler(r),
            self.ppo,
            actor,
        )
        metrics = {f"train/{k}": v for k, v in logs.items()} | {
            "train/std": float(self.log_std.detach().exp().mean())
        }
        if recent:
            metrics["train/return"] = float(np.mean(recent))
        if self.update_no % fc.eval_every == 0 or self.update_no == self.total:
            metrics["eval/return_mean"] = ret = self._evaluate()
            self._keep(ret, self.update_no)
            bar.set_postfix(eval=f"{ret:.0f}", best=f"{self.best:.0f}")
        self.logger.log(metrics, self.update_no * fc.n_envs * fc.n_steps)
        bar.update(1)
        if self.update_no % fc.checkpoint_every == 0 and self.update_no < self.total:
            self._checkpoint()
        return recent

    def _evaluate(self) -> float:
        """Mean return of the deterministic student (streaming, as deployed) on the distill eval seeds."""
        self.student.eval()
        seeds = [EVAL_SEED_BASE + i for i in range(self.fc.eval_episodes)]
        returns = evaluate(self.cfg.task.name, self.cfg.task.ranges(), seeds, self.student)
        self.student.train()
        return float(returns.mean())

    def _confirm(self) -> dict[str, Any]:
        """The kept student against the distilled one on fresh episodes (`finetune/confirm.py`)."""
        result = confirm_kept(self.cfg, self.out, self.src, f"update {self.best_update}")
        if not result["confirmed"]:
            self.best, self.best_update = self.before, 0
        return result

    def _keep(self, ret: float, update_no: int) -> None:
        """Write the student as the kept one when it is the best so far."""
        if ret > self.best:
            self.best, self.best_update = ret, update_no
            save_student(self.out, self.student)

    # ---- checkpoints ---------------------------------------------------------------------------------
    def _config_key(self) -> str:
        blob = {"finetune": output_fields(self.fc), "task": asdict(self.cfg.task), "seed": self.cfg.seed,
                "student": self.parent_sha}  # fmt: skip
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()

    def _checkpoint(self) -> None:
        """Current actor, critic and optimizers (the kept student is already in `model.safetensors`)."""
        tensors = {f"actor.{k}": v for k, v in self.student.state_dict().items()}
        tensors |= {f"critic.{k}": v for k, v in self.critic.state_dict().items()}
        tensors["log_std"] = self.log_std.detach()
        for name, opt in (("opt_actor", self.opt_actor), ("opt_critic", self.opt_critic)):
            for pid, st in opt.state_dict()["state"].items():
                for key, value in st.items():
                    tensors[f"{name}.{pid}.{key}"] = (
                        torch.as_tensor(value).reshape(-1) if value.dim() == 0 else value
                    )
        save_file(
            {k: v.detach().contiguous() for k, v in tensors.items()}, str(self.out / (STATE_FILE + ".tmp"))
        )
        (self.out / (STATE_FILE + ".tmp")).replace(self.out / STATE_FILE)
        rms = self.scaler.rms
        write_json_atomic(self.out / STATE_JSON, {
            "config_key": self._config_key(), "update": self.update_no, "best": self.best,
            "best_update": self.best_update, "before": self.before,
            "reward_rms": [float(rms.mean), float(rms.var), float(rms.count)],
        })  # fmt: skip

    def _maybe_resume(self) -> bool:
        path = self.out / STATE_JSON
        if not (self.fc.resume and path.exists() and (self.out / STATE_FILE).exists()):
            return False
        info = json.loads(path.read_text())
        if info.get("config_key") != self._config_key():
            tqdm.write(f"finetune: progress in {self.out} is for another config or student; starting afresh")
            return False
        t = load_file(str(self.out / STATE_FILE))
        self.student.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("actor.")})
        self.critic.load_state_dict({k[7:]: v for k, v in t.items() if k.startswith("critic.")})
        with torch.no_grad():
            self.log_std.copy_(t["log_std"])
        for name, opt in (("opt_actor", self.opt_actor), ("opt_critic", self.opt_critic)):
            _restore_optimizer(opt, name, t)
        self.update_no, self.best, self.best_update = info["update"], info["best"], info["best_update"]
        self.before = info["before"]
        rms = self.scaler.rms
        rms.mean, rms.var, rms.count = (np.float64(v) for v in info["reward_rms"])
        tqdm.write(f"finetune: resuming from update {self.update_no} of {self.total}")
        return True


def _restore_optimizer(opt: torch.optim.Optimizer, name: str, tensors: dict[str, torch.Tensor]) -> None:
    current = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(name + "."):
            _, pid, field_name = key.split(".", 2)
            state.setdefault(int(pid), {})[field_name] = value.reshape(()) if field_name == "step" else value
    opt.load_state_dict({"state": state, "param_groups": current["param_groups"]})


def _seed_stream(base: int):
    """Endless distinct episode seeds for the fine-tuning rollouts."""
    i = 0
    while True:
        yield SEED_BASE + (base + i) % 2**29
        i += 1
