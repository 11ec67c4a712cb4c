"""A deliberately literal, un-optimised transcription of Dream's ``diffusion_generate`` semantics.

Written from the published semantics of Dream's ``generation_utils.py`` (DreamLM/Dream on GitHub; the
reference cannot be downloaded here), as the yardstick for ``rlvr.diffusion.sampler.generate``. It keeps the reference's structure on purpose:
a full forward over the whole sequence at every step, the right-shift written out, masks counted over
the whole row, ``k`` computed in float32 from the BATCH-MEAN mask count, ``torch.topk`` over the full
row, no EOS handling. Only the parts our parity tests need are here (no history, no hooks).
It deliberately shares no code with the sampler under test.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ref_top_p(logits, top_p):
    sorted_logits, sorted_idx = torch.sort(logits, descending=True)
    cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    remove = cumulative > top_p
    remove[..., 1:] = remove[..., :-1].clone()  # keep the first token above the threshold
    remove[..., 0] = False
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, sorted_idx, remove)
    return logits.masked_fill(mask, torch.finfo(logits.dtype).min)


def ref_top_k(logits, top_k):
    top_k = min(top_k, logits.size(-1))
    remove = logits < torch.topk(logits, top_k)[0][..., -1, None]
    return logits.masked_fill(remove, torch.finfo(logits.dtype).min)


def ref_sample_tokens(logits, temperature=0.0, top_p=None, top_k=None, margin=False, neg_entropy=False):
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        logits = ref_top_p(logits, top_p)
    if top_k is not None:
        logits = ref_top_k(logits, top_k)
    probs = torch.softmax(logits, dim=-1)
    if temperature > 0:
        x0 = torch.distributions.Categorical(probs=probs).sample()
        confidence = torch.gather(probs, -1, x0.unsqueeze(-1)).squeeze(-1)
    else:
        confidence, x0 = probs.max(dim=-1)
    if margin:
        sorted_probs, _ = torch.sort(probs, dim=-1, descending=True)
        confidence = sorted_probs[:, 0] - sorted_probs[:, 1]
    if neg_entropy:
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    return confidence, x0


def ref_forward(hf_model, x, attention_mask, tok_idx):
    """The Dream model call: bidirectional attention, boolean 'both real' mask or none, cumsum positions."""
    mask = None if isinstance(attention_mask, str) else {"full_attention": attention_mask}
    return hf_model(input_ids=x, attention_mask=mask, position_ids=tok_idx, use_cache=False).logits


@torch.no_grad()
def reference_diffusion_generate(
    hf_model,
    input_ids,
    attention_mask=None,
    *,
    mask_token_id,
    max_new_tokens,
    steps,
    alg="origin",
    temperature=0.0,
    top_p=None,
    top_k=None,
    alg_temp=None,
    eps=1e-3,
):
    """Returns the ``[B, P + max_new_tokens]`` sequences. ``hf_model``: the bidirectional Qwen2 (not the wrapper)."""
    max_length = input_ids.shape[1] + max_new_tokens
    x = F.pad(input_ids, (0, max_length - input_ids.shape[1]), value=mask_token_id)
    if attention_mask is not None and torch.any(attention_mask == 0.0):
        attention_mask = F.pad(attention_mask, (0, max_length - attention_mask.shape[1]), value=1.0)
        tok_idx = attention_mask.long().cumsum(-1) - 1
        tok_idx.masked_fill_(attention_mask == 0, 1)
        attention_mask = torch.logical_and(
            attention_mask.unsqueeze(1).unsqueeze(-2).bool(),
            attention_mask.unsqueeze(1).unsqueeze(-1).bool(),
        )
    else:
        tok_idx = None
        attention_mask = "full"

    timesteps = torch.linspace(1, eps, steps + 1, device=x.device)
    for i in range(steps):
        mask_index = x == mask_token_id
        logits = ref_forward(hf_model, x, attention_mask, tok_idx)
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        mask_logits = logits[mask_index]
        t = timesteps[i]
        s = timesteps[i + 1]

        if alg == "origin":
            p_transfer = 1 - s / t if i < steps - 1 else 1
            x0 = torch.zeros_like(x[mask_index], dtype=torch.long) + mask_token_id
            transfer = torch.rand(*x0.shape, device=x.device) < p_transfer
            _, x0[transfer] = ref_sample_tokens(mask_logits[transfer], temperature, top_p=top_p, top_k=top_k)
            x[mask_index] = x0.clone()
            continue

        if alg == "maskgit_plus":
            confidence, x0 = ref_sample_tokens(mask_logits, temperature, top_p=top_p, top_k=top_k)
        elif alg == "topk_margin":
            confidence, x0 = ref_sample_tokens(
                mask_logits, temperature, top_p=top_p, top_k=top_k, margin=True
            )
        elif alg == "entropy":
            confidence, x0 = ref_sample_tokens(
                mask_logits, temperature, top_p=top_p, top_k=top_k, neg_entropy=True
            )
        else:
            raise RuntimeError(f"Unknown alg: {alg}")
        num_mask_token = mask_index.sum() / mask_index.shape[0]
        n_transfer = int(num_mask_token * (1 - s / t)) if i < steps - 1 else int(num_mask_token)
        full_confidence = torch.full_like(x, -torch.inf, dtype=logits.dtype)
        full_confidence[mask_index] = confidence
        if n_transfer > 0:
            if alg_temp is None or alg_temp == 0:
                _, transfer_index = torch.topk(full_confidence, n_transfer)
            else:
                full_confidence = F.softmax(full_confidence / alg_temp, dim=-1)
                transfer_index = torch.multinomial(full_confidence, num_samples=n_transfer)
            x_ = torch.zeros_like(x, dtype=torch.long) + mask_token_id
            x_[mask_index] = x0.clone()
            rows = torch.arange(x.size(0), device=x.device).unsqueeze(1).expand_as(transfer_index)
            x[rows, transfer_index] = x_[rows, transfer_index]
    return x
