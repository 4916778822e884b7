"""Online fine-tuning of a return-conditioned student (Online Decision Transformer style), no expert.

Each round the student drives the randomized simulator conditioned on its return target, exploring
with Gaussian noise on its actions; the episodes are appended to the store tagged `{"kind": "online",
"round"}` (stored episodes are never changed), labelled in hindsight with the return they achieved
(`student.episodes.return_conditioned`: the executed action is the label, the achieved return the
condition), and training continues on the aggregate, as DAgger rounds do but with no expert. The return
target then follows the data: `student.rtg_quantile` of the training episodes' returns (never lowered),
so a student whose own episodes improve asks itself for more. The best student on the distill stage's
evaluation seeds (the distilled one included) is kept, if it also beats the distilled one on fresh
episodes (`finetune/confirm.py`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import envs
from sim2real.artifacts import RunLayout, sha256_file, stage_run, write_json_atomic
from sim2real.config import Config
from sim2real.data.store import DemoStore, exists, stored_path
from sim2real.errors import UserError
from sim2real.finetune.confirm import confirm_kept
from sim2real.student import checkpoint as ckpt
from sim2real.student.dagger import round_seeds
from sim2real.student.rollout import rollout_seeds
from sim2real.student.train import Trainer

SOURCE_KIND = "online"
BEFORE_JSON = "online_before.json"  # the distilled student's evaluation, kept across a resume


def run(cfg: Config, student_dir: Path, out: Path, parents: dict[str, str]) -> dict[str, Any]:
    """`sim2real finetune` for a return-conditioned student: rounds appended to `data=` (default the
    run's demos.zarr), the kept student written to `out` as a distilled one is."""
    data = stored_path(cfg.data) if cfg.data else RunLayout(cfg.run_dir).demos
    if not exists(data):
        raise FileNotFoundError(f"no demonstration store at {data}: online fine-tuning appends to the "
                                "store the student was distilled from (pass data=PATH.zarr)")  # fmt: skip
    spec = gym.spec(envs.env_id(cfg.task.name))
    ocfg = online_config(cfg, spec.max_episode_steps or 1000)
    with stage_run(out, "finetune", asdict(cfg), cfg.seed, parents) as stage:
        summary = OnlineTrainer(ocfg, data, out, student_dir).fit()
        stage.summary.update(summary)
        stage.outputs[ckpt.MODEL_FILE] = sha256_file(out / ckpt.MODEL_FILE)
    return summary


def online_config(cfg: Config, max_episode_steps: int) -> Config:
    """The distill config that runs the rounds: no BC phase, `rounds` rounds of `online_episodes`
    episodes (the env-step budget `finetune.steps` at most) and `online_steps` gradient steps each."""
    fc = cfg.finetune
    rounds = max(1, fc.steps // (fc.online_episodes * max_episode_steps))
    distill = dataclasses.replace(
        cfg.distill, steps=0, dagger_rounds=rounds, dagger_episodes=fc.online_episodes,
        dagger_steps=fc.online_steps, lr=fc.online_lr, warmup_steps=0, eval_every=0,
        eval_episodes=fc.eval_episodes, keep_top_fraction=1.0, checkpoint_every=0, keep="best",
    )  # fmt: skip
    return dataclasses.replace(cfg, distill=distill)


class OnlineTrainer(Trainer):
    """A distill Trainer started from the distilled student whose rounds explore instead of asking an
    expert; evaluates before each round and at the end, keeping the best (`distill.keep=best`)."""

    def __init__(self, cfg: Config, data: Path, out: Path, student_dir: Path):
        if not cfg.student.rtg:
            raise UserError("online fine-tuning needs a return-conditioned student (student.rtg=true)")
        super().__init__(cfg, data, out)
        self.noise, self.replay = cfg.finetune.online_noise, cfg.finetune.online_replay
        self.student_dir = student_dir
        self.before: float | None = None  # the distilled student's evaluation
        if self.replay is not None and not self.resumed:
            best_first = self.train_eps[
                np.argsort(-self.arrays["episode_return"][self.train_eps], kind="stable")
            ]
            self.train_eps = np.sort(best_first[: self.replay])
        if self.resumed and (out / BEFORE_JSON).exists():
            self.before = json.loads((out / BEFORE_JSON).read_text())["before"]
        elif not self.resumed:
            try:
                self.model.load_state_dict(ckpt.load_weights(student_dir), strict=True)
            except RuntimeError as e:
                first = str(e).splitlines()[0]
                raise UserError(f"finetune: {student_dir} was distilled with other student.* settings than "
                                f"these; pass the distill stage's: {first}") from e  # fmt: skip

    def _dagger_round(self, r: int) -> None:
        """Evaluate (keep the best), then one exploration round appended to the store, then reload."""
        self._evaluate_and_keep()
        self.model.eval()
        episodes = self._explore(r)
        self.model.train()
        before = self.num_eps
        with DemoStore.open(self.data, "a") as store:
            store.append_episodes(episodes, self._source(r))
        self._load_data()
        self.train_eps = np.concatenate([self.train_eps, np.arange(before, self.num_eps)])
        if self.replay is not None:
            self.train_eps = self.train_eps[-self.replay :]  # first in, first out
        self._retarget()
        self.round = r
        returns = np.array([ep.ret for ep in episodes])
        self.logger.log({"online/round": r, "online/return_mean": float(returns.mean())}, self.step)
        target = float(self.model.normalizer.rtg_target)
        self._say(f"online round {r}: {len(episodes)} episodes, return {returns.mean():.1f} (noise "
                  f"{self.noise}); return target now {target:.1f}")  # fmt: skip
        self.checkpoint()

    def _explore(self, r: int) -> list:
        seeds = round_seeds(self.cfg.seed, 1000 + r, self.dc.dagger_episodes)  # apart from DAgger's rounds
        rng = np.random.default_rng([self.cfg.seed, r, 0x0D7])
        task, ranges = self.cfg.task.name, self.cfg.task.ranges()
        return rollout_seeds(task, ranges, seeds, self.model, rng=rng, noise=self.noise)

    def _source(self, r: int) -> dict[str, Any]:
        target = float(self.model.normalizer.rtg_target)
        return {
            "kind": SOURCE_KIND,
            "round": r,
            "noise": self.noise,
            "rtg_target": target,
            "seed": self.cfg.seed,
        }

    def _retarget(self) -> None:
        """The return target follows the training data (hindsight: new episodes carry what they got)."""
        returns = self.arrays["episode_return"][self.train_eps].astype(np.float64)
        target = float(np.quantile(returns, self.cfg.student.rtg_quantile))
        self.model.normalizer.rtg_target.fill_(max(target, float(self.model.normalizer.rtg_target)))

    def _evaluate_and_keep(self) -> None:
        """Evaluate (offered to `best_eval`, the distilled student first of all) and remember the first."""
        ret = self._evaluate()["eval/return_mean"]
        if self.before is None:
            self.before = ret
            write_json_atomic(self.out / BEFORE_JSON, {"before": ret})

    def _final_summary(self, steps: int, seconds: float) -> dict[str, Any]:
        """The base summary: it evaluates the last weights and keeps the best evaluated student."""
        summary = super()._final_summary(steps, seconds)
        (self.out / BEFORE_JSON).unlink(missing_ok=True)
        kept = summary.get("eval_return_mean", -np.inf)
        last = summary.get("last_eval_return_mean", kept)
        online = [s["id"] for s in self.sources if s.get("kind") == SOURCE_KIND]
        lengths = np.diff(np.concatenate([[0], self.arrays["episode_ends"]]))
        env_steps = int(lengths[np.isin(self.arrays["episode_source"], online)].sum())
        summary = {**summary, "env_steps": env_steps, "eval_before": self.before, "eval_last": last,
                   "eval_kept": kept}  # fmt: skip
        kept_step = int(summary.get("kept_step", self.step))  # step 0: the distilled student itself
        if self.cfg.finetune.confirm_episodes and kept_step > 0:
            summary["confirm"] = confirm_kept(self.cfg, self.out, self.student_dir, f"step {kept_step}")
            if not summary["confirm"]["confirmed"]:
                summary["eval_kept"] = self.before
        return summary
