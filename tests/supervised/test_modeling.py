"""The model a recipe starts from: a fresh tiny Qwen2 (model.init) or a causal-LM folder (model.path)."""

from __future__ import annotations

import torch

from rlvr.supervised.config import ModelSection, TinyModelInit
from rlvr.supervised.modeling import load_model
from rlvr.world.model import build_tiny_qwen2
from rlvr.world.tokenizer import train_bpe_tokenizer

TEXTS = ["def f(x):\n    return x + 1\n", "Write this Python function"] * 20


def test_init_builds_a_tiny_qwen2_with_the_tokenizer_vocab(tmp_path):
    tok = train_bpe_tokenizer(TEXTS, tmp_path / "tok", vocab_size=300)
    init = TinyModelInit(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=64)
    m = load_model(ModelSection(init=init, tokenizer=str(tmp_path / "tok")), seed=1)
    assert m.model.config.vocab_size == len(tok) and m.model.config.hidden_size == 32
    assert (m.mask_token_id, m.eos_token_id, m.pad_token_id) == (3, 0, 0)
    m2 = load_model(ModelSection(init=init, tokenizer=str(tmp_path / "tok")), seed=1)
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), m2.parameters(), strict=True))  # seeded


def test_path_loads_a_causal_lm_folder_and_finds_the_mask_token(tmp_path):
    tok = train_bpe_tokenizer(TEXTS, tmp_path / "tok", vocab_size=300)
    hf = build_tiny_qwen2(tok, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                          intermediate_size=64)
    hf.save_pretrained(tmp_path / "ar")  # an ordinary causal LM: no mask_token_id, no tokenizer files
    assert getattr(hf.config, "mask_token_id", None) is None
    m = load_model(ModelSection(path=str(tmp_path / "ar"), tokenizer=str(tmp_path / "tok")))
    assert m.mask_token_id == tok.convert_tokens_to_ids("<|mask|>") == 3
    assert m.tokenizer is not None and m.model.config.is_causal is False
    assert torch.equal(m.model.lm_head.weight, hf.lm_head.weight)
