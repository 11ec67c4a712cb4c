"""The autoregressive baseline's learner side: ARPolicy's aligned causal logits and the
``autoregressive`` log-prob estimator (one clean copy, exact per-token log-probs)."""

from __future__ import annotations

import pytest
import torch

from rlvr.algos import LOGPROB_ESTIMATORS, build_masked_copies, estimate_logprobs
from rlvr.batch import pad_left
from rlvr.learner.ar_policy import ARPolicy, causal_attention_mask
from tests.conftest import make_tiny_qwen

PROMPTS = [[5, 9, 12, 7, 3], [22, 4], [40, 41, 42]]
RESPONSES = [[8, 30, 2, 1], [17, 17, 1, 1], [50, 3, 9, 60]]  # 1 = eos = pad


def _batch():
    prompt_ids, prompt_mask = pad_left(PROMPTS, pad_id=1)
    resp = torch.tensor(RESPONSES)
    return torch.cat([prompt_ids, resp], 1), torch.cat([prompt_mask, torch.ones_like(resp)], 1), resp


def _reference_logprobs(model) -> torch.Tensor:
    """Row by row, no padding: plain HF forward, log_softmax at position j-1 gathered at token j."""
    rows = []
    with torch.no_grad():
        for p, r in zip(PROMPTS, RESPONSES):
            ids = torch.tensor([p + r])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            rows.append(torch.stack([logp[len(p) + i - 1, tok] for i, tok in enumerate(r)]))
    return torch.stack(rows)


def test_causal_attention_mask_hand_checked():
    m = causal_attention_mask(torch.tensor([[0, 1, 1]]))[0, 0]
    expected = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 1]], dtype=torch.bool)  # pad row sees itself only
    assert torch.equal(m, expected)


def test_autoregressive_estimator_equals_plain_hf_forward():
    model = make_tiny_qwen(seed=3)
    policy = ARPolicy.from_pretrained(model)
    ids, am, resp = _batch()
    loss_mask = torch.ones_like(resp, dtype=torch.bool)
    loss_mask[1, 3] = False  # a pad after EOS, outside the loss
    copies = build_masked_copies(
        "autoregressive", ids, loss_mask, None, torch.Generator().manual_seed(0), attention_mask=am
    )
    assert copies.num_copies == 1 and torch.equal(copies.input_ids, ids)  # nothing masked
    assert torch.equal(copies.weights, loss_mask.float())  # weight 1 per loss token, whatever weighting
    with torch.no_grad():
        logp, weights, copy_logp = estimate_logprobs(policy.forward, copies, micro_batch_size=2)
    ref = _reference_logprobs(model)
    torch.testing.assert_close(copy_logp, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logp, ref * loss_mask, rtol=1e-5, atol=1e-5)
    assert torch.equal(weights, loss_mask.float())


def test_ar_policy_padding_does_not_change_a_row_and_gradients_stay_finite():
    model = make_tiny_qwen(seed=4)
    policy = ARPolicy.from_pretrained(model)
    ids, am, _ = _batch()
    out = policy(ids, am)
    alone = policy(ids[1:2, -6:], am[1:2, -6:])  # row 1 without its left pads
    # column 0 is never a target (shift_logits keeps it as is), the rest must match
    torch.testing.assert_close(out[1:2, -5:], alone[:, 1:], rtol=1e-5, atol=1e-5)
    out[:, -4:].log_softmax(-1).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_ar_policy_rejects_a_diffusion_checkpoint_and_estimator_is_registered():
    from rlvr.diffusion import DiffusionLM

    dlm = DiffusionLM.from_pretrained(make_tiny_qwen(), mask_token_id=63)
    with pytest.raises(ValueError, match="is_causal"):
        ARPolicy(dlm.model)
    assert "autoregressive" in LOGPROB_ESTIMATORS.names()
    with pytest.raises(ValueError, match="'coupled' masks tokens: it needs a mask_token_id"):
        build_masked_copies("coupled", torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 2), None, None)
