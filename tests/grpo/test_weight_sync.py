"""Weight sync (learner -> rollout workers, versioned) without Ray: the worker-side checks and load,
and the controller side over a recording transport."""

from __future__ import annotations

import pytest
import torch

from rlvr.grpo.weight_sync import (
    WeightSync,
    buckets,
    check_weight_names,
    device_id,
    gather_full_weights,
    load_full_weights,
    pair_backend,
    weight_manifest,
)
from tests.conftest import make_tiny_qwen


def test_worker_loads_a_full_state_dict_and_refuses_a_mismatch():
    src, dst = make_tiny_qwen(seed=1), make_tiny_qwen(seed=2)
    weights = gather_full_weights(src, zero_stage=1, rank=0)
    assert gather_full_weights(src, zero_stage=1, rank=1) is None  # only rank 0 ships the weights
    load_full_weights(dst, weights)
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values(), strict=True))
    bad = dict(weights)
    bad.pop("model.norm.weight")
    bad["model.extra.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match=r"missing=\['model.norm.weight'\] unexpected=\['model.extra.weight'\]"):
        load_full_weights(dst, bad)
    check_weight_names(["a", "lm_head.weight"], ["a"])  # a tied head may be absent


class Recording:
    def __init__(self) -> None:
        self.calls = []

    def push(self, learners, workers, version):
        self.calls.append(("push", list(workers), version))

    def restore(self, learners, workers, index, version):
        self.calls.append(("restore", workers[index], version))


def test_weight_sync_versions_and_restores_a_restarted_worker():
    t = Recording()
    sync = WeightSync(["rank0", "rank1"], ["w0", "w1"], transport=t)
    sync.restore(1)  # version 0: a restarted worker already has the starting checkpoint
    assert t.calls == []
    sync.push(1)
    sync.push(2)
    sync.restore(1)
    assert t.calls == [("push", ["w0", "w1"], 1), ("push", ["w0", "w1"], 2), ("restore", "w1", 2)]
    assert sync.version == 2 and sync.last_seconds >= 0


def test_buckets_group_consecutive_tensors_up_to_the_size():
    f32 = lambda *shape: ("t", shape, "float32")  # noqa: E731
    manifest = [f32(10), f32(10), f32(30), f32(5), f32(100), f32(1)]  # 40, 40, 120, 20, 400, 4 bytes
    assert buckets(manifest, 100) == [[0, 1], [2], [3], [4], [5]]
    assert buckets(manifest, 200) == [[0, 1, 2], [3], [4], [5]]
    assert buckets(manifest, 10**6) == [[0, 1, 2, 3, 4, 5]]
    assert buckets([("x", (4,), "bfloat16"), ("y", (46,), "bfloat16")], 100) == [[0, 1]]


def _receiver(port: int, seed: int, bucket_bytes: int, out: str) -> None:
    from rlvr.grpo.weight_sync import open_pair_group, receive_full_weights

    model = make_tiny_qwen(seed=seed)
    group = open_pair_group("127.0.0.1", port, 1, "test/w0/g0", "gloo", timeout_s=60)
    manifest = weight_manifest(make_tiny_qwen(seed=0))
    receive_full_weights(model, group, manifest, bucket_bytes)
    torch.save(model.state_dict(), out)


@pytest.mark.parametrize("bucket_bytes", [1, 4096, 10**8])  # one tensor per bucket, a few, everything at once
def test_streamed_weights_arrive_exactly_over_a_gloo_pair_group(tmp_path, bucket_bytes):
    import multiprocessing as mp

    from rlvr.engine.engine import free_port
    from rlvr.grpo.weight_sync import open_pair_group, stream_full_weights

    src = make_tiny_qwen(seed=0)
    port, out = free_port(), tmp_path / "received.pt"
    proc = mp.get_context("spawn").Process(target=_receiver, args=(port, 3, bucket_bytes, str(out)))
    proc.start()
    group = open_pair_group("127.0.0.1", port, 0, "test/w0/g0", "gloo", timeout_s=60)
    stats = stream_full_weights(src, zero_stage=1, rank=0, groups=[group], bucket_bytes=bucket_bytes)
    proc.join(60)
    assert proc.exitcode == 0
    got = torch.load(out)
    want = src.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert stats["bytes"] == sum(p.numel() * p.element_size() for p in src.parameters())
    assert stats["buckets"] == len(buckets(weight_manifest(src), bucket_bytes))


def test_pair_backend_is_nccl_only_between_two_different_gpus():
    assert pair_backend("GPU-a", "GPU-b") == "nccl"
    assert pair_backend("GPU-a", "GPU-a") == "gloo"  # colocated on one GPU: NCCL refuses duplicate devices
    assert pair_backend(None, "GPU-b") == pair_backend("GPU-a", None) == pair_backend(None, None) == "gloo"
    assert device_id(torch.device("cpu")) is None


def test_a_receiver_refuses_a_manifest_of_another_shape():
    from rlvr.grpo.weight_sync import PairGroup, receive_full_weights

    model = make_tiny_qwen(seed=0)
    manifest = weight_manifest(model)
    name, shape, dtype = manifest[1]
    bad = [*manifest[:1], (name, (shape[0] + 1, *shape[1:]), dtype), *manifest[2:]]
    with pytest.raises(RuntimeError, match=rf"shapes \(name, sent, ours\) \[\('{name}'"):
        receive_full_weights(model, group=PairGroup(None, "gloo"), manifest=bad, bucket_bytes=1)
