from __future__ import annotations

import torch

from rlvr.diffusion import DiffusionLM, shift_logits
from rlvr.diffusion.attention import bidirectional_attention_mask, position_ids_from_mask
from tests.conftest import make_tiny_qwen


def test_shift_logits_realigns_by_one():
    logits = torch.arange(2 * 4 * 1, dtype=torch.float).view(2, 4, 1)
    out = shift_logits(logits)
    assert out[:, :, 0].tolist() == [[0, 0, 1, 2], [4, 4, 5, 6]]


def test_position_ids_count_real_tokens_and_pads_get_one():
    m = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert position_ids_from_mask(m).tolist() == [[1, 1, 0, 1, 2], [0, 1, 2, 3, 4]]


def test_attention_mask_is_pairwise_real_plus_pad_diagonal():
    m = torch.tensor([[0, 1, 1]])
    mask = bidirectional_attention_mask(m)[0, 0].int().tolist()
    assert mask == [[1, 0, 0], [0, 1, 1], [0, 1, 1]]


def test_attention_is_bidirectional(tiny_dlm):
    x = torch.randint(2, 60, (1, 12), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[0, -1] = (x[0, -1] + 1) % 60 + 2
    with torch.no_grad():
        a, b = tiny_dlm(x), tiny_dlm(y)
    # a change of the LAST token moves the prediction of an early one: no causal mask
    assert (a[0, 3] - b[0, 3]).abs().max() > 1e-4


def test_logit_i_comes_from_hidden_state_i_minus_1(tiny_dlm):
    x = torch.randint(2, 60, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        raw = tiny_dlm.model(input_ids=x, attention_mask={"full_attention": None}).logits
        aligned = tiny_dlm(x)
    assert torch.equal(aligned[:, 1:], raw[:, :-1])


def test_left_padding_gives_the_same_logits_as_unpadded(tiny_dlm):
    g = torch.Generator().manual_seed(3)
    x = torch.randint(2, 60, (1, 10), generator=g)
    pad = torch.full((1, 4), 1)
    xp = torch.cat([pad, x], 1)
    m = torch.cat([torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 10, dtype=torch.long)], 1)
    with torch.no_grad():
        a = tiny_dlm(x)
        b = tiny_dlm(xp, m)
    assert not torch.isnan(b).any()
    # every real target position (1..) agrees; position 0 of the real tokens is never a target
    torch.testing.assert_close(b[0, 5:], a[0, 1:], atol=1e-5, rtol=1e-5)


def test_save_and_reload_round_trip(tmp_path, tiny_dlm):
    x = torch.randint(2, 60, (2, 7), generator=torch.Generator().manual_seed(4))
    tiny_dlm.save_pretrained(tmp_path / "ckpt")
    again = DiffusionLM.from_pretrained(tmp_path / "ckpt")
    assert again.mask_token_id == 63
    assert again.config.is_causal is False
    with torch.no_grad():
        torch.testing.assert_close(again(x), tiny_dlm(x))


def test_mask_token_is_added_to_tokenizer_and_embeddings(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(60)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="t0")
    model = make_tiny_qwen(vocab_size=60)
    dlm = DiffusionLM.from_pretrained(model, tokenizer=hf_tok)
    assert dlm.mask_token_id == 60
    assert hf_tok.convert_tokens_to_ids("<|mask|>") == 60
    assert dlm.model.get_input_embeddings().weight.shape[0] >= 61
    dlm.save_pretrained(tmp_path / "m")
    again = DiffusionLM.from_pretrained(tmp_path / "m")
    assert again.mask_token_id == 60 and again.tokenizer.convert_tokens_to_ids("<|mask|>") == 60


def test_missing_mask_token_without_tokenizer_is_a_clear_error(tiny_qwen):
    import pytest

    with pytest.raises(ValueError, match="no mask token"):
        DiffusionLM.from_pretrained(tiny_qwen)
    with pytest.raises(ValueError, match="outside the embedding table"):
        DiffusionLM(tiny_qwen, mask_token_id=1000)
