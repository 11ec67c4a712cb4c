"""Weight sync, learner -> rollout workers: the object store vs bucketed streaming over gloo pair groups,
side by side on the same actors (CPU).

    python benchmarks/weight_sync_bench.py [--hidden 512 --layers 8 --vocab 65536] [--syncs 3]

A ~100M-parameter Qwen2-shaped diffusion LM (fp32), 2 DeepSpeed learner ranks at ZeRO-3 and 2 rollout
workers (real Ray actors started by the GRPO controller's own ``start_actors``). For each transport: seconds
per sync (mean of ``--syncs``), and the peak RSS above the pre-sync RSS of learner rank 0, learner rank 1 and
a rollout worker during one sync (VmHWM reset through /proc before it). Every worker's weights are checked
equal to the learner's after the syncs. Results: benchmarks/results/weight_sync.json.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)


def _kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _build_model(folder: Path, hidden: int, layers: int, vocab: int) -> int:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.diffusion import DiffusionLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024,
                      tie_word_embeddings=False, eos_token_id=0, pad_token_id=0)
    hf = Qwen2ForCausalLM(cfg)
    DiffusionLM.from_pretrained(hf, mask_token_id=vocab - 1).save_pretrained(folder)
    return sum(p.numel() for p in hf.parameters())


@app.command()
def main(
    hidden: int = 512,
    layers: int = 8,
    vocab: int = 65_536,
    syncs: int = 3,
    bucket_mb: int = 64,
    out: Annotated[Path, typer.Option(help="JSON results")] = Path("benchmarks/results/weight_sync.json"),
) -> None:
    import ray
    import torch

    from rlvr.config import load_config
    from rlvr.grpo.actors import start_actors
    from rlvr.grpo.config import GRPOConfig
    from rlvr.grpo.weight_sync import BucketedTransport, ObjectStoreTransport, WeightSync

    tmp = Path(tempfile.mkdtemp(prefix="rlvr-sync-"))
    params = _build_model(tmp / "model", hidden, layers, vocab)
    print(f"model: {params / 1e6:.1f}M parameters ({params * 4 / 2**20:.0f} MB fp32)", flush=True)
    cfg = load_config(GRPOConfig, None, [
        f"model.path={tmp / 'model'}", "learner.num_ranks=2", "rollout.num_workers=2", "learner.deepspeed.zero_stage=3",
        "data.prompts_per_step=2", "rollout.n=2", "learner.micro_batch_size=2", "trainer.placement=separate",
    ])
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=4, include_dashboard=False,
             object_store_memory=2 * 2**30)
    actors = start_actors(cfg)
    learner_pids = [ray.get(lr.ping.remote())["pid"] for lr in actors.learners]
    worker_pids = actors.worker_pids
    pids = {"learner rank 0": learner_pids[0], "learner rank 1": learner_pids[1], "rollout worker 0": worker_pids[0]}
    results = []
    version = 0
    for name, transport in [("object_store", ObjectStoreTransport()), ("bucketed", BucketedTransport(bucket_mb))]:
        sync = WeightSync(actors.learners, actors.workers, transport)
        version += 1
        sync.push(version)  # warm-up: opens the pair groups / first object; not timed, not measured
        before = {k: _kb(pid, "VmRSS") for k, pid in pids.items()}
        for pid in pids.values():
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        times = []
        for _ in range(syncs):
            version += 1
            t0 = time.perf_counter()
            sync.push(version)
            times.append(time.perf_counter() - t0)
        peak = {k: (_kb(pid, "VmHWM") - before[k]) / 1024 for k, pid in pids.items()}
        row = {"transport": name, "seconds_per_sync": statistics.mean(times), "seconds_all": times,
               "peak_over_start_mb": peak}
        if name == "bucketed":
            row["bucket_mb"] = bucket_mb
        results.append(row)
        print(f"{name:13s} {row['seconds_per_sync']:.3f} s/sync  peak over start (MB): "
              + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()), flush=True)
    # the workers hold exactly the learner's weights
    full = ray.get([lr.gather_weights.remote() for lr in actors.learners])[0]
    for w in actors.workers:
        ok = ray.get(w.__ray_call__.remote(
            lambda self, ref: all(torch.equal(v, ref[k]) for k, v in self.model.model.state_dict().items()), full))
        assert ok, "a worker's weights differ from the learner's"
    ray.util.remove_placement_group(actors.placement_group)
    ray.shutdown()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"params": params, "dtype": "float32", "learner_ranks": 2, "zero_stage": 3,
                               "workers": 2, "syncs": syncs, "results": results}, indent=2) + "\n")
    print(f"workers hold the learner's weights exactly -> {out}")


if __name__ == "__main__":
    app()
