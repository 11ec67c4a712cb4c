"""Per-GPU memory plan of a GRPO config: what each component takes, in which phase, and whether it fits.

``rlvr plan -c CONFIG [overrides] --gpu h100-80g [--nodes N]`` prints it; ``rlvr train`` runs it before
starting when ``trainer.gpu`` names the GPU (or probes it, ``auto``), and refuses a config that cannot
fit, naming the largest term and the knob that shrinks it.

The terms, per GPU (``P`` parameters, ``N`` learner ranks, ``b`` bytes per element of the model dtype):

* **model states** (learner): bf16 parameters, gradients and AdamW states (fp32 master copy, two moments,
  fp32 gradient partition), partitioned by ZeRO stage exactly as DeepSpeed's own estimators count them
  (``estimate_zero3_model_states_mem_needs``: ``4 x largest layer + 18 P / N``; the stage-1/2 one:
  ``2 P + 18 P / N``); stage 1 also holds full bf16 gradients (``+ 2 P (1 - 1/N)``), which DeepSpeed's
  shared stage-1/2 estimator does not count. Cross-checked against those estimators in
  ``tests/core/test_plan.py``.
* **activations** and **recomputed layer** (learner micro-batch, forward + backward): with gradient
  checkpointing, every layer's input (``L x rows x seq x H x b``), and one layer recomputed with what
  autograd saves for it (counted tensor by tensor in :func:`layer_saved_bytes`) plus its MLP gradients;
  without it, every layer's saved tensors.
* **logits** (learner): the canvas logits in the model dtype and their gradient, plus two fp32 chunks of
  the chunked log-softmax (``rlvr.algos.logprobs``).
* **rollout model**: a full copy per rollout worker; **KV cache** of the sampler (``cache: prefix|dual``):
  keys and values of every layer for every position of the rows of one generate call; **sampler
  forward** (inference, one layer's intermediates at a time) and **sampler logits** (the logits the
  forward projects and the fp32 work of the sampling transforms on the positions still masked).
* **gathered weights** during a weight sync (``rlvr.grpo.weight_sync``): with ``trainer.weight_sync=
  bucketed`` one bucket (at least the largest tensor, e.g. the embedding) gathered plus its flat copy on
  the learner and a **received bucket** on the worker; with ``object_store`` under ZeRO-3 the full parameters, gathered on every learner GPU at once.
* **reference model** (``algo.kl_coef > 0``) and **behaviour model** (``trainer.off_policy_overlap``): frozen
  second copies on the learner, sharded like the policy under ZeRO-3 (``rlvr.learner.reference``);
* **CUDA context** per process on the GPU (1 GiB, allocator and NCCL buffers included).

Phases: ``generate`` (rollout side + learner states resident), ``train: head`` (the layer inputs, the canvas
logits and their gradient) and ``train: layers`` (the layer inputs and one recomputed layer, after the logits
are freed), both with the rollout copy resident when colocated, and ``sync``. The peak phase must fit the GPU minus ``headroom`` (10%: the
caching allocator's fragmentation). The activation and logits terms are cross-checked against measured
CPU peaks of scaled-down models (``benchmarks/plan_check.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "GPUS",
    "GIB",
    "ModelShape",
    "Term",
    "Plan",
    "model_state_terms",
    "deepspeed_estimate",
    "layer_saved_bytes",
    "learner_activation_terms",
    "learner_peak_bytes",
    "logits_bytes",
    "sampler_terms",
    "plan_grpo",
    "read_shape",
    "render",
    "markdown_table",
    "fit_problem",
    "probe_gpu",
]

GIB = 2**30
# memory as torch.cuda.get_device_properties reports it (MiB from nvidia-smi)
GPUS: dict[str, int] = {
    "a100-40g": 40_960 * 2**20,
    "a100-80g": 81_920 * 2**20,
    "h100-80g": 81_559 * 2**20,
    "h200-141g": 143_771 * 2**20,
    "l40s-48g": 46_068 * 2**20,
}
CUDA_CONTEXT = GIB  # per process holding a GPU: context, allocator pools, NCCL buffers
LOGSOFTMAX_FP32_CHUNKS = 2  # live fp32 chunk tensors in the chunked log-softmax's backward
SAMPLER_BYTES_PER_LOGIT = 28  # fp32 work per masked position and vocabulary entry in the sampling transforms


@dataclass(frozen=True)
class ModelShape:
    """The dimensions that decide memory, from a checkpoint's ``config.json`` (Qwen2 / Dream family)."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    tied: bool

    @classmethod
    def from_config(cls, cfg: Any) -> ModelShape:
        get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
        heads = int(get("num_attention_heads"))
        hidden = int(get("hidden_size"))
        return cls(
            vocab=int(get("vocab_size")),
            hidden=hidden,
            layers=int(get("num_hidden_layers")),
            heads=heads,
            kv_heads=int(get("num_key_value_heads") or heads),
            head_dim=int(get("head_dim") or hidden // heads),
            intermediate=int(get("intermediate_size")),
            tied=bool(get("tie_word_embeddings", False)),
        )

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_params(self) -> int:
        """One decoder layer: q/k/v projections with bias, o projection, gated MLP, two RMSNorm gains."""
        q = self.heads * self.head_dim
        attn = self.hidden * q + q + 2 * (self.hidden * self.kv_dim + self.kv_dim) + q * self.hidden
        return attn + 3 * self.hidden * self.intermediate + 2 * self.hidden

    def params(self) -> int:
        embed = self.vocab * self.hidden
        return embed * (1 if self.tied else 2) + self.layers * self.layer_params() + self.hidden

    def largest_layer_params(self) -> int:
        """The largest single module's own parameters (DeepSpeed's ``model_to_params``): the embedding
        (or the output head), else the MLP's largest projection."""
        return max(self.vocab * self.hidden, self.hidden * self.intermediate)


def read_shape(model_path: str | Path) -> ModelShape:
    """The shape of a checkpoint folder (any format ``rlvr.diffusion.checkpoints`` reads) or of a bare
    ``config.json`` file (to plan before downloading weights)."""
    p = Path(model_path)
    if p.is_file():
        return ModelShape.from_config(json.loads(p.read_text()))
    from rlvr.diffusion.checkpoints import load_config

    return ModelShape.from_config(load_config(p))


# ------------------------------------------------------------------------------------- the terms
def model_state_terms(
    params: int, largest: int, zero_stage: int, ranks: int, bf16: bool, offload_optimizer: bool = False
) -> dict[str, int]:
    """Bytes per learner GPU of parameters, gradients and optimizer states (and ZeRO-3's gathered layer).

    bf16 (DeepSpeed mixed precision): 2-byte parameters and gradients, fp32 master copy + Adam moments
    (12 bytes) and an fp32 gradient partition (4 bytes). fp32: 4-byte parameters and gradients, 8 bytes of
    moments, no master copy."""
    p, n = params, ranks
    if not bf16:
        out = {
            "parameters": 4 * p // (n if zero_stage == 3 else 1),
            "gradients": 4 * p // (n if zero_stage >= 2 else 1),
            "optimizer states": 8 * p // (n if zero_stage >= 1 else 1),
        }
    elif zero_stage == 3:
        out = {"parameters": 2 * p // n, "gradients": 4 * p // n, "optimizer states": 12 * p // n}
        out["ZeRO-3 gathered layer"] = 4 * largest
    elif zero_stage == 2:
        out = {"parameters": 2 * p, "gradients": 6 * p // n, "optimizer states": 12 * p // n}
    elif zero_stage == 1:
        out = {"parameters": 2 * p, "gradients": 2 * p + 4 * p // n, "optimizer states": 12 * p // n}
    else:  # DeepSpeed's bf16 optimizer: bf16 grads + fp32 accumulation, fp32 master + moments, unpartitioned
        out = {"parameters": 2 * p, "gradients": 6 * p, "optimizer states": 12 * p}
    if offload_optimizer:  # master copy, moments and the fp32 gradient partition live in host memory
        out["optimizer states"] = 0
        if bf16:
            out["gradients"] = {3: 0, 2: 2 * p // n, 1: 2 * p}.get(zero_stage, out["gradients"])
    return out


def deepspeed_estimate(params: int, largest: int, zero_stage: int, ranks: int) -> int | None:
    """DeepSpeed's own estimate of the model states per GPU (mixed precision, no offload) for stage 1-3;
    ``None`` for stage 0, which it does not estimate. Stage 1 uses its shared stage-1/2 estimator."""
    if zero_stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        return estimate_zero3_model_states_mem_needs(params, largest, ranks, 1, cpu_offload=False)[1]
    if zero_stage in (1, 2):
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        return estimate_zero2_model_states_mem_needs(params, ranks, 1, cpu_offload=False)[1]
    return None


def layer_saved_bytes(shape: ModelShape, tokens: int, b: int) -> int:
    """What autograd keeps for backward in one Qwen2 decoder layer (SDPA attention, no S x S scores),
    per ``tokens`` (rows x sequence), counted tensor by tensor:

    * each RMSNorm: its fp32 upcast of the input (when the model is not fp32) and its normalised output
      (``2 x (4H [b < 4] + bH)``), plus the residual sum feeding the second norm (``bH``);
    * attention: q and k after RoPE (``bH + b kv``), v (``b kv``), keys and values repeated to all heads
      for SDPA (``2 bH``, when grouped), SDPA's output (``bH``);
    * MLP: gate, SiLU(gate), up, their product (``4 bI``).
    """
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_dim
    upcast = 4 * h if b < 4 else 0
    norms = 2 * (upcast + b * h) + b * h
    repeat = 2 * b * h if shape.kv_heads != shape.heads else 0
    attn = b * h + 2 * b * kv + repeat + b * h
    return tokens * (norms + attn + 4 * b * i)


def learner_activation_terms(shape: ModelShape, rows: int, seq: int, b: int, checkpointing: bool) -> dict[str, int]:
    """Activations of one learner micro-batch: what stays alive through the backward (``activations``: the
    layers' inputs with gradient checkpointing, every layer's saved tensors without) and, with
    checkpointing, the one ``recomputed layer`` live during its own backward (its saved tensors plus the
    gradients of its MLP intermediates, ``2 bI`` per token)."""
    tokens = rows * seq
    if not checkpointing:
        return {"activations": shape.layers * layer_saved_bytes(shape, tokens, b) + tokens * shape.hidden * b}
    recomputed = layer_saved_bytes(shape, tokens, b) + tokens * 2 * b * shape.intermediate
    return {"activations": shape.layers * tokens * shape.hidden * b, "recomputed layer": recomputed}


def learner_peak_bytes(
    shape: ModelShape, rows: int, seq: int, canvas: int, b: int, checkpointing: bool
) -> dict[str, int]:
    """Activations + logits of one learner micro-batch in its two backward sub-phases: ``train: head``
    (the canvas logits and their gradient) and ``train: layers`` (a recomputed layer's backward, after
    the logits are freed)."""
    act = learner_activation_terms(shape, rows, seq, b, checkpointing)
    return {
        "train: head": act["activations"] + logits_bytes(rows, canvas, shape.vocab, b),
        "train: layers": act["activations"] + act.get("recomputed layer", 0),
    }


def logits_bytes(rows: int, canvas: int, vocab: int, b: int, chunk: int = 256) -> int:
    """The learner's canvas logits (model dtype), their gradient, and the fp32 chunks of the chunked
    log-softmax's backward."""
    return 2 * rows * canvas * vocab * b + LOGSOFTMAX_FP32_CHUNKS * min(chunk, canvas) * vocab * 4


def sampler_terms(shape: ModelShape, rows: int, prompt: int, canvas: int, sampler: Any, b: int) -> dict[str, int]:
    """GPU memory of one generate call of ``rows`` rows beyond the model copy: KV cache, one layer's
    inference intermediates, and the logits with the sampling transforms' fp32 work."""
    seq = prompt + canvas
    block = sampler.block_length or canvas
    cached = sampler.cache in ("prefix", "dual")
    kv = 2 * shape.layers * rows * seq * shape.kv_dim * b if cached else 0
    # a refresh (or every uncached step) is a full forward: one layer's MLP intermediates + hidden states
    forward = rows * seq * (3 * shape.intermediate + 4 * shape.hidden) * b
    # the forward projects the block (+1 for the shift) onto the vocabulary; the masked positions of the
    # block go through float32 softmax / top-p / confidence
    projected = rows * ((block + 1) if cached or sampler.block_length else canvas) * shape.vocab * b
    work = rows * block * shape.vocab * SAMPLER_BYTES_PER_LOGIT
    return {"KV cache": kv, "sampler forward": forward, "sampler logits": projected + work}


# ------------------------------------------------------------------------------------- the plan
PHASES = ("generate", "train: head", "train: layers", "sync")
TRAIN = PHASES[1:3]
MODEL_STATE_TERMS = ("parameters", "gradients", "optimizer states", "ZeRO-3 gathered layer")
KNOBS = {
    "parameters": "learner.deepspeed.zero_stage=3 (shards them over learner.num_ranks)",
    "gradients": "learner.deepspeed.zero_stage>=2, or more learner.num_ranks",
    "optimizer states": "more learner.num_ranks, or learner.deepspeed.offload_optimizer=true",
    "ZeRO-3 gathered layer": "a model with a smaller vocabulary x width (the embedding is the largest layer)",
    "activations": "learner.deepspeed.gradient_checkpointing=true, then a smaller learner.micro_batch_size",
    "recomputed layer": "a smaller learner.micro_batch_size",
    "logits": "a smaller learner.micro_batch_size (forward rows x canvas x vocabulary)",
    "rollout model": "trainer.placement=separate (rollout workers on their own GPUs)",
    "KV cache": "a smaller rollout.micro_batch_size",
    "sampler forward": "a smaller rollout.micro_batch_size",
    "sampler logits": "rollout.sampler.block_length (with cache: prefix), or a smaller rollout.micro_batch_size",
    "gathered weights": "trainer.weight_sync=bucketed with a smaller trainer.weight_sync_bucket_mb",
    "received bucket": "a smaller trainer.weight_sync_bucket_mb",
    "CUDA context": "fewer processes per GPU (trainer.placement=separate)",
    "reference model": "learner.deepspeed.zero_stage=3 (shards it), or algo.kl_coef=0",
    "behaviour model": "learner.deepspeed.zero_stage=3 (shards it), or trainer.off_policy_overlap=false",
}


@dataclass
class Term:
    name: str
    bytes: int
    phases: tuple[str, ...]  # the phases in which it is resident
    device: str  # "learner GPU" / "rollout GPU" (the same GPU when colocated)


@dataclass
class Plan:
    gpu: str
    capacity: int
    headroom: float
    placement: str
    gpus_needed: int
    gpus_available: int
    terms: list[Term] = field(default_factory=list)
    deepspeed_model_states: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def devices(self) -> list[str]:
        return sorted({t.device for t in self.terms})

    def phase_bytes(self, device: str) -> dict[str, int]:
        phases = sorted({p for t in self.terms for p in t.phases})
        return {
            ph: sum(t.bytes for t in self.terms if t.device == device and ph in t.phases) for ph in phases
        }

    @property
    def usable(self) -> int:
        return int(self.capacity * (1 - self.headroom))

    def peak(self) -> tuple[str, str, int]:
        """``(device, phase, bytes)`` of the highest phase over the devices."""
        return max(((d, ph, v) for d in self.devices for ph, v in self.phase_bytes(d).items()), key=lambda x: x[2])

    @property
    def fits(self) -> bool:
        return self.peak()[2] <= self.usable and self.gpus_needed <= self.gpus_available

    def largest_term(self) -> Term:
        device, phase, _ = self.peak()
        return max((t for t in self.terms if t.device == device and phase in t.phases), key=lambda t: t.bytes)

    def verdict(self) -> str:
        device, phase, peak = self.peak()
        if self.gpus_needed > self.gpus_available:
            return (
                f"does not fit: the config places its actors on {self.gpus_needed} GPUs, the nodes have "
                f"{self.gpus_available} (learner.num_ranks, rollout.num_workers, trainer.placement, --nodes)"
            )
        head = f"{peak / GIB:.1f} GiB peak ({phase} phase, {device})"
        if self.fits:
            return f"fits {self.gpu}: {head} <= {self.usable / GIB:.1f} GiB usable ({self.headroom:.0%} headroom)"
        big = self.largest_term()
        return (
            f"does not fit {self.gpu}: {head} > {self.usable / GIB:.1f} GiB usable ({self.headroom:.0%} "
            f"headroom of {self.capacity / GIB:.1f} GiB); largest term: {big.name} {big.bytes / GIB:.1f} GiB; "
            f"shrink it with {KNOBS[big.name]}"
        )

    def rows(self) -> list[dict[str, Any]]:
        """One row per term: GiB on its device and the phases it is resident in."""
        return [
            {"device": t.device, "term": t.name, "gib": t.bytes / GIB, "phases": "/".join(t.phases)}
            for t in self.terms
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "capacity_gib": self.capacity / GIB,
            "usable_gib": self.usable / GIB,
            "placement": self.placement,
            "gpus_needed": self.gpus_needed,
            "gpus_available": self.gpus_available,
            "terms": self.rows(),
            "phases_gib": {d: {k: v / GIB for k, v in self.phase_bytes(d).items()} for d in self.devices},
            "deepspeed_model_states_gib": None
            if self.deepspeed_model_states is None
            else self.deepspeed_model_states / GIB,
            "fits": self.fits,
            "verdict": self.verdict(),
            "notes": self.notes,
        }


def plan_grpo(
    cfg: Any, shape: ModelShape, gpu: str, capacity: int | None = None, nodes: int = 1, gpus_per_node: int = 8,
    headroom: float = 0.10,
) -> Plan:
    """The per-GPU memory plan of GRPO config ``cfg`` (a ``GRPOConfig``) for a model of ``shape``."""
    from rlvr.learner.ppo import micro_layout

    if capacity is None:
        if gpu not in GPUS:
            raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)} (or give its memory)")
        capacity = GPUS[gpu]
    lc, rc, ds = cfg.learner, cfg.rollout, cfg.learner.deepspeed
    colocate = cfg.trainer.placement == "colocate"
    lb = 2 if ds.bf16 else 4
    rb = 2 if cfg.model.dtype == "bfloat16" else 4
    p, largest = shape.params(), shape.largest_layer_params()
    gpu_l, gpu_r = ("GPU", "GPU") if colocate else ("learner GPU", "rollout GPU")
    if colocate:
        needed = max(lc.num_ranks, rc.num_workers) * max(lc.num_gpus_per_rank, rc.num_gpus_per_worker)
    else:
        needed = lc.num_ranks * lc.num_gpus_per_rank + rc.num_workers * rc.num_gpus_per_worker
    plan = Plan(gpu, capacity, headroom, cfg.trainer.placement, math.ceil(needed), nodes * gpus_per_node)
    all_phases = PHASES

    def add(name: str, nbytes: int, phases: tuple[str, ...], device: str) -> None:
        if nbytes:
            plan.terms.append(Term(name, int(nbytes), phases, device))

    # learner
    states = model_state_terms(p, largest, ds.zero_stage, lc.num_ranks, ds.bf16, ds.offload_optimizer)
    for name, nbytes in states.items():
        add(name, nbytes, TRAIN if name == "ZeRO-3 gathered layer" else all_phases, gpu_l)
    copy = lb * p // (lc.num_ranks if ds.zero_stage == 3 else 1)  # a frozen second model, sharded like the policy
    if cfg.algo.kl_coef > 0:
        add("reference model", copy, all_phases, gpu_l)
    if cfg.trainer.off_policy_overlap:
        add("behaviour model", copy, all_phases, gpu_l)
    if ds.bf16 and not ds.offload_optimizer:
        plan.deepspeed_model_states = deepspeed_estimate(p, largest, ds.zero_stage, lc.num_ranks)
    k = cfg.algo.estimator().num_copies
    rows_per_rank = cfg.data.prompts_per_step * rc.n // lc.num_ranks
    per, _ = micro_layout(rows_per_rank, cfg.algo.mini_batches, lc.micro_batch_size, k)
    fwd_rows = per * k
    canvas, prompt = rc.sampler.max_new_tokens, cfg.data.max_prompt_length
    seq = prompt + canvas
    for name, nbytes in learner_activation_terms(shape, fwd_rows, seq, lb, ds.gradient_checkpointing).items():
        add(name, nbytes, TRAIN if name == "activations" else ("train: layers",), gpu_l)
    add("logits", logits_bytes(fwd_rows, canvas, shape.vocab, lb), ("train: head",), gpu_l)
    bucketed = cfg.weight_sync_transport() == "bucketed"
    # a bucket holds at least the largest tensor (weight_sync.buckets sends a bigger one alone)
    bucket = min(max(cfg.trainer.weight_sync_bucket_mb * 2**20, lb * largest), lb * p)
    if bucketed:  # one gathered bucket + its flat copy on rank 0
        add("gathered weights", 2 * bucket, ("sync",), gpu_l)
    elif ds.zero_stage == 3:  # GatheredParameters over the whole module on every rank
        add("gathered weights", lb * p, ("sync",), gpu_l)
    add("CUDA context", CUDA_CONTEXT, all_phases, gpu_l)
    # rollout worker
    rollout_phases = all_phases if colocate else ("generate", "sync")
    add("rollout model", rb * p, rollout_phases, gpu_r)
    gen_rows = min(rc.micro_batch_size, rows_per_rank * lc.num_ranks // max(1, rc.num_workers))
    for name, nbytes in sampler_terms(shape, gen_rows, prompt, canvas, rc.sampler, rb).items():
        add(name, nbytes, ("generate",), gpu_r)
    if bucketed:  # the worker's receive buffer
        add("received bucket", bucket, ("sync",), gpu_r)
    add("CUDA context", CUDA_CONTEXT, rollout_phases, gpu_r)
    plan.notes.append(
        f"{f'{p / 1e9:.2f}B' if p >= 1e9 else f'{p / 1e6:.2f}M'} parameters; learner micro-batch {fwd_rows} forward rows x {prompt}+{canvas} tokens; "
        f"{gen_rows} rows per generate call"
    )
    return plan


def markdown_table(plan: Plan) -> str:
    """The plan as a Markdown table (terms x phases, GiB), as the 7B README carries it."""
    phases = PHASES
    lines = ["| device | term | GiB | " + " | ".join(phases) + " |", "|---|---|---:|" + "---:|" * len(phases)]
    for t in plan.terms:
        cells = " | ".join(f"{t.bytes / GIB:.2f}" if ph in t.phases else "" for ph in phases)
        lines.append(f"| {t.device} | {t.name} | {t.bytes / GIB:.2f} | {cells} |")
    for d in plan.devices:
        tot = plan.phase_bytes(d)
        lines.append(f"| {d} | **total** | | " + " | ".join(f"**{tot.get(ph, 0) / GIB:.2f}**" for ph in phases) + " |")
    return "\n".join(lines)


def render(plan: Plan, console: Any) -> None:
    """Print the plan: one row per term, its GiB in each phase it is resident in, phase totals, verdict."""
    from rich.table import Table

    phases = PHASES
    table = Table(title=f"memory per GPU ({plan.gpu}, {plan.capacity / GIB:.1f} GiB, placement {plan.placement})")
    for col in ("device", "term", *phases):
        table.add_column(col, justify="left" if col in ("device", "term") else "right")
    for t in plan.terms:
        table.add_row(t.device, t.name, *(f"{t.bytes / GIB:.2f}" if ph in t.phases else "" for ph in phases))
    for d in plan.devices:
        tot = plan.phase_bytes(d)
        table.add_row(d, "[bold]total[/]", *(f"[bold]{tot.get(ph, 0) / GIB:.2f}[/]" for ph in phases))
    console.print(table)
    for note in plan.notes:
        console.print(f"  {note}", highlight=False)
    states = sum(t.bytes for t in plan.terms if t.name in MODEL_STATE_TERMS)
    if plan.deepspeed_model_states is not None:
        console.print(
            f"  model states {states / GIB:.2f} GiB; DeepSpeed's estimator: "
            f"{plan.deepspeed_model_states / GIB:.2f} GiB",
            highlight=False,
        )
    ok = plan.fits
    console.print(("[bold green]" if ok else "[bold red]") + plan.verdict() + "[/]", highlight=False)


def fit_problem(cfg: Any, model_source: str | Path | None = None, capacity: int | None = None,
                gpu_label: str | None = None) -> str | None:
    """``None`` when GRPO config ``cfg`` fits its GPU, else the verdict naming the largest term and its
    knob. The GPU is ``trainer.gpu`` (a :data:`GPUS` kind) unless ``capacity`` (bytes, e.g. probed) is
    given; the model's shape comes from ``model_source`` (default ``model.path``)."""
    gpu = gpu_label or cfg.trainer.gpu
    plan = plan_grpo(cfg, read_shape(model_source or cfg.model.path), gpu, capacity=capacity)
    return None if plan.fits else plan.verdict()


def probe_gpu() -> tuple[str, int]:
    """``(name, total bytes)`` of a GPU of the Ray cluster, read by a one-GPU task (``trainer.gpu=auto``)."""
    import ray

    @ray.remote(num_gpus=1, num_cpus=0)
    def _props() -> tuple[str, int]:
        import torch

        p = torch.cuda.get_device_properties(0)
        return p.name, int(p.total_memory)

    return ray.get(_props.remote(), timeout=300)
