"""The single controller of a GRPO run (one driver process; verl's HybridFlow shape).

:meth:`Controller.train_step` is one RL step, top to bottom; each stage lives in its own module:

=====================================  ==========================================================
prompts from the resumable cursor      :mod:`rlvr.grpo.prompts`
rollouts on the workers, rewards       :mod:`rlvr.grpo.rollout`, :mod:`rlvr.grpo.scoring`
refill / zero-advantage, advantages    :mod:`rlvr.grpo.selection` (math: :mod:`rlvr.algos`)
PPO epochs on the learner ranks        :mod:`rlvr.learner`
weight sync, versioned                 :mod:`rlvr.grpo.weight_sync`
metrics, completions, summary          :mod:`rlvr.grpo.runlog`
held-out evaluation                    :mod:`rlvr.grpo.evaluation`
actors on the cluster                  :mod:`rlvr.grpo.actors`
=====================================  ==========================================================
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from rlvr.algos import response_lengths
from rlvr.config import ConfigError, dump_config
from rlvr.grpo.config import GRPOConfig
from rlvr.grpo.evaluation import compare_evals
from rlvr.grpo.prompts import PromptStream, load_rows
from rlvr.grpo.rollout import Pending
from rlvr.grpo.runlog import RunLogger, completion_rows, plot_run, reward_trend, step_metrics
from rlvr.grpo.selection import refill, select, train_batch
from rlvr.logs import Progress

__all__ = ["Controller", "StepHooks"]

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"


class StepHooks:
    """Extension points for tests and tooling (fault injection, custom logging)."""

    def rollout_submitted(self, controller: Controller, step: int) -> None:  # pragma: no cover - default
        pass

    def step_finished(self, controller: Controller, step: int, metrics: dict[str, Any]) -> None:
        pass


class Controller:
    def __init__(self, cfg: GRPOConfig, hooks: StepHooks | None = None):
        self.cfg = cfg
        self.hooks = hooks or StepHooks()
        self.out = Path(cfg.trainer.out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.version = 0  # weight updates the rollout workers' weights contain
        self.step = 0  # RL steps done
        self.evaluate = None
        self._prefetched: Pending | None = None
        self._cursor: dict[str, int] | None = None
        self._stack = contextlib.ExitStack()

    # ================================================================== one RL step
    def train_step(self) -> dict[str, Any]:
        import ray

        cfg, step, n, per_step = self.cfg, self.step, self.cfg.rollout.n, self.cfg.data.prompts_per_step
        t_step, restarts = time.perf_counter(), self.rollouts.restarts
        # 1. rollouts and rewards of this step's prompts (already running when prefetched)
        pending, self._prefetched = self._prefetched or self._launch(step), None
        scored = self.rollouts.finish(pending)
        # 2. DAPO refill: new prompt groups until the step holds enough informative ones
        refilled: dict[str, float] = {}
        if cfg.algo.zero_advantage == "refill":

            def more(_round: int):
                return self.rollouts.run(self.train_prompts, self.train_prompts.next_batch(per_step), step, n)

            scored, refilled = refill(scored, per_step, more, cfg.algo.refill_max_rounds, self.pad_id)
        self._cursor = self.train_prompts.state_dict()  # where a checkpoint after this step resumes
        # 3. one-step off-policy: the next step generates now, with the weights this step trains from
        if cfg.trainer.off_policy_overlap and step + 1 < cfg.trainer.total_steps:
            self._prefetched = self._launch(step + 1)
        # 4. zero-advantage policy and group advantages -> TrainBatch
        selection = select(scored.rewards, cfg.algo, per_step, cfg.trainer.seed, step)
        selection.metrics.update(refilled)
        batch, adv = train_batch(scored, selection.index, cfg.algo, self.pad_id, self.eos_id, cfg.trainer.seed, step)
        # 5. PPO epochs on the learner ranks (DeepSpeed data parallel)
        t0, k = time.perf_counter(), len(self.learners)
        rank_metrics = ray.get(
            [lr.train_step.remote(batch.shard(r, k), step, self.version) for r, lr in enumerate(self.learners)]
        )
        t_update = time.perf_counter() - t0
        # 6. weight sync: learner -> rollout workers, version + 1
        self.version += 1
        t_sync = self.weights.push(self.version)
        self.step += 1
        # 7. record the step
        lengths, truncated = response_lengths(scored.rollout.response_ids, self.pad_id, self.eos_id)
        extra = {
            "rollout/version": scored.rollout.version,
            "rollout/restarts": self.rollouts.restarts - restarts,
            **scored.timing,
            "time/update": t_update,
            "time/sync": t_sync,
            "time/step": time.perf_counter() - t_step,
        }
        self.logger.log_completions(self.step, completion_rows(scored, selection.index, adv))
        return step_metrics(scored, selection, rank_metrics, lengths, truncated, extra)

    def _launch(self, step: int) -> Pending:
        prompts = self.train_prompts.next_batch(self.cfg.data.prompts_per_step)
        return self.rollouts.launch(self.train_prompts, prompts, step, self.cfg.rollout.n)

    # ================================================================== the run
    def run(self) -> dict[str, Any]:
        t = self.cfg.trainer
        before_path = self.out / "eval_before.json"
        if before_path.is_file():
            before = json.loads(before_path.read_text())
        else:
            before = self.evaluate("before RL") if self.evaluate else None
            before_path.write_text(json.dumps(before))
        with Progress(t.total_steps, "GRPO", start=self.step, logger=log) as bar:
            while self.step < t.total_steps:
                metrics = self.train_step()
                if self.evaluate and t.eval_every and self.step % t.eval_every == 0 and self.step < t.total_steps:
                    metrics["eval/pass@1"] = self.evaluate(f"step {self.step}")["pass@1"]
                self.logger.log(self.step, metrics)
                if self.step % t.save_every == 0 or self.step == t.total_steps:
                    self.save()
                bar.update(self.step, reward=metrics["reward/mean"], len=metrics["response/length_mean"])
                self.hooks.step_finished(self, self.step, metrics)
        after = self.evaluate("after RL") if self.evaluate else None
        summary: dict[str, Any] = {
            "pass@1_before": before["pass@1"] if before else None,
            "pass@1_after": after["pass@1"] if after else None,
        }
        if after:
            (self.out / "eval_after.json").write_text(json.dumps(after))
        if before and after and "by_group" in after:
            summary["heldout_by_group"] = {"before": before.get("by_group"), "after": after["by_group"]}
        if before and after and "sets" in before and "sets" in after:
            summary["eval"] = compare_evals(before, after, t.seed)
        summary.update(reward_trend(self.out / "metrics.jsonl"))
        summary["final_model"] = self.save_final()
        plot_run(self.out, summary.get("heldout_by_group"), t.eval_group_by, summary.get("eval"))
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        self.logger.close()
        return summary

    # ================================================================== setup / teardown
    def __enter__(self) -> Controller:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def _setup(self) -> None:
        from rlvr.diffusion.checkpoints import load_config, load_tokenizer
        from rlvr.grpo.actors import start_actors
        from rlvr.grpo.evaluation import HeldoutEval
        from rlvr.grpo.rollout import Rollouts
        from rlvr.grpo.scoring import Scorer
        from rlvr.grpo.weight_sync import TRANSPORTS, WeightSync

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_resumed_config()
        dump_config(cfg, self.out / "config.yaml")
        model_dir = Path(cfg.model.path)
        self.tokenizer = load_tokenizer(model_dir)
        hf_cfg = load_config(model_dir)
        eos = hf_cfg.eos_token_id[0] if isinstance(hf_cfg.eos_token_id, list) else hf_cfg.eos_token_id
        self.eos_id = eos
        self.pad_id = hf_cfg.pad_token_id if hf_cfg.pad_token_id is not None else eos
        self.train_prompts = PromptStream(
            load_rows(cfg.data.train), self.tokenizer, cfg.data.max_prompt_length, cfg.data.shuffle_seed
        )
        heldout = {
            name: PromptStream(load_rows(path), self.tokenizer, cfg.data.max_prompt_length)
            for name, path in cfg.data.eval_sets().items()
        }
        self.scorer = self._stack.enter_context(Scorer(cfg, self.tokenizer, self.pad_id, self.eos_id))
        self._init_ray()
        self._check_memory_plan()
        actors = start_actors(cfg)
        self._stack.callback(self._remove_placement_group, actors.placement_group)
        self.workers, self.learners = actors.workers, actors.learners
        transport = TRANSPORTS[cfg.weight_sync_transport()].from_config(cfg.trainer)
        self.weights = WeightSync(self.learners, self.workers, transport)
        self.rollouts = Rollouts(
            self.workers,
            self.scorer,
            self.weights,
            cfg.trainer.seed,
            cfg.rollout.micro_batch_size,
            cfg.rollout.max_restarts,
            self.pad_id,
            actors.worker_pids,
            on_submit=lambda step: self.hooks.rollout_submitted(self, step),
        )
        self.evaluate = HeldoutEval(cfg, heldout, self.rollouts) if heldout else None
        self._resume()

    def _init_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        t = self.cfg.trainer
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if t.ray_address:
            kw["address"] = t.ray_address
        else:  # a private local cluster, never whatever Ray instance happens to run on the machine
            kw.update(address="local", _node_ip_address="127.0.0.1", num_cpus=t.ray_num_cpus or os.cpu_count())
            kw["object_store_memory"] = t.ray_object_store_mb * 1024**2
        ray.init(**kw)
        self._stack.callback(ray.shutdown)

    def _check_memory_plan(self) -> None:
        """``trainer.gpu=auto`` with GPU actors: plan on the cluster's GPU (read by a one-GPU task) and
        refuse a config that cannot fit, before any model is loaded (a named GPU was checked by ``check``)."""
        c = self.cfg
        if c.trainer.gpu != "auto" or not (c.learner.num_gpus_per_rank or c.rollout.num_gpus_per_worker):
            return
        from rlvr.plan import fit_problem, probe_gpu

        name, total = probe_gpu()
        verdict = fit_problem(c, capacity=total, gpu_label=name)
        if verdict:
            raise ConfigError(f"trainer.gpu=auto ({name}): {verdict}")
        log.info("memory plan: fits %s (%.1f GiB)", name, total / 2**30)

    @staticmethod
    def _remove_placement_group(pg: Any) -> None:
        import ray

        ray.util.remove_placement_group(pg)

    @property
    def worker_pids(self) -> list[int]:
        return self.rollouts.worker_pids

    @property
    def rollout_restarts(self) -> int:
        return self.rollouts.restarts

    # ================================================================== checkpoint / resume
    # keys a resumed run may change: the run's length and cadence, where its services are, logging
    RESUMABLE_CHANGES = (
        "trainer.total_steps", "trainer.save_every", "trainer.eval_every", "trainer.resume", "trainer.ray_address",
        "trainer.ray_num_cpus", "trainer.ray_object_store_mb", "trainer.wandb_project", "trainer.gpu",
        "reward.sandbox_urls", "reward.sandbox_wait_s", "learner.threads", "rollout.max_restarts",
    )

    def _check_resumed_config(self) -> None:
        """A run that will resume from ``out_dir`` must be the run that wrote it: refuse (naming every
        changed key) a config that differs from the saved one beyond :attr:`RESUMABLE_CHANGES`, instead of
        silently continuing another run's checkpoint with other data or settings."""
        import yaml

        saved_path = self.out / "config.yaml"
        if not (self.cfg.trainer.resume and (self.out / STATE_FILE).is_file() and saved_path.is_file()):
            return

        def flat(d: Any, prefix: str = "") -> dict[str, Any]:
            if not isinstance(d, dict):
                return {prefix[:-1]: d}
            return {k: v for key, sub in d.items() for k, v in flat(sub, f"{prefix}{key}.").items()}

        saved = flat(yaml.safe_load(saved_path.read_text()) or {})
        now = flat(self.cfg.model_dump(mode="json"))
        changed = sorted(
            k for k in set(saved) | set(now)
            if saved.get(k) != now.get(k) and not k.startswith(self.RESUMABLE_CHANGES)
        )
        if changed:
            lines = "; ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:8])
            raise ConfigError(
                f"trainer.out_dir={str(self.out)!r} holds a checkpoint of a run with another config ({lines}"
                f"{'; ...' if len(changed) > 8 else ''}); resume with the saved config, or start afresh with "
                "a new trainer.out_dir or trainer.resume=false"
            )

    def _resume(self) -> None:
        state_path = self.out / STATE_FILE
        resume_step = None
        if self.cfg.trainer.resume and state_path.is_file():
            import ray

            state = json.loads(state_path.read_text())
            ray.get([lr.load.remote(str(self.ckpt_dir)) for lr in self.learners])
            self.step, self.version = int(state["step"]), int(state["version"])
            self.train_prompts.load_state_dict(state["cursor"])
            resume_step = self.step
            self.weights.push(self.version)
            log.info("resumed at step %d (cursor %s)", self.step, state["cursor"])
        self.logger = RunLogger(
            self.out,
            resume_step=resume_step,
            project=self.cfg.trainer.wandb_project,
            config=self.cfg.model_dump(mode="json"),
        )

    def save(self) -> None:
        """Learner checkpoint (weights, optimizer, RNG) then the controller state; the state file is
        written last and atomically, so a run killed mid-save resumes from the previous checkpoint."""
        import ray

        # a prefetched (off-policy) batch is not part of the checkpoint: resume regenerates it
        cursor = self._cursor if self._cursor is not None else self.train_prompts.state_dict()
        client = {"step": self.step, "version": self.version, "cursor": cursor}
        ray.get([lr.save.remote(str(self.ckpt_dir), client) for lr in self.learners])
        tmp = self.out / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(client))
        tmp.replace(self.out / STATE_FILE)

    def save_final(self) -> str:
        """The trained policy as an ordinary HF folder (``out_dir/final``, with the tokenizer)."""
        import ray

        final = self.out / "final"
        ray.get([lr.save_hf.remote(str(final), self.cfg.model.path) for lr in self.learners])
        return str(final)
