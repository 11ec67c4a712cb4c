"""GRPO config. Defaults follow Dream-Coder-Instruct's RL recipe (arXiv 2509.01142 and its verl run
config: 96 prompts x 16 samples, lr 5e-7 constant, clip 0.2/0.28, 2 PPO epochs on coupled masks, CART
p=0.1, no KL or entropy term, zero-advantage substitution, 1 token per step at temperature 1) unless a
comment says otherwise; the tiny CPU config and the 7B config differ only in numbers and paths.

Every field that names an implementation (sampler algorithm, advantage, log-prob estimator, weighting,
zero-advantage policy, verifier, rollout engine, policy kind) is checked against its registry here,
when the config loads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from rlvr.config import Config
from rlvr.engine.config import DeepSpeedSection, OptimConfig
from rlvr.registry import RegistryName
from rlvr.rollout.config import SamplerCfg, VLLMEngineCfg


def _name(where: str, kind: str) -> AfterValidator:
    return AfterValidator(RegistryName(where, kind))


class ModelCfg(Config):
    path: str = "runs/tiny/sft"  # an HF folder written by `rlvr sft` (or any DiffusionLM checkpoint)
    dtype: Literal["float32", "bfloat16"] = "float32"  # bf16 on GPU; CPU tiny runs stay fp32
    # "autoregressive": a plain causal checkpoint (the vLLM baseline); needs rollout.engine=vllm and
    # algo.logprob_estimator=autoregressive, since a causal policy is neither denoised nor masked
    kind: Annotated[str, _name("rlvr.learner.rank:POLICY_KINDS", "policy kind")] = "diffusion"


class DataCfg(Config):
    train: str = "runs/tiny/data/rl_train.jsonl"  # prompt rows in the rlvr.data schema
    # held-out evaluation sets: one file (named "heldout") or {name: file, ...}; the first is the primary
    # (pass@1_before/after in summary.json). Each is scored before and after RL with the same sampling seeds
    heldout: str | dict[str, str] | None = "runs/tiny/data/rl_heldout.jsonl"
    prompts_per_step: int = Field(96, ge=1)  # Dream-Coder: 96 prompts x 16 samples per step
    max_prompt_length: int = Field(512, ge=1)  # longer prompts are dropped (and counted), as in the recipe
    shuffle_seed: int = 0

    def eval_sets(self) -> dict[str, str]:
        """``heldout`` as ``{name: path}`` (empty when there is none)."""
        if self.heldout is None:
            return {}
        return {"heldout": self.heldout} if isinstance(self.heldout, str) else dict(self.heldout)


class RolloutCfg(Config):
    # vllm: autoregressive baselines only
    engine: Annotated[str, _name("rlvr.rollout:ROLLOUT_ENGINES", "rollout engine")] = "diffusion"
    vllm: VLLMEngineCfg = VLLMEngineCfg()  # read only when engine=vllm
    num_workers: int = Field(1, ge=1)
    n: int = Field(16, ge=2)  # group size G; GRPO needs at least two samples per prompt
    micro_batch_size: int = Field(16, ge=1)  # rows per generate() call inside a worker
    sampler: SamplerCfg = SamplerCfg()
    num_cpus_per_worker: float = 1.0
    num_gpus_per_worker: float = 0.0
    max_restarts: int = 2  # a dead worker is restarted by Ray and its share re-issued


class RewardCfg(Config):
    verifier: Annotated[str, _name("rlvr.rewards.registry:names", "verifier")] = "code_tests"
    verifier_kwargs: dict[str, Any] = {"mode": "binary"}
    sandbox_urls: list[str] = []  # empty: start a local sandbox server for the run
    # the controller waits this long for every configured replica's /healthz before the first step
    # (replicas may start after the driver on a fresh cluster); then it stops, naming the unhealthy ones
    sandbox_wait_s: float = Field(600.0, ge=0)
    deadline_s: float = Field(120.0, gt=0)  # a sample whose verification overruns gets reward 0
    # a completion that fills the canvas without EOS: "zero" (reward 0, not executed; Dream-Coder's
    # effective behaviour), "score" (execute it anyway) or "soft" (DAPO soft penalty over the last
    # overlong_buffer tokens of the canvas, added to the verified reward)
    overlong: Literal["zero", "score", "soft"] = "zero"
    overlong_buffer: int = Field(0, ge=0)


class AlgoCfg(Config):
    advantage: Annotated[str, _name("rlvr.algos:ADVANTAGES", "advantage estimator")] = "grpo"
    # divide by the group std: None = the estimator's own convention (grpo: yes, as Dream-Coder and verl;
    # rloo: no, as DiffuCoder). true with rloo is rejected: a std-normalised leave-one-out advantage is
    # no estimator anyone uses, so it is far more likely a leftover of a grpo config than a choice
    norm_adv_by_std: bool | None = None
    clip_low: float = 0.2
    clip_high: float = 0.28  # clip-higher (DAPO)
    # dual clip (verl's clip_ratio_c, e.g. 3): cap a negative-advantage token's loss at |A| * dual_clip.
    # Off (null) by default, as in Dream-Coder, whose loss has no dual clip. An option for runs where one
    # token's ratio explodes (seen on the tiny model at lr 1e-4: ratio 4e4, grad norm 9e3)
    dual_clip: float | None = Field(None, gt=1)
    kl_coef: float = 0.0  # no KL ...
    # per-token KL(pi || reference) estimate when kl_coef > 0: k1 (log-ratio), k2, k3 = low_var_kl (verl's)
    kl_estimator: Annotated[str, _name("rlvr.algos.policy_loss:KL_ESTIMATORS", "KL estimator")] = "low_var_kl"
    entropy_coef: float = 0.0  # ... and no entropy bonus, as in Dream-Coder
    ppo_epochs: int = Field(2, ge=1)
    mini_batches: int = Field(1, ge=1)  # optimiser steps per PPO epoch (Dream-Coder: 1)
    logprob_estimator: Annotated[str, _name("rlvr.algos:LOGPROB_ESTIMATORS", "log-prob estimator")] = "coupled"
    shared_masks: bool = False  # Dream-Coder tiles one (t, u) over all rows; per-row masks are our default
    # logprob_estimator=trace (TraceRL): the sampler's decode steps cut into this many slices, one masked
    # copy each (2 = the learner compute of coupled's pair)
    trace_slices: int = Field(2, ge=1)
    weighting: Annotated[str, _name("rlvr.diffusion.noise:WEIGHT_KINDS", "loss weighting")] = "cart"
    cart_p: float = Field(0.1, gt=0, lt=1)
    include_eos_in_loss: bool = False  # Dream-Coder drops pad=eos from the loss (no_loss_on_pad)
    # groups whose samples all got the same reward: "substitute" (Dream-Coder: copies of informative
    # groups take their place), "refill" (DAPO dynamic sampling: generate new prompt groups until the
    # batch holds prompts_per_step informative ones) or "none"
    zero_advantage: Annotated[
        str, _name("rlvr.algos:ZERO_ADVANTAGE_POLICIES", "zero-advantage policy")
    ] = "substitute"
    # one-step off-policy overlap (trainer.off_policy_overlap): the samples of step k+1 come from the weights
    # before step k's update. The learner keeps a copy of those weights (the behaviour policy) and trains
    # with the decoupled PPO objective (AReaL): the clipped ratio is taken against the learner before its
    # update (the proximal policy) and each token is weighted by pi_prox / pi_behav; tokens whose weight
    # exceeds this cap are dropped
    behaviour_weight_cap: float = Field(5.0, gt=1)
    # controls that must show no learning at the same compute (rlvr.grpo.selection.train_batch):
    # "shuffle_advantages" permutes the advantages across the batch, "flip_reward" trains on -reward;
    # the third control, learning rate 0, is learner.optim.lr=0
    control: Literal["none", "shuffle_advantages", "flip_reward"] = "none"
    # refill: at most this many extra generation rounds of data.prompts_per_step new prompts per step
    # (DAPO's max_num_gen_batches); slots still empty after them are filled by substitution
    refill_max_rounds: int = Field(3, ge=1)

    def estimator(self) -> Any:
        """The configured :data:`rlvr.algos.LOGPROB_ESTIMATORS` instance (with its copy count where that
        is a setting, e.g. ``trace_slices``)."""
        from rlvr.algos import LOGPROB_ESTIMATORS

        est = LOGPROB_ESTIMATORS.get(self.logprob_estimator)
        return est.with_copies(getattr(self, est.copies_setting) if est.copies_setting else None)


class LearnerCfg(Config):
    num_ranks: int = Field(1, ge=1)  # data-parallel DeepSpeed ranks (Ray actors)
    micro_batch_size: int = Field(16, ge=1)  # forward rows (masked copies) per micro-batch
    # Dream-Coder RL: lr 5e-7 constant without warmup, grad clip 1.0 (verl's AdamW defaults otherwise)
    optim: OptimConfig = OptimConfig(
        lr=5e-7, betas=(0.9, 0.999), weight_decay=0.01, warmup_ratio=0.0, schedule="constant", grad_clip=1.0
    )
    deepspeed: DeepSpeedSection = DeepSpeedSection(zero_stage=2)
    threads: int = Field(1, ge=0)  # torch threads per rank on CPU (0: torch default)
    num_cpus_per_rank: float = 1.0
    num_gpus_per_rank: float = 0.0


class TrainerCfg(Config):
    out_dir: str = "runs/grpo"
    total_steps: int = Field(50, ge=1)
    save_every: int = Field(10, ge=1)
    eval_every: int = 0  # 0: evaluate only before and after training
    eval_samples: int = Field(1, ge=1)  # samples per held-out prompt: pass@1 is their mean, pass@k unbiased
    eval_temperature: float = 0.1
    # sampler settings that differ at evaluation, over rollout.sampler: e.g. {cache: none} to score the
    # held-out set with the exact sampler while rollouts use an approximate KV cache
    eval_sampler: dict[str, Any] = {}
    # held-out pass@1 is also reported per value of this row field (dotted path; None: off)
    eval_group_by: str | None = "data_source"
    seed: int = 0
    resume: bool = True  # continue from out_dir/checkpoints/latest when present
    placement: Literal["separate", "colocate"] = "separate"
    # generate step k+1 while training on step k; the learner then trains on samples of the previous version
    # with the decoupled objective (algo.behaviour_weight_cap), keeping a snapshot of that version
    off_policy_overlap: bool = False
    # learner -> rollout weights: "bucketed" streams ZeRO-3 shards weight_sync_bucket_mb at a time over a
    # process group per worker (NCCL / gloo); "object_store" ships rank 0's whole state dict through Ray;
    # "auto": bucketed, except object_store for the vLLM baseline (its worker loads whole state dicts)
    weight_sync: Literal["auto", "bucketed", "object_store"] = "auto"
    weight_sync_bucket_mb: int = Field(256, ge=1)
    wandb_project: str | None = None  # None: no wandb; set to log (offline unless WANDB_MODE says otherwise)
    ray_address: str | None = None  # None: start a local Ray cluster
    ray_num_cpus: int | None = None
    ray_object_store_mb: int = 512
    # the GPU the run's memory plan (`rlvr plan`) must fit before anything starts: "auto" reads it from
    # the cluster when the actors use GPUs, a kind (h100-80g, a100-80g, ...) checks it at --check time
    # too, null skips the plan
    gpu: str | None = "auto"

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, v: str | None) -> str | None:
        from rlvr.plan import GPUS

        if v is not None and v != "auto" and v not in GPUS:
            raise ValueError(f"unknown GPU {v!r}; choose auto, null or one of {', '.join(GPUS)}")
        return v


class GRPOConfig(Config):
    model: ModelCfg = ModelCfg()
    data: DataCfg = DataCfg()
    rollout: RolloutCfg = RolloutCfg()
    reward: RewardCfg = RewardCfg()
    algo: AlgoCfg = AlgoCfg()
    learner: LearnerCfg = LearnerCfg()
    trainer: TrainerCfg = TrainerCfg()

    def weight_sync_transport(self) -> str:
        """``trainer.weight_sync`` with ``auto`` resolved (a ``rlvr.grpo.weight_sync.TRANSPORTS`` key)."""
        if self.trainer.weight_sync != "auto":
            return self.trainer.weight_sync
        return "object_store" if self.rollout.engine == "vllm" else "bucketed"

    @model_validator(mode="after")
    def _check(self) -> GRPOConfig:
        if self.algo.logprob_estimator == "trace" and self.rollout.engine != "diffusion":
            raise ValueError("algo.logprob_estimator=trace needs the diffusion sampler's decode steps (rollout.engine=diffusion)")
        ar_model = self.model.kind == "autoregressive"
        if (self.rollout.engine == "vllm") != ar_model:
            raise ValueError(
                f"rollout.engine={self.rollout.engine} does not fit model.kind={self.model.kind}: vLLM "
                "serves autoregressive policies only and the diffusion sampler cannot decode one, so use "
                "rollout.engine=vllm with model.kind=autoregressive (or diffusion with diffusion)"
            )
        if (self.algo.logprob_estimator == "autoregressive") != ar_model:
            raise ValueError(
                f"algo.logprob_estimator={self.algo.logprob_estimator} does not fit "
                f"model.kind={self.model.kind}: an autoregressive policy is scored by the "
                "'autoregressive' estimator (exact causal log-probs) and a diffusion policy by a masked one"
            )
        if (
            self.reward.overlong == "soft"
            and not 0 < self.reward.overlong_buffer <= self.rollout.sampler.max_new_tokens
        ):
            raise ValueError(
                "reward.overlong=soft needs 0 < reward.overlong_buffer <= rollout.sampler.max_new_tokens "
                f"(got {self.reward.overlong_buffer})"
            )
        known = set(SamplerCfg.model_fields) - {"eos_penalty", "temperature"}  # worker-level / own key
        unknown = sorted(set(self.trainer.eval_sampler) - known)
        if unknown:
            raise ValueError(
                f"trainer.eval_sampler has unknown key(s) {unknown}; known: {sorted(known)} "
                "(the evaluation temperature is trainer.eval_temperature)"
            )
        try:
            SamplerCfg.model_validate({**self.rollout.sampler.model_dump(), **self.trainer.eval_sampler})
        except ValidationError as exc:
            bad = "; ".join(
                f"trainer.eval_sampler.{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise ValueError(bad) from None
        if self.algo.advantage == "rloo" and self.algo.norm_adv_by_std:
            raise ValueError(
                "algo.norm_adv_by_std=true with algo.advantage=rloo: leave-one-out advantages are not "
                "std-normalised (DiffuCoder); leave algo.norm_adv_by_std unset (null) or false"
            )
        if self.rollout.engine == "vllm" and self.trainer.weight_sync == "bucketed":
            raise ValueError(
                f"trainer.weight_sync={self.trainer.weight_sync} with rollout.engine=vllm: the vLLM baseline "
                "loads weights through the object store only; set trainer.weight_sync=object_store"
            )
        rows = self.data.prompts_per_step * self.rollout.n
        if rows % (self.learner.num_ranks * self.algo.mini_batches):
            raise ValueError(
                f"data.prompts_per_step * rollout.n = {rows} rows must divide evenly over "
                f"learner.num_ranks * algo.mini_batches = {self.learner.num_ranks * self.algo.mini_batches}"
            )
        return self
