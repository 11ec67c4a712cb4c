"""Clipped policy loss with clip-higher, on hand-computed ratios."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algos import kl_penalty, policy_loss, weighted_mean

# (advantage, ratio): +A at 1.25 (inside 1.28), +A at 1.3 (clipped high), -A at 0.75 (clipped low),
# -A at 0.85 (inside), -A at 1.3 (no upper clip for negative advantages)
ADV = torch.tensor([[1.0, 1.0, -1.0, -1.0, -1.0]])
RATIO = torch.tensor([[1.25, 1.3, 0.75, 0.85, 1.3]])


def _logp():
    return RATIO.log().clone().requires_grad_(True)


def test_clip_higher_asymmetry_values_and_gradients():
    logp = _logp()
    loss, m = policy_loss(logp, torch.zeros_like(logp), ADV, torch.ones_like(logp))
    # per token: -1.25, -1.28 (clipped), 0.8 (clipped), 0.85, 1.3 -> mean 0.42 / 5
    assert loss.item() == pytest.approx(0.084, abs=1e-6)
    loss.backward()
    # d/dlogp = -A * ratio / 5 where unclipped, 0 where the clipped branch is active
    assert torch.allclose(logp.grad, torch.tensor([[-0.25, 0.0, 0.0, 0.17, 0.26]]), atol=1e-6)
    assert m["clip_frac_high"] == pytest.approx(0.2) and m["clip_frac_low"] == pytest.approx(0.2)
    assert m["clip_frac"] == pytest.approx(0.4)
    assert m["ratio_min"] == pytest.approx(0.75) and m["ratio_max"] == pytest.approx(1.3)
    assert m["ratio_mean"] == pytest.approx(5.45 / 5)
    assert m["num_tokens"] == 5
    lr = RATIO.log()
    assert m["ppo_kl"] == pytest.approx(float(-lr.mean()), abs=1e-6)
    assert m["approx_kl"] == pytest.approx(float((RATIO - 1 - lr).mean()), abs=1e-6)


def test_dual_clip_caps_negative_advantage_tokens_only():
    # -A at ratio 5 (above c=3: loss capped at 3, no gradient), -A at 2 (below c: unchanged), +A at 5
    # (already clipped high by clip-higher; dual clip never touches positive advantages)
    ratio = torch.tensor([[5.0, 2.0, 5.0]])
    adv = torch.tensor([[-1.0, -1.0, 2.0]])
    logp = ratio.log().clone().requires_grad_(True)
    loss, m = policy_loss(logp, torch.zeros_like(logp), adv, torch.ones_like(logp), dual_clip=3.0)
    # per token: min(5, 3) = 3, 2, -2 * 1.28 = -2.56 -> (3 + 2 - 2.56) / 3
    assert loss.item() == pytest.approx((3.0 + 2.0 - 2.56) / 3, abs=1e-6)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[0.0, 2.0 / 3, 0.0]]), atol=1e-6)
    assert m["clip_frac_dual"] == pytest.approx(1 / 3)
    plain, m0 = policy_loss(ratio.log(), torch.zeros_like(logp), adv, torch.ones_like(logp))
    assert plain.item() == pytest.approx((5.0 + 2.0 - 2.56) / 3, abs=1e-6) and m0["clip_frac_dual"] == 0.0
    with pytest.raises(ValueError, match="dual_clip must be > 1"):
        policy_loss(logp, torch.zeros_like(logp), adv, torch.ones_like(logp), dual_clip=0.5)


def test_symmetric_clip_would_clip_1_25():
    logp = _logp()
    loss, m = policy_loss(
        logp, torch.zeros_like(logp), ADV, torch.ones_like(logp), clip_low=0.2, clip_high=0.2
    )
    assert loss.item() == pytest.approx((-1.2 - 1.2 + 0.8 + 0.85 + 1.3) / 5, abs=1e-6)
    assert m["clip_frac_high"] == pytest.approx(0.4)


def test_negative_side_boundary_at_0_8():
    logp = torch.tensor([[0.79, 0.81]]).log()
    _, m = policy_loss(logp, torch.zeros_like(logp), torch.tensor([-1.0]), torch.ones_like(logp))
    assert m["clip_frac_low"] == 0.5 and m["clip_frac_high"] == 0.0


def test_weighted_token_mean_denominator_and_broadcast_advantages():
    logp = _logp()
    w = torch.tensor([[2.0, 0.0, 1.0, 1.0, 0.0]])
    loss, m = policy_loss(logp, torch.zeros_like(logp), torch.tensor([1.0]), w)  # [B] advantages
    # A = +1 everywhere now: per-token -1.25, (w=0), -0.75 (no lower clip for A>0), -0.85
    assert loss.item() == pytest.approx((2 * -1.25 - 0.75 - 0.85) / 4, abs=1e-6)
    assert m["num_tokens"] == 3 and m["clip_frac_high"] == 0.0 and m["ratio_max"] == pytest.approx(1.25)
    loss, _ = policy_loss(logp, torch.zeros_like(logp), torch.tensor([1.0]), w, denominator=10)
    assert loss.item() == pytest.approx((2 * -1.25 - 0.75 - 0.85) / 10, abs=1e-6)


def test_kl_and_entropy_terms():
    logp = torch.zeros(1, 2)
    ref = torch.tensor([[0.0, math.log(2.0)]])
    k3 = kl_penalty(logp, ref, "k3")  # exp(ref - logp) - (ref - logp) - 1
    assert torch.allclose(k3, torch.tensor([[0.0, 1.0 - math.log(2.0)]]))
    assert torch.allclose(kl_penalty(logp, ref, "k1"), torch.tensor([[0.0, -math.log(2.0)]]))
    ent = torch.tensor([[1.0, 3.0]])
    adv = torch.tensor([1.0])
    base, _ = policy_loss(logp, logp, adv, torch.ones(1, 2))
    loss, m = policy_loss(
        logp, logp, adv, torch.ones(1, 2), kl=k3, kl_coef=0.1, entropy=ent, entropy_coef=0.01
    )
    assert base.item() == -1.0
    assert loss.item() == pytest.approx(-1.0 + 0.1 * (1 - math.log(2.0)) / 2 - 0.01 * 2.0, abs=1e-6)
    assert m["entropy"] == 2.0 and m["kl"] == pytest.approx((1 - math.log(2.0)) / 2, abs=1e-6)


def test_no_live_tokens_and_bad_shapes():
    logp = torch.zeros(1, 3, requires_grad=True)
    loss, m = policy_loss(logp, torch.zeros(1, 3), torch.tensor([1.0]), torch.zeros(1, 3))
    assert loss.item() == 0.0 and m["num_tokens"] == 0 and m["clip_frac"] == 0.0
    loss.backward()
    with pytest.raises(ValueError, match="same shape"):
        policy_loss(torch.zeros(1, 3), torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 3))
    with pytest.raises(ValueError, match="clip_low"):
        policy_loss(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([1.0]), torch.ones(1, 3), clip_low=1.5)


def test_minus_infinity_at_weight_zero_never_poisons_the_loss_or_its_gradient():
    """A position out of the loss (weight 0) may hold -inf log-probs (old and new): it must contribute
    exactly 0 to the loss, the metrics and the gradient (0 * -inf = NaN, -inf - -inf = NaN)."""
    logp = torch.tensor([[math.log(1.25), -math.inf, 0.0]], requires_grad=True)
    old = torch.tensor([[0.0, -math.inf, -math.inf]])
    w = torch.tensor([[1.0, 0.0, 0.0]])
    loss, m = policy_loss(logp, old, torch.tensor([1.0]), w, kl=torch.tensor([[0.1, math.nan, math.inf]]), kl_coef=0.5)
    loss.backward()
    # only token 0 counts: -A * 1.25 + 0.5 * 0.1
    assert loss.item() == pytest.approx(-1.25 + 0.05)
    assert logp.grad[0].tolist() == pytest.approx([-1.25, 0.0, 0.0])
    assert m["num_tokens"] == 1 and m["ratio_max"] == pytest.approx(1.25) and math.isfinite(m["approx_kl"])
    assert weighted_mean(torch.tensor([2.0, -math.inf, math.nan]), torch.tensor([1.0, 0.0, 0.0])).item() == 2.0


def test_behaviour_weights_are_the_proximal_over_behaviour_ratio_and_drop_tokens_over_the_cap():
    from rlvr.algos import behaviour_weights

    prox = torch.tensor([[-1.0, -2.0, -0.5]])
    behav = torch.tensor([[-1.0, -2.5, -3.0]])  # ratios 1, e^0.5 = 1.6487, e^2.5 = 12.18
    w = behaviour_weights(prox, behav, cap=5.0)
    assert torch.allclose(w, torch.tensor([[1.0, math.exp(0.5), 0.0]]))
    assert not w.requires_grad


def test_decoupled_loss_weights_each_token_by_its_behaviour_weight():
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    old = torch.tensor([[-1.0, -1.2]])  # ratios 1 and e^0.2 = 1.2214 (inside the clip range 0.8 / 1.28)
    adv = torch.tensor([1.0])
    bw = torch.tensor([[0.5, 2.0]])
    loss, m = policy_loss(logp, old, adv, torch.ones(1, 2), behaviour_weight=bw)
    # token terms: -A * rho * w = -0.5 and -1.2214 * 2; token mean over 2
    assert loss.item() == pytest.approx((-0.5 - 2 * math.exp(0.2)) / 2, abs=1e-6)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-0.5 / 2, -2 * math.exp(0.2) / 2]]))
    assert (m["behav_weight_mean"], m["behav_weight_max"], m["behav_dropped_frac"]) == (1.25, 2.0, 0.0)


def test_verls_low_var_kl_is_k3():
    logp, ref = torch.tensor([-1.0, -0.5]), torch.tensor([-1.5, -0.5])
    assert torch.equal(kl_penalty(logp, ref, "low_var_kl"), kl_penalty(logp, ref, "k3"))
    assert torch.allclose(kl_penalty(logp, ref, "k3"), torch.tensor([math.exp(-0.5) + 0.5 - 1, 0.0]))
    assert torch.equal(kl_penalty(logp, ref, "k1"), torch.tensor([0.5, 0.0]))
