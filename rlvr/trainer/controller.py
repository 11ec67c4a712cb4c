"""The single controller of a GRPO run (one driver process; verl's HybridFlow shape).

One RL step, as data flows::

    prompts (cursor) -> RolloutWorker actors: DiffusionLM.generate      -> RolloutBatch (+ weight version)
                     -> verifiers (rewards/) over the sandbox service   -> rewards + verdicts
                     -> zero-advantage substitution -> group advantages -> TrainBatch
                     -> LearnerRank actors (DeepSpeed): coupled copies, old log-probs, PPO epochs
                     -> weight sync learner -> rollout workers (version + 1); log; checkpoint

The math lives in :mod:`rlvr.algos`; this file only moves typed batches between actors.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlvr.algos import compute_advantages, group_rows, response_lengths, response_loss_mask, select_groups
from rlvr.batch import RolloutBatch, TrainBatch, concat_batches
from rlvr.config import dump_config
from rlvr.trainer.config import GRPOConfig
from rlvr.trainer.logger import RunLogger
from rlvr.trainer.prompts import PromptStream, load_rows
from rlvr.training.loop import step_generator, step_seed

__all__ = ["Controller", "StepHooks"]

STATE_FILE = "trainer_state.json"


class StepHooks:
    """Extension points for tests and tooling (fault injection, custom logging)."""

    def rollout_submitted(self, controller: Controller, step: int) -> None:  # pragma: no cover - default
        pass

    def step_finished(self, controller: Controller, step: int, metrics: dict[str, Any]) -> None:
        pass


@dataclass
class _Pending:
    """A submitted rollout: its prompts and the Ray futures of its chunks."""

    stream: PromptStream
    prompt_idx: list[int]
    step: int
    sampler: dict | None
    chunks: list[tuple]
    t0: float
    futures: list = field(default_factory=list)


class Controller:
    def __init__(self, cfg: GRPOConfig, hooks: StepHooks | None = None, console: Any = None):
        from rich.console import Console

        self.cfg = cfg
        self.hooks = hooks or StepHooks()
        self.console = console or Console(stderr=True)
        self.out = Path(cfg.trainer.out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.version = 0
        self.step = 0
        self.rollout_restarts = 0  # rollout chunks re-issued after a worker died (whole run)
        self._prefetched: _Pending | None = None
        self._cursor: dict[str, int] | None = None
        self._stack = contextlib.ExitStack()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rlvr-reward")

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
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._stack.close()

    def _setup(self) -> None:
        import ray
        from transformers import AutoTokenizer

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, self.out / "config.yaml")
        model_dir = Path(cfg.model.path)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"model.path {str(model_dir)!r} is not a checkpoint folder (no config.json)"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        from transformers import AutoConfig

        hf_cfg = AutoConfig.from_pretrained(str(model_dir))
        eos = hf_cfg.eos_token_id[0] if isinstance(hf_cfg.eos_token_id, list) else hf_cfg.eos_token_id
        self.eos_id = eos
        self.pad_id = hf_cfg.pad_token_id if hf_cfg.pad_token_id is not None else eos

        self.train_prompts = PromptStream(
            load_rows(cfg.data.train), self.tokenizer, cfg.data.max_prompt_length, cfg.data.shuffle_seed
        )
        self.heldout = (
            PromptStream(load_rows(cfg.data.heldout), self.tokenizer, cfg.data.max_prompt_length)
            if cfg.data.heldout
            else None
        )
        self._setup_rewards()

        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if cfg.trainer.ray_address:
                kw["address"] = cfg.trainer.ray_address
            else:  # a private local cluster, never whatever Ray instance happens to run on the machine
                kw["address"] = "local"
                kw["_node_ip_address"] = "127.0.0.1"
                kw["num_cpus"] = cfg.trainer.ray_num_cpus or os.cpu_count()
                kw["object_store_memory"] = cfg.trainer.ray_object_store_mb * 1024**2
            ray.init(**kw)
            self._stack.callback(ray.shutdown)
        self._start_actors()
        self._resume()

    def _setup_rewards(self) -> None:
        from rewards import registry

        urls = list(self.cfg.reward.sandbox_urls)
        if self.cfg.reward.verifier in registry.SANDBOX_VERIFIERS:
            from sandbox.testing import sandbox_or_local

            urls = self._stack.enter_context(
                sandbox_or_local(urls, announce=lambda m: self.console.print(f"[dim]{m}[/]"))
            )
        if urls:
            os.environ["RLVR_SANDBOX_URLS"] = ",".join(urls)  # the code verifiers' default endpoint
        self.verifier = registry.get(self.cfg.reward.verifier, **self.cfg.reward.verifier_kwargs)

    def _start_actors(self) -> None:
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from rlvr.learner import LearnerRank
        from rlvr.rollout import ROLLOUT_ENGINES

        cfg, lc, rc = self.cfg, self.cfg.learner, self.cfg.rollout

        def res(cpu: float, gpu: float) -> dict[str, float]:
            return {"CPU": cpu, **({"GPU": gpu} if gpu else {})}

        if cfg.trainer.placement == "colocate":  # learner rank i and rollout worker i share bundle i
            n = max(lc.num_ranks, rc.num_workers)
            bundles = [
                res(
                    lc.num_cpus_per_rank + rc.num_cpus_per_worker,
                    max(lc.num_gpus_per_rank, rc.num_gpus_per_worker),
                )
            ] * n
            learner_bundle = list(range(lc.num_ranks))
            worker_bundle = list(range(rc.num_workers))
        else:
            bundles = [res(lc.num_cpus_per_rank, lc.num_gpus_per_rank)] * lc.num_ranks + [
                res(rc.num_cpus_per_worker, rc.num_gpus_per_worker)
            ] * rc.num_workers
            learner_bundle = list(range(lc.num_ranks))
            worker_bundle = [lc.num_ranks + i for i in range(rc.num_workers)]
        self.pg = placement_group(bundles, strategy="PACK")
        ray.get(self.pg.ready(), timeout=120)
        self._stack.callback(lambda: ray.util.remove_placement_group(self.pg))

        def on(bundle: int) -> PlacementGroupSchedulingStrategy:
            return PlacementGroupSchedulingStrategy(
                placement_group=self.pg, placement_group_bundle_index=bundle
            )

        def env(gpus: float) -> dict[str, Any]:
            # the accelerator follows the ACTOR's resources, not the driver's node
            accel = "cuda" if gpus > 0 else "cpu"
            return {"env_vars": {"OMP_NUM_THREADS": str(max(1, lc.threads)), "DS_ACCELERATOR": accel}}

        # colocated: the bundle holds both CPU budgets, and one GPU that the two actors split
        share = 0.5 if cfg.trainer.placement == "colocate" else 1.0
        engine = ROLLOUT_ENGINES[rc.engine]
        self.workers = [
            ray.remote(engine.worker)
            .options(
                max_restarts=rc.max_restarts,
                max_task_retries=0,  # we re-issue ourselves, after giving the new process the weights
                runtime_env=env(rc.num_gpus_per_worker),
                num_cpus=rc.num_cpus_per_worker,
                num_gpus=rc.num_gpus_per_worker * share,
                scheduling_strategy=on(b),
            )
            .remote(
                cfg.model.path,
                rc.sampler.generate_kwargs(),
                rc.sampler.eos_penalty,
                cfg.model.dtype,
                None,
                lc.threads or None,
                **engine.extra_kwargs(rc),
            )
            for b in worker_bundle
        ]
        rows = cfg.data.prompts_per_step * rc.n
        self.learners = [
            ray.remote(LearnerRank)
            .options(
                runtime_env=env(lc.num_gpus_per_rank),
                num_cpus=lc.num_cpus_per_rank,
                num_gpus=lc.num_gpus_per_rank * share,
                scheduling_strategy=on(b),
            )
            .remote(
                r,
                lc.num_ranks,
                cfg.model.path,
                lc.model_dump(),
                cfg.algo.model_dump(),
                rows // lc.num_ranks,
                cfg.trainer.total_steps,
                cfg.trainer.seed,
                rc.sampler.temperature or 1.0,
                cfg.model.kind,
            )
            for r, b in enumerate(learner_bundle)
        ]
        master = ray.get(self.learners[0].address.remote())
        ray.get([lr.setup.remote(*master) for lr in self.learners])
        pings = ray.get([w.ping.remote() for w in self.workers] + [lr.ping.remote() for lr in self.learners])
        self.worker_pids = [p["pid"] for p in pings[: len(self.workers)]]

    # ================================================================== checkpoint / resume
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
            self._sync_weights()
            self.console.print(f"[green]resumed[/] at step {self.step} (cursor {state['cursor']})")
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

    # ================================================================== rollouts
    def _launch(
        self, stream: PromptStream, prompt_idx: list[int], step: int, n: int, sampler: dict | None = None
    ) -> _Pending:
        """Spread ``len(prompt_idx) * n`` rows over the workers (contiguous, balanced) and submit them."""
        prompts, groups, seeds = [], [], []
        for g, i in enumerate(prompt_idx):
            for j in range(n):
                prompts.append(stream.token_ids[i])
                groups.append(g)
                seeds.append(step_seed(self.cfg.trainer.seed, step, i, j) % (2**62))
        k = len(self.workers)
        bounds = [round(len(prompts) * w / k) for w in range(k + 1)]
        chunks = [
            (
                w,
                prompts[bounds[w] : bounds[w + 1]],
                groups[bounds[w] : bounds[w + 1]],
                seeds[bounds[w] : bounds[w + 1]],
            )
            for w in range(k)
            if bounds[w + 1] > bounds[w]
        ]
        pending = _Pending(stream, prompt_idx, step, sampler, chunks, time.perf_counter())
        pending.futures = [self._generate(w, p, g, s_, sampler) for w, p, g, s_ in chunks]
        self.hooks.rollout_submitted(self, step)
        return pending

    def _generate(self, w: int, prompts, groups, seeds, sampler):
        return self.workers[w].generate.remote(
            prompts, groups, seeds, self.cfg.rollout.micro_batch_size, sampler
        )

    def _finish(self, pending: _Pending) -> tuple[RolloutBatch, list[Any], dict[str, float]]:
        """Wait for every chunk and score it as it lands (rewards overlap the remaining generation).

        A chunk whose worker died is re-issued once Ray has restarted the worker and it has the
        current weights."""
        import ray
        from ray.exceptions import RayActorError

        futures, chunks = pending.futures, pending.chunks
        batches: list[RolloutBatch | None] = [None] * len(futures)
        scored: list[Future | None] = [None] * len(futures)
        waiting = {f: i for i, f in enumerate(futures)}
        attempts = [0] * len(futures)
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1)
            i = waiting.pop(ready[0])
            try:
                batch = ray.get(ready[0])
            except RayActorError as exc:
                attempts[i] += 1
                self.rollout_restarts += 1
                if attempts[i] > self.cfg.rollout.max_restarts + 1:
                    raise RuntimeError(f"rollout chunk {i} failed {attempts[i]} times") from exc
                w, p, g, s_ = chunks[i]
                self.console.print(
                    f"[yellow]rollout worker {w} died ({type(exc).__name__}); re-issuing its chunk[/]"
                )
                self._wait_worker(w)
                waiting[self._generate(w, p, g, s_, pending.sampler)] = i
                continue
            batches[i] = batch
            scored[i] = self._score_async(pending.stream, pending.prompt_idx, batch)
        t_gen = time.perf_counter() - pending.t0
        results = [r for f in scored for r in f.result()]
        t_all = time.perf_counter() - pending.t0
        rollout = concat_batches([b for b in batches if b is not None], self.pad_id)
        return rollout, results, {"time/generate": t_gen, "time/reward_tail": t_all - t_gen}

    def rollout_and_score(
        self, stream: PromptStream, prompt_idx: list[int], step: int, n: int, sampler: dict | None = None
    ) -> tuple[RolloutBatch, list[Any], dict[str, float]]:
        """Generate ``n`` samples per prompt and score them."""
        return self._finish(self._launch(stream, prompt_idx, step, n, sampler))

    def _wait_worker(self, w: int, timeout_s: float = 300) -> None:
        """Block until Ray has restarted worker ``w``, then give it the current weights."""
        import ray
        from ray.exceptions import RayActorError

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.worker_pids[w] = ray.get(self.workers[w].ping.remote(), timeout=60)["pid"]
                break
            except (RayActorError, ray.exceptions.GetTimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        if self.version > 0:
            ray.get(self.workers[w].update_weights.remote(self._weights_ref, self.version))

    def _score_async(self, stream: PromptStream, prompt_idx: list[int], batch: RolloutBatch) -> Future:
        from rewards.base import OverlongPolicy, Sample, score_sync

        lengths, truncated = response_lengths(batch.response_ids, self.pad_id, self.eos_id)
        samples = []
        for r in range(len(batch)):
            toks = batch.response_ids[r, : int(lengths[r])].tolist()
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            row = stream.rows[prompt_idx[int(batch.group[r])]]
            samples.append(
                Sample(row=row, completion=text, truncated=bool(truncated[r]), num_tokens=int(lengths[r]))
            )
        rc = self.cfg.reward
        overlong = OverlongPolicy(rc.overlong, self.cfg.rollout.sampler.max_new_tokens, rc.overlong_buffer)
        return self._pool.submit(
            score_sync, self.verifier, samples, deadline_s=rc.deadline_s, overlong=overlong
        )

    # ================================================================== one RL step
    def train_step(self) -> dict[str, Any]:
        import ray

        cfg, step, n = self.cfg, self.step, self.cfg.rollout.n
        t_step = time.perf_counter()
        restarts_before = self.rollout_restarts
        pending = self._prefetched or self._launch(
            self.train_prompts, self.train_prompts.next_batch(cfg.data.prompts_per_step), step, n
        )
        self._prefetched = None
        self._cursor = self.train_prompts.state_dict()  # what a checkpoint after this step resumes from
        prompt_idx = pending.prompt_idx
        rollout, results, timing = self._finish(pending)
        if cfg.trainer.off_policy_overlap and step + 1 < cfg.trainer.total_steps:
            # one-step off-policy: step k+1 generates with the weights of step k while the learner
            # trains on step k (workers run the queued generate before the next weight update)
            self._prefetched = self._launch(
                self.train_prompts, self.train_prompts.next_batch(cfg.data.prompts_per_step), step + 1, n
            )
        rewards = torch.tensor([r.reward for r in results], dtype=torch.float).view(-1, n)
        selection = select_groups(
            cfg.algo.zero_advantage,
            rewards,
            step_generator(cfg.trainer.seed, step, 1),
            target_groups=rewards.shape[0],
        )
        index = selection.index
        if index.numel() < rewards.shape[0]:  # refill policy kept fewer: top up by substitution among kept
            extra = index[
                torch.randint(
                    index.numel(),
                    (rewards.shape[0] - index.numel(),),
                    generator=step_generator(cfg.trainer.seed, step, 2),
                )
            ]
            index = torch.cat([index, extra])
        rows = group_rows(index, n)
        sel_rewards = rewards[index]
        adv = compute_advantages(
            sel_rewards, cfg.algo.advantage, norm_by_std=cfg.algo.norm_adv_by_std
        ).flatten()
        resp = rollout.response_ids[rows]
        batch = TrainBatch(
            input_ids=torch.cat([rollout.prompt_ids[rows], resp], 1),
            attention_mask=torch.cat([rollout.prompt_mask[rows], torch.ones_like(resp)], 1),
            response_mask=response_loss_mask(resp, self.pad_id, self.eos_id, cfg.algo.include_eos_in_loss),
            advantages=adv,
            rewards=sel_rewards.flatten(),
            group=index.repeat_interleave(n),
        )
        t0 = time.perf_counter()
        k = len(self.learners)
        metrics_per_rank = ray.get(
            [lr.train_step.remote(batch.shard(r, k), step) for r, lr in enumerate(self.learners)]
        )
        t_update = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.version += 1
        self._sync_weights()
        t_sync = time.perf_counter() - t0
        self.step += 1

        lengths, truncated = response_lengths(rollout.response_ids, self.pad_id, self.eos_id)
        metrics: dict[str, Any] = {
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
            "response/length_mean": float(lengths.float().mean()),
            "response/truncated_frac": float(truncated.float().mean()),
            "rollout/version": rollout.version,
            "rollout/restarts": self.rollout_restarts - restarts_before,
            **{f"batch/{k_}": v for k_, v in selection.metrics.items()},
            **{key: sum(m[key] for m in metrics_per_rank) / k for key in metrics_per_rank[0]},
            **timing,
            "time/update": t_update,
            "time/sync": t_sync,
            "time/step": time.perf_counter() - t_step,
        }
        reasons: dict[str, int] = {}
        for r in results:
            reasons[r.reason or "pass"] = reasons.get(r.reason or "pass", 0) + 1
        metrics.update({f"verdict/{key}": v / len(results) for key, v in reasons.items()})
        self._log_completions(step, prompt_idx, rollout, results, rewards, index, adv)
        return metrics

    def _sync_weights(self) -> None:
        """Learner -> rollout workers: full weights from rank 0 (ZeRO-3 shards gathered by all ranks)."""
        import ray

        refs = [lr.gather_weights.remote() for lr in self.learners]
        ray.get(refs[1:])
        self._weights_ref = refs[0]
        ray.get([w.update_weights.remote(self._weights_ref, self.version) for w in self.workers])

    def _log_completions(self, step, prompt_idx, rollout, results, rewards, index, adv) -> None:
        n = self.cfg.rollout.n
        adv_of_group = {
            int(g): adv.view(-1, n)[slot] for slot, g in enumerate(index.tolist()) if int(g) == slot
        }
        rows = []
        lengths, _ = response_lengths(rollout.response_ids, self.pad_id, self.eos_id)
        for r, res in enumerate(results):
            g, j = divmod(r, n)
            row = self.train_prompts.rows[prompt_idx[g]]
            rows.append(
                {
                    "prompt": row["prompt"][-1]["content"][-300:],
                    "completion": self.tokenizer.decode(
                        rollout.response_ids[r, : int(lengths[r])].tolist(), skip_special_tokens=True
                    ),
                    "reward": res.reward,
                    "advantage": float(adv_of_group[g][j]) if g in adv_of_group else None,
                    "reason": res.reason,
                    "seed": int(rollout.seeds[r]),
                    "version": rollout.version,
                }
            )
        self.logger.log_completions(step, rows)

    # ================================================================== evaluation and the run
    def evaluate(self, label: str) -> dict[str, Any] | None:
        """Held-out pass@1 (``eval_samples`` samples per prompt, binary reward): ``{"pass@1": p,
        "by_group": {key: p}}`` with the key ``trainer.eval_group_by`` of each row (e.g. its data source)."""
        if self.heldout is None:
            return None
        from rlvr.training.metrics import pass_rate_by, row_field

        t = self.cfg.trainer
        sampler = {**t.eval_sampler, "temperature": t.eval_temperature}
        idx = list(range(len(self.heldout)))
        with self._eval_threads():
            _, results, _ = self.rollout_and_score(self.heldout, idx, step=-1, n=t.eval_samples, sampler=sampler)
        passed = [r.reward >= 1.0 for r in results]
        score = sum(passed) / max(1, len(passed))
        out: dict[str, Any] = {"pass@1": score, "samples": len(passed)}
        self.console.print(f"[bold]held-out pass@1 ({label})[/]: {score:.3f} over {len(passed)} samples")
        if t.eval_group_by:
            # rows are prompt-major: sample r belongs to held-out prompt r // eval_samples
            keys = [row_field(self.heldout.rows[r // t.eval_samples], t.eval_group_by) for r in range(len(passed))]
            out["by_group"] = pass_rate_by(keys, passed)
            if len(out["by_group"]) > 1:
                parts = "  ".join(f"{k} {v:.2f}" for k, v in out["by_group"].items())
                self.console.print(f"[dim]  by {t.eval_group_by}: {parts}[/]", highlight=False)
        return out

    @contextlib.contextmanager
    def _eval_threads(self):
        """On CPU the learner ranks idle during held-out evaluation: the rollout workers borrow their
        threads (the tiny run's evaluation takes half the time), and give them back after."""
        import ray

        lc, rc = self.cfg.learner, self.cfg.rollout
        if not lc.threads or rc.num_gpus_per_worker > 0:
            yield
            return
        boost = lc.threads * -(-(rc.num_workers + lc.num_ranks) // rc.num_workers)

        def set_all(n: int) -> None:
            try:
                ray.get([w.set_threads.remote(n) for w in self.workers], timeout=60)
            except (ray.exceptions.RayError, TimeoutError) as exc:  # a dead worker only costs speed
                self.console.print(f"[yellow]could not set rollout threads to {n}: {exc}[/]")

        set_all(boost)
        try:
            yield
        finally:
            set_all(lc.threads)

    def run(self) -> dict[str, Any]:
        import ray
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        t = self.cfg.trainer
        summary: dict[str, Any] = {}
        before_path = self.out / "eval_before.json"
        if before_path.is_file():
            before = json.loads(before_path.read_text())
        else:
            before = self.evaluate("before RL")
            before_path.write_text(json.dumps(before))
        summary["pass@1_before"] = before["pass@1"] if before else None
        with Progress(
            TextColumn("[bold]GRPO"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
        ) as bar:
            task = bar.add_task("grpo", total=t.total_steps, completed=self.step, info="")
            while self.step < t.total_steps:
                metrics = self.train_step()
                if t.eval_every and self.step % t.eval_every == 0 and self.step < t.total_steps:
                    ev = self.evaluate(f"step {self.step}")
                    metrics["eval/pass@1"] = ev["pass@1"] if ev else None
                self.logger.log(self.step, metrics)
                if self.step % t.save_every == 0 or self.step == t.total_steps:
                    self.save()
                bar.update(
                    task,
                    completed=self.step,
                    info=f"reward={metrics['reward/mean']:.3f} len={metrics['response/length_mean']:.1f}",
                )
                self.hooks.step_finished(self, self.step, metrics)
        after = self.evaluate("after RL")
        summary["pass@1_after"] = after["pass@1"] if after else None
        if after:
            (self.out / "eval_after.json").write_text(json.dumps(after))
        if before and after and "by_group" in after:
            summary["heldout_by_group"] = {"before": before.get("by_group"), "after": after["by_group"]}
        summary.update(self._reward_trend())
        final = self.out / "final"
        ray.get([lr.save_hf.remote(str(final), self.cfg.model.path) for lr in self.learners])
        summary["final_model"] = str(final)
        self._plot(summary.get("heldout_by_group"))
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        self.logger.close()
        return summary

    def _reward_trend(self) -> dict[str, Any]:
        """Mean training reward over the first and the last quarter of the run's steps."""
        from rlvr.training.metrics import first_last_means, read_metrics

        path = self.out / "metrics.jsonl"
        rewards = [r["reward/mean"] for r in read_metrics(path) if "reward/mean" in r] if path.exists() else []
        trend = first_last_means(rewards)
        if trend is None:
            return {}
        self.console.print(
            f"[bold]train reward[/]: {trend[0]:.3f} (first quarter of steps) -> {trend[1]:.3f} (last quarter)"
        )
        return {"train_reward_first_quarter": trend[0], "train_reward_last_quarter": trend[1]}

    def _plot(self, by_group: dict[str, Any] | None = None) -> None:
        from rlvr.training.metrics import plot_before_after, plot_metrics

        keys = ("reward/mean", "response/length_mean", "actor/clip_frac", "batch/solve_partial")
        try:
            plot_metrics([("grpo", self.out / "metrics.jsonl")], self.out / "curves.png", keys=keys, smooth=3)
            if by_group and by_group.get("before") and by_group.get("after"):
                plot_before_after(
                    by_group["before"], by_group["after"], self.out / "heldout_by_group.png",
                    ylabel=f"held-out pass@1 by {self.cfg.trainer.eval_group_by}",
                )
        except Exception as exc:  # a plot must never cost the run its summary
            self.console.print(f"[yellow]could not render the run's PNGs: {exc}[/]")
