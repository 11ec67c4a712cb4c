"""Objectives: q_sample, time weights, CART, weighted diffusion loss (hand-computed tensors)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.diffusion.noise import (
    cart_weights,
    diffusion_loss,
    q_sample,
    time_weights,
    trailing_run,
    weights_for,
)

MASK = 63


def _naive_cart(masked, p, context=None):
    b, n = masked.shape
    out = torch.zeros(b, n, dtype=torch.float64)
    for r in range(b):
        for i in range(n):
            if not masked[r, i]:
                continue
            for j in range(n):
                if j == i or masked[r, j] or (context is not None and not context[r, j]):
                    continue
                out[r, i] += 0.5 * p * (1 - p) ** (abs(i - j) - 1)
    return out


# ----------------------------------------------------------------------------- q_sample
def test_q_sample_reproduces_documented_draw_order():
    ids = torch.arange(2 * 12).view(2, 12) % 50 + 2
    maskable = torch.zeros(2, 12, dtype=torch.bool)
    maskable[:, 4:] = True
    noisy, masked, t = q_sample(
        ids, MASK, maskable, t_min=0.2, t_max=0.8, generator=torch.Generator().manual_seed(7)
    )
    g = torch.Generator().manual_seed(7)
    t_ref = 0.2 + 0.6 * torch.rand(2, generator=g)
    u_ref = torch.rand(2, 12, generator=g)
    assert torch.equal(t, t_ref)
    assert torch.equal(masked, (u_ref < t_ref[:, None]) & maskable)
    assert torch.equal(noisy, torch.where(masked, torch.full_like(ids, MASK), ids))
    assert not masked[:, :4].any()  # the prompt is never masked
    # same seed, same result
    noisy2, masked2, t2 = q_sample(
        ids, MASK, maskable, t_min=0.2, t_max=0.8, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(noisy, noisy2) and torch.equal(masked2, masked) and torch.equal(t2, t)


def test_q_sample_mask_fraction_statistics():
    ids = torch.full((4, 4000), 5)
    g = torch.Generator().manual_seed(0)
    _, masked, t = q_sample(ids, MASK, None, t=torch.tensor([0.1, 0.5, 0.9, 0.0]), generator=g)
    frac = masked.float().mean(-1)
    assert torch.allclose(frac[:3], torch.tensor([0.1, 0.5, 0.9]), atol=0.025)
    assert frac[3] == 0.0  # t = 0 masks nothing
    _, masked_all, _ = q_sample(ids, MASK, None, t=1.0, generator=g)
    assert masked_all.all()  # u in [0, 1) < 1
    # drawn t: per-sequence, inside [t_min, t_max], and roughly uniform over many rows
    _, _, t_many = q_sample(torch.full((2000, 2), 5), MASK, None, t_min=0.3, t_max=0.6, generator=g)
    assert t_many.min() >= 0.3 and t_many.max() < 0.6
    assert abs(float(t_many.mean()) - 0.45) < 0.01


def test_q_sample_explicit_t_mask_overrides_and_respects_maskable():
    ids = torch.tensor([[7, 8, 9, 10, 11, 12]])
    maskable = torch.tensor([[False, False, True, True, True, True]])
    t_mask = torch.tensor([[True, False, True, False, True, False]])
    noisy, masked, t = q_sample(ids, MASK, maskable, t_mask=t_mask)
    assert masked.tolist() == [[False, False, True, False, True, False]]
    assert noisy.tolist() == [[7, 8, MASK, 10, MASK, 12]]
    assert t.tolist() == [0.5]  # realised ratio over the 4 maskable positions
    _, _, t_given = q_sample(ids, MASK, maskable, t=0.25, t_mask=t_mask)
    assert t_given.tolist() == [0.25]


def test_trailing_eos_as_one_unit():
    eos = 1
    ids = torch.tensor([[4, 5, 1, 6, 1, 1, 1], [4, 5, 6, 7, 8, 9, 3]])
    assert trailing_run(ids, eos).tolist() == [
        [False, False, False, False, True, True, True],
        [False] * 7,
    ]
    maskable = torch.ones_like(ids, dtype=torch.bool)
    # first trailing EOS (col 4) masked -> the whole run is masked; the inner EOS at col 2 is untouched
    t_mask = torch.tensor([[False, False, False, True, True, False, False], [False] * 6 + [True]])
    _, masked, _ = q_sample(ids, MASK, maskable, t_mask=t_mask, eos_token_id=eos)
    assert masked.tolist() == [
        [False, False, False, True, True, True, True],
        [False] * 6 + [True],
    ]
    # first trailing EOS visible -> none of the run is masked (even where t_mask said so)
    t_mask = torch.tensor([[False, False, True, False, False, True, True], [True] + [False] * 6])
    _, masked, _ = q_sample(ids, MASK, maskable, t_mask=t_mask, eos_token_id=eos)
    assert masked.tolist() == [
        [False, False, True, False, False, False, False],
        [True] + [False] * 6,
    ]
    # default (eos_token_id=None) leaves the t_mask as is
    _, masked, _ = q_sample(ids, MASK, maskable, t_mask=t_mask)
    assert torch.equal(masked, t_mask)


def test_q_sample_bad_input_is_named():
    ids = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="maskable shape"):
        q_sample(ids, MASK, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="t must be"):
        q_sample(ids, MASK, None, t=torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="t_min"):
        q_sample(ids, MASK, None, t_min=0.5, t_max=0.2)


# ----------------------------------------------------------------------------- weights
def test_time_weights_values_and_registry_error():
    t = torch.tensor([0.25, 0.5, 0.0])
    assert time_weights(t, "inverse_t").tolist() == [4.0, 2.0, 1e6]  # clamped, never inf
    assert time_weights(t, "linear").tolist() == [0.75, 0.5, 1.0]
    assert time_weights(t, "none").tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="unknown time weighting 'cosine'.*inverse_t"):
        time_weights(t, "cosine")


def test_cart_hand_computed():
    masked = torch.tensor([[False, True, False, True]])
    # p = 0.5: i=1 <- j=0 (d=1: .25), j=2 (d=1: .25); i=3 <- j=2 (.25), j=0 (d=3: .5*.5*.25=.0625)
    assert cart_weights(masked, p=0.5).tolist() == [[0.0, 0.5, 0.0, 0.3125]]
    # response-only context (cols 2, 3): prompt col 0 gives nothing
    context = torch.tensor([[False, False, True, True]])
    assert cart_weights(masked, p=0.5, context=context).tolist() == [[0.0, 0.25, 0.0, 0.25]]
    # nothing clean -> zero weight; nothing masked -> zero everywhere
    assert cart_weights(torch.ones(1, 3, dtype=torch.bool), p=0.5).tolist() == [[0.0, 0.0, 0.0]]
    assert cart_weights(torch.zeros(1, 3, dtype=torch.bool), p=0.5).tolist() == [[0.0, 0.0, 0.0]]


@pytest.mark.parametrize("p", [0.1, 0.3, 1.0])
def test_cart_matches_naive_double_loop(p):
    g = torch.Generator().manual_seed(3)
    masked = torch.rand(3, 37, generator=g) < 0.6
    context = torch.rand(3, 37, generator=g) < 0.7
    for ctx in (None, context):
        fast = cart_weights(masked, p=p, context=ctx)
        assert fast.dtype == torch.float32
        assert torch.allclose(fast.double(), _naive_cart(masked, p, ctx), rtol=1e-5, atol=1e-7)
        assert (fast[~masked] == 0).all()


@pytest.mark.parametrize("n", [1, 2, 300, 513])
def test_cart_matches_reference_matrix_at_other_lengths(n):
    """The reference builds W[i, j] = 0.5 p (1-p)^(|i-j|-1), zero diagonal, and takes clean @ W."""
    g = torch.Generator().manual_seed(n)
    masked = torch.rand(2, n, generator=g) < 0.7
    d = torch.arange(n, dtype=torch.float64)
    dist = (d[:, None] - d[None, :]).abs()
    w_ref = 0.5 * 0.1 * 0.9 ** (dist - 1)
    w_ref.fill_diagonal_(0.0)
    expected = ((~masked).double() @ w_ref) * masked
    assert torch.allclose(cart_weights(masked, 0.1).double(), expected, rtol=1e-5, atol=1e-9)


def test_weights_for_by_name():
    masked = torch.tensor([[True, False, True], [False, True, True]])
    t = torch.tensor([0.5, 0.25])
    assert weights_for("inverse_t", t, masked).tolist() == [[2.0, 0.0, 2.0], [0.0, 4.0, 4.0]]
    assert weights_for("linear", t, masked).tolist() == [[0.5, 0.0, 0.5], [0.0, 0.75, 0.75]]
    assert weights_for("none", t, masked).tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    assert torch.equal(weights_for("cart", t, masked, cart_p=0.2), cart_weights(masked, 0.2))
    with pytest.raises(ValueError, match="unknown loss weighting 'focal'"):
        weights_for("focal", t, masked)


# ----------------------------------------------------------------------------- loss
def _logits_for(targets, good):
    """V=4 logits: where ``good``, p(target) = 1/2 (CE = log 2); elsewhere p(target) = 1/6 (CE = log 6)."""
    b, n = targets.shape
    logits = torch.zeros(b, n, 4)
    for r in range(b):
        for i in range(n):
            # log 3 on the target -> 3/(3+3) = 1/2; on another token -> 1/(3+1+1+1) = 1/6
            tok = targets[r, i] if good[r][i] else (targets[r, i] + 1) % 4
            logits[r, i, tok] = math.log(3.0)
    return logits


def test_diffusion_loss_normalisations_hand_computed():
    targets = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    good = [[True, False, True, True], [False, True, True, True]]
    logits = _logits_for(targets, good).requires_grad_(True)
    masked = torch.tensor([[True, True, False, False], [True, False, False, True]])
    weights = torch.tensor([[2.0, 1.0, 9.0, 9.0], [0.5, 9.0, 9.0, 1.5]])  # 9s sit at unmasked positions
    l2, l6 = math.log(2.0), math.log(6.0)
    num = 2 * l2 + 1 * l6 + 0.5 * l6 + 1.5 * l2  # scored: (0,0) (0,1) (1,0) (1,3)
    loss, m = diffusion_loss(logits, targets, masked, weights, normalize="masked_tokens")
    assert loss.item() == pytest.approx(num / 4, rel=1e-6)
    assert m["num_scored"] == 4 and m["weight_sum"] == 5.0 and m["mask_ratio"] == 0.5
    assert m["ce"] == pytest.approx((2 * l2 + 2 * l6) / 4, rel=1e-6)
    loss, _ = diffusion_loss(logits, targets, masked, weights, normalize="weights")
    assert loss.item() == pytest.approx(num / 5.0, rel=1e-6)
    loss, _ = diffusion_loss(logits, targets, masked, weights, normalize="batch_tokens")
    assert loss.item() == pytest.approx(num / 8, rel=1e-6)
    # loss_mask removes (1, 3) and sets the batch_tokens denominator to 6
    loss_mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    loss, m = diffusion_loss(logits, targets, masked, weights, loss_mask=loss_mask, normalize="batch_tokens")
    assert loss.item() == pytest.approx((2 * l2 + l6 + 0.5 * l6) / 6, rel=1e-6)
    assert m["num_scored"] == 3
    # per-row weights [B] broadcast over the row
    loss, _ = diffusion_loss(logits, targets, masked, torch.tensor([1.0, 3.0]), normalize="masked_tokens")
    assert loss.item() == pytest.approx((l2 + l6 + 3 * l6 + 3 * l2) / 4, rel=1e-6)
    loss.backward()
    assert logits.grad[0, 2].abs().sum() == 0 and logits.grad[0, 0].abs().sum() > 0


def test_diffusion_loss_no_masked_positions_is_differentiable_zero():
    logits = torch.randn(1, 3, 4, requires_grad=True)
    loss, m = diffusion_loss(
        logits, torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.bool), torch.ones(1, 3)
    )
    assert loss.item() == 0.0 and m["num_scored"] == 0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_diffusion_loss_bad_normalize_named():
    with pytest.raises(ValueError, match="unknown normalize='mean'"):
        diffusion_loss(
            torch.zeros(1, 2, 3),
            torch.zeros(1, 2, dtype=torch.long),
            torch.ones(1, 2, dtype=torch.bool),
            torch.ones(1, 2),
            normalize="mean",
        )


def test_end_to_end_with_tiny_model(tiny_dlm):
    """q_sample -> DiffusionLM.forward (aligned logits) -> CART-weighted loss -> gradients."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 60, (2, 10), generator=g)
    maskable = torch.zeros(2, 10, dtype=torch.bool)
    maskable[:, 3:] = True
    noisy, masked, t = q_sample(ids, tiny_dlm.mask_token_id, maskable, generator=g, t=0.6)
    assert masked.any()
    logits = tiny_dlm(noisy)
    w = weights_for("cart", t, masked, cart_p=0.1)
    loss, m = diffusion_loss(logits, ids, masked, w, normalize="masked_tokens")
    loss.backward()
    assert math.isfinite(m["loss"]) and m["loss"] > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_dlm.parameters())
