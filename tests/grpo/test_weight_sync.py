"""Weight sync (learner -> rollout workers, versioned) without Ray: the worker-side checks and load,
and the controller side over a recording transport."""

from __future__ import annotations

import pytest
import torch

from rlvr.grpo.weight_sync import WeightSync, check_weight_names, gather_full_weights, load_full_weights
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
        self.gathers, self.sends = 0, []

    def gather(self, learners):
        self.gathers += 1
        return f"weights#{self.gathers}"

    def send(self, handle, workers, version):
        self.sends.append((handle, list(workers), version))


def test_weight_sync_versions_and_restores_a_restarted_worker():
    t = Recording()
    sync = WeightSync(["rank0", "rank1"], ["w0", "w1"], transport=t)
    sync.restore(1)  # version 0: a restarted worker already has the starting checkpoint
    assert t.sends == []
    sync.push(1)
    sync.push(2)
    sync.restore(1)
    assert t.sends == [
        ("weights#1", ["w0", "w1"], 1),
        ("weights#2", ["w0", "w1"], 2),
        ("weights#2", ["w1"], 2),  # the latest weights, to the restarted worker only, no new gather
    ]
    assert sync.version == 2 and t.gathers == 2 and sync.last_seconds >= 0
