"""Coupled masks, masked copies and the log-prob estimators."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algos import (
    LOGPROB_ESTIMATORS,
    build_masked_copies,
    coupled_masks,
    estimate_logprobs,
    policy_loss,
    token_entropy,
    token_logprobs,
)
from rlvr.diffusion.noise import cart_weights

MASK = 63


def test_token_logprobs_and_entropy_hand_computed():
    logits = torch.zeros(1, 2, 4)
    logits[0, :, 0] = math.log(3.0)
    targets = torch.tensor([[0, 1]])
    assert torch.allclose(token_logprobs(logits, targets), torch.tensor([[math.log(0.5), math.log(1 / 6)]]))
    s = math.sqrt(3.0)  # temperature 2 halves the logits: exp(log 3 / 2) = sqrt 3
    assert torch.allclose(
        token_logprobs(logits, targets, temperature=2.0),
        torch.tensor([[math.log(s / (s + 3)), math.log(1 / (s + 3))]]),
    )
    h = -(0.5 * math.log(0.5) + 3 * (1 / 6) * math.log(1 / 6))
    assert torch.allclose(token_entropy(logits), torch.tensor([[h, h]]))
    with pytest.raises(ValueError, match="do not align"):
        token_logprobs(logits, torch.zeros(1, 3, dtype=torch.long))


def test_coupled_masks_complementary_and_reproducible():
    resp = torch.ones(3, 16, dtype=torch.bool)
    resp[0, 12:] = False  # a row whose last slots are not maskable
    a, b, t = coupled_masks(resp, torch.Generator().manual_seed(5))
    assert not (a & b).any() and torch.equal(a | b, resp)  # every response position exactly once
    g = torch.Generator().manual_seed(5)
    t_ref = torch.rand(3, generator=g)
    u_ref = torch.rand(3, 16, generator=g)
    assert torch.equal(t, t_ref) and torch.equal(a, (u_ref < t_ref[:, None]) & resp)
    a2, b2, t2 = coupled_masks(resp, torch.Generator().manual_seed(5))
    assert torch.equal(a, a2) and torch.equal(b, b2) and torch.equal(t, t2)
    assert not torch.equal(a[1], a[2])  # per-row by default


def test_coupled_masks_shared_across_rows():
    resp = torch.ones(4, 20, dtype=torch.bool)
    a, b, t = coupled_masks(
        resp, torch.Generator().manual_seed(1), shared_across_rows=True, t_min=0.2, t_max=0.8
    )
    assert (a == a[0]).all() and (t == t[0]).all() and 0.2 <= float(t[0]) < 0.8
    g = torch.Generator().manual_seed(1)
    t_ref = 0.2 + 0.6 * torch.rand(1, generator=g)
    u_ref = torch.rand(1, 20, generator=g)
    assert torch.equal(a[0], u_ref[0] < t_ref)


def _batch():
    # 2 rows: left-padded prompt of 3 columns, canvas of 5 (eos = pad = 1)
    ids = torch.tensor([[1, 10, 11, 20, 21, 22, 1, 1], [12, 13, 14, 23, 24, 25, 26, 27]])
    attn = torch.tensor([[0, 1, 1, 1, 1, 1, 1, 1], [1] * 8])
    loss_mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    return ids, attn, loss_mask


def test_build_coupled_copies():
    ids, attn, loss_mask = _batch()
    c = build_masked_copies(
        "coupled", ids, loss_mask, MASK, torch.Generator().manual_seed(0), attention_mask=attn
    )
    assert c.num_copies == 2 and len(c) == 4 and c.batch_size == 2
    scored = c.scored.view(2, 2, 5)
    assert not (scored[0] & scored[1]).any() and scored.sum(0).eq(1).all()  # whole canvas once, pads too
    noisy = c.input_ids.view(2, 2, 8)
    for k in range(2):
        assert torch.equal(noisy[k, :, :3], ids[:, :3])  # prompt never masked
        assert torch.equal(noisy[k, :, 3:] == MASK, scored[k])
        assert torch.equal(noisy[k, :, 3:][~scored[k]], ids[:, 3:][~scored[k]])
    assert torch.equal(c.targets, ids[:, 3:].repeat(2, 1)) and torch.equal(
        c.attention_mask, attn.repeat(2, 1)
    )
    # t for the pair is (t, 1 - t); CART weights are computed within the canvas and cut to the loss mask
    t = c.t.view(2, 2)
    assert torch.allclose(t[1], 1 - t[0])
    w = c.weights.view(2, 2, 5)
    for k in range(2):
        assert torch.allclose(w[k], cart_weights(scored[k], 0.1) * loss_mask)
    # same generator state -> identical copies (what old and new log-probs rely on)
    c2 = build_masked_copies(
        "coupled", ids, loss_mask, MASK, torch.Generator().manual_seed(0), attention_mask=attn
    )
    assert torch.equal(c.input_ids, c2.input_ids) and torch.equal(c.weights, c2.weights)


def test_inverse_t_weights_and_combine_picks_the_scoring_copy():
    ids, _, loss_mask = _batch()
    c = build_masked_copies(
        "coupled", ids, loss_mask, MASK, torch.Generator().manual_seed(3), weighting="inverse_t"
    )
    scored = c.scored.view(2, 2, 5)
    t = c.t.view(2, 2)
    expected_w = (scored[0] / t[0][:, None] + scored[1] / t[1][:, None]) * loss_mask
    copy_logp = torch.cat([torch.full((2, 5), -1.0), torch.full((2, 5), -2.0)])
    logp, w = LOGPROB_ESTIMATORS.get("coupled").combine(c, copy_logp)
    assert torch.allclose(w, expected_w)
    assert torch.equal(logp, torch.where(scored[0], -1.0, -2.0) * loss_mask)


def test_diffucoder_estimator_combination():
    ids, _, loss_mask = _batch()
    c = build_masked_copies("diffucoder", ids, loss_mask, MASK, torch.Generator().manual_seed(0))
    assert c.num_copies == 3
    scored = c.scored.view(3, 2, 5)
    assert (
        scored[0].all()
        and torch.equal(scored[1] | scored[2], scored[0])
        and not (scored[1] & scored[2]).any()
    )
    t = c.t.view(3, 2)
    assert (t[0] == 1).all() and ((t[1] >= 0.2) & (t[1] < 0.8)).all() and torch.allclose(t[2], 1 - t[1])
    copy_logp = torch.cat([torch.full((2, 5), -1.0), torch.full((2, 5), -2.0), torch.full((2, 5), -3.0)])
    logp, w = LOGPROB_ESTIMATORS.get("diffucoder").combine(c, copy_logp)
    pair = torch.where(scored[1], -2.0 / t[1][:, None], -3.0 / (1 - t[1][:, None]))
    assert torch.allclose(logp, 0.5 * (-1.0 + pair) * loss_mask)
    assert torch.equal(w, loss_mask.float())
    full = build_masked_copies("full_mask", ids, loss_mask, MASK, None)
    assert full.num_copies == 1 and torch.equal(full.weights, loss_mask.float())
    assert (full.input_ids[:, 3:] == MASK).all()


def test_bad_masks_are_named():
    ids, _, loss_mask = _batch()
    canvas = torch.ones_like(loss_mask)
    canvas[0, 0] = False
    with pytest.raises(ValueError, match="outside canvas_mask"):
        build_masked_copies("coupled", ids, loss_mask, MASK, None, canvas_mask=canvas)
    with pytest.raises(ValueError, match="unknown log-prob estimator 'tracerl'"):
        build_masked_copies("tracerl", ids, loss_mask, MASK, None)


def test_old_and_new_logprobs_with_a_tiny_model(tiny_dlm):
    """Copies built once: the old pass and the new pass see identical inputs (ratio exactly 1 before
    an update), each token's log-prob comes from the copy that masked it, and the coupled loss computed
    copy row by copy row equals the loss on the combined tokens."""
    ids, attn, loss_mask = _batch()
    ids = ids.clamp(max=60)
    c = build_masked_copies(
        "coupled",
        ids,
        loss_mask,
        tiny_dlm.mask_token_id,
        torch.Generator().manual_seed(0),
        attention_mask=attn,
    )
    with torch.no_grad():
        old, w_old, old_copy = estimate_logprobs(tiny_dlm, c, temperature=1.0)
    new, w, new_copy = estimate_logprobs(tiny_dlm, c, temperature=1.0, micro_batch_size=1)
    assert torch.allclose(new, old, atol=1e-5) and torch.equal(w, w_old)
    direct = token_logprobs(tiny_dlm(c.input_ids[2:3], c.attention_mask[2:3])[:, -5:], c.targets[2:3])[0]
    row0_b = c.scored.view(2, 2, 5)[1, 0] & loss_mask[0]
    assert torch.allclose(new[0][row0_b], direct[row0_b], atol=1e-5)
    adv = torch.tensor([1.0, -0.5])
    loss, m = policy_loss(new, old, adv, w)
    assert m["ratio_max"] == pytest.approx(1.0, abs=1e-5) and m["clip_frac"] == 0.0
    per_copy, _ = policy_loss(new_copy, old_copy, adv.repeat(2), c.weights)
    assert per_copy.item() == pytest.approx(loss.item(), abs=1e-6)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_dlm.parameters())


def test_combine_ignores_minus_infinity_where_a_copy_does_not_score():
    ids, _, loss_mask = _batch()
    c = build_masked_copies("coupled", ids, loss_mask, MASK, torch.Generator().manual_seed(3))
    scored = c.scored.view(2, 2, 5)
    # each copy holds -inf wherever it does not score (and the whole row outside the loss)
    copy_logp = torch.where(c.scored, torch.tensor(-1.5), torch.tensor(-math.inf))
    logp, _ = LOGPROB_ESTIMATORS.get("coupled").combine(c, copy_logp)
    assert torch.equal(logp, torch.where(loss_mask.bool() & (scored[0] | scored[1]), -1.5, 0.0))


def test_chunked_log_softmax_equals_the_one_shot_formula_with_its_gradients():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(11, (3, 5))
    whole = token_logprobs(logits, targets, temperature=0.7, chunk=10**6)
    (g_whole,) = torch.autograd.grad(whole.sum(), logits)
    parts = token_logprobs(logits, targets, temperature=0.7, chunk=4)  # 15 positions in 4 checkpointed chunks
    (g_parts,) = torch.autograd.grad(parts.sum(), logits)
    assert torch.allclose(parts, whole, atol=1e-12) and torch.allclose(g_parts, g_whole, atol=1e-12)
    with torch.no_grad():
        assert torch.allclose(token_logprobs(logits, targets, 0.7, chunk=4), whole, atol=1e-12)
    # a non-contiguous view (what tail_logits returns) and 2-D input work the same, without copies
    base = torch.randn(2, 7, 11, dtype=torch.float64, requires_grad=True)
    view, tg = base[:, :-1], torch.randint(11, (2, 6))
    (gv,) = torch.autograd.grad(token_logprobs(view, tg, chunk=5).sum(), base)
    (gw,) = torch.autograd.grad(token_logprobs(view, tg, chunk=10**6).sum(), base)
    assert torch.allclose(gv, gw, atol=1e-12) and gv[:, -1].abs().sum() == 0
    assert torch.allclose(token_logprobs(view[0], tg[0], chunk=2), token_logprobs(view[0], tg[0]), atol=1e-12)


def test_only_the_canvas_logits_are_computed_and_they_match_the_full_forward(tiny_dlm):
    from rlvr.diffusion.model import tail_logits
    from rlvr.learner.ar_policy import ARPolicy

    ids = torch.tensor([[1, 1, 5, 6, 7, 8, 9], [3, 4, 5, 6, 7, 8, 9]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1] * 7])
    seen = []

    def spy(x, am, **kw):
        seen.append(kw.get("tail"))
        return tiny_dlm(x, am, **kw)

    with torch.no_grad():
        part = tail_logits(spy, ids, mask, 4)
        full = tiny_dlm(ids, mask)[:, -4:]
        assert seen == [4] and part.shape == full.shape and torch.allclose(part, full, atol=1e-5)
        from tests.conftest import make_tiny_qwen

        ar = ARPolicy(make_tiny_qwen())
        assert torch.allclose(tail_logits(ar.forward, ids, mask, 3), ar(ids, mask)[:, -3:], atol=1e-5)
        assert torch.equal(tail_logits(tiny_dlm, ids, mask, 7), tiny_dlm(ids, mask))  # k = N: the plain forward


def test_trace_slices_cut_each_rows_decode_steps_into_consecutive_parts():
    from rlvr.algos.logprobs import trace_slices

    steps = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [0, 0, 1, -1], [0, 1, 2, 5]])
    assert trace_slices(steps, 2).tolist() == [[0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]]
    assert trace_slices(steps, 4).tolist() == [[0, 1, 2, 3], [3, 2, 1, 0], [0, 0, 2, 3], [0, 0, 1, 3]]
    assert trace_slices(steps, 1).tolist() == [[0] * 4] * 4


def test_trace_copies_show_earlier_slices_and_score_each_token_once():
    # 1 row: prompt [5, 6], canvas [10, 11, 12, 13] decoded at steps 2, 0, 3, 1 -> slices (s=2) 1, 0, 1, 0
    ids = torch.tensor([[5, 6, 10, 11, 12, 13]])
    loss = torch.tensor([[True, True, True, False]])  # the last token is out of the loss (e.g. EOS)
    c = build_masked_copies("trace", ids, loss, 99, None, decode_step=torch.tensor([[2, 0, 3, 1]]))
    assert c.num_copies == 2 and c.estimator == "trace"
    # copy 0: the whole canvas masked, scores slice 0 (positions 1 and 3); copy 1: slice 0 visible
    assert c.input_ids.tolist() == [[5, 6, 99, 99, 99, 99], [5, 6, 99, 11, 99, 13]]
    assert c.scored.tolist() == [[False, True, False, True], [True, False, True, False]]
    assert c.weights.tolist() == [[0, 1, 0, 0], [1, 0, 1, 0]]  # weight 1 where scored and in the loss
    assert torch.allclose(c.t, torch.tensor([1.0, 0.5]))
    copy_logp = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-5.0, -6.0, -7.0, -8.0]])
    logp, w = LOGPROB_ESTIMATORS.get("trace").combine(c, copy_logp)
    assert logp.tolist() == [[-5.0, -2.0, -7.0, 0.0]] and w.tolist() == [[1.0, 1.0, 1.0, 0.0]]
    # four slices: one copy per decode step, each token under the canvas of the step that decoded it
    c4 = build_masked_copies("trace", ids, loss, 99, None, decode_step=torch.tensor([[2, 0, 3, 1]]), num_copies=4)
    assert c4.input_ids[:, 2:].tolist() == [[99, 99, 99, 99], [99, 11, 99, 99], [99, 11, 99, 13], [10, 11, 99, 13]]
    with pytest.raises(ValueError, match="needs the rollout's decode steps"):
        build_masked_copies("trace", ids, loss, 99, None)
    with pytest.raises(ValueError, match="always uses 2 copies"):
        build_masked_copies("coupled", ids, loss, 99, None, num_copies=3)


def test_trace_logprob_is_the_models_under_the_decoding_canvas(tiny_dlm):
    ids = torch.tensor([[5, 6, 10, 11, 12, 13]])
    loss = torch.ones(1, 4, dtype=torch.bool)
    c = build_masked_copies("trace", ids, loss, tiny_dlm.mask_token_id, None, decode_step=torch.tensor([[2, 0, 3, 1]]))
    with torch.no_grad():
        logp, w, _ = estimate_logprobs(tiny_dlm, c)
        m = tiny_dlm.mask_token_id
        first = torch.log_softmax(tiny_dlm(torch.tensor([[5, 6, m, m, m, m]])), -1)[0, 2:]  # step-0 canvas
        later = torch.log_softmax(tiny_dlm(torch.tensor([[5, 6, m, 11, m, 13]])), -1)[0, 2:]  # after slice 0
    want = [later[0, 10], first[1, 11], later[2, 12], first[3, 13]]
    assert torch.allclose(logp[0], torch.stack(want), atol=1e-5) and w.tolist() == [[1.0] * 4]
