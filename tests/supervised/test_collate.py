"""SFT tokenisation and the random_with_input_pad collate, on hand-made batches with exact tensors."""

from __future__ import annotations

import random

import torch

from rlvr.supervised.data import CUTOFFS, collate_input_pad, collate_random_with_input_pad, tokenize_sft

PAD = 0
BATCH = [
    {"prompt_ids": [5, 6, 7], "response_ids": [8, 9, PAD]},  # non-pad response length 2
    {"prompt_ids": [5], "response_ids": [10, 11, 12, 13, PAD]},  # 4
    {"prompt_ids": [5, 6], "response_ids": [14, PAD, PAD]},  # 1 (extra pads are not response)
]


class Pick:
    """An rng whose ``choice`` returns element ``i`` (and records what it was offered)."""

    def __init__(self, i: int):
        self.i, self.offered = i, None

    def choice(self, seq):
        self.offered = list(seq)
        return seq[self.i]


def T(rows):
    return torch.tensor(rows, dtype=torch.long)


def test_random_with_input_pad_k_from_a_short_row():
    rng = Pick(0)
    out = collate_random_with_input_pad(BATCH, PAD, rng)
    assert rng.offered == [2, 4, 1]  # K is drawn from the batch's non-pad response lengths
    # width = P_max (3) + K (2); prompts end at column 3; longer responses are cut with no EOS
    assert torch.equal(out["input_ids"], T([[5, 6, 7, 8, 9], [0, 0, 5, 10, 11], [0, 5, 6, 14, 0]]))
    assert torch.equal(out["attention_mask"], T([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 1, 1, 1, 1]]))
    assert torch.equal(out["loss_mask"], T([[0, 0, 0, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]))


def test_random_with_input_pad_k_from_the_longest_row():
    out = collate_random_with_input_pad(BATCH, PAD, Pick(1))
    # K = 4: shorter rows are filled with EOS=pad, attended and scored
    assert torch.equal(
        out["input_ids"], T([[5, 6, 7, 8, 9, 0, 0], [0, 0, 5, 10, 11, 12, 13], [0, 5, 6, 14, 0, 0, 0]])
    )
    assert torch.equal(
        out["attention_mask"], T([[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1]])
    )
    assert torch.equal(out["loss_mask"], T([[0, 0, 0, 1, 1, 1, 1]] * 3))


def test_random_with_input_pad_draws_every_length_with_a_real_rng():
    ks = {
        collate_random_with_input_pad(BATCH, PAD, random.Random(s))["input_ids"].shape[1] - 3
        for s in range(60)
    }
    assert ks == {1, 2, 4}


def test_input_pad_keeps_every_response_and_one_eos():
    out = collate_input_pad(BATCH, PAD, random.Random(0))
    assert torch.equal(
        out["input_ids"],
        T([[5, 6, 7, 8, 9, 0, 0, 0], [0, 0, 5, 10, 11, 12, 13, 0], [0, 5, 6, 14, 0, 0, 0, 0]]),
    )
    assert torch.equal(out["loss_mask"], T([[0, 0, 0, 1, 1, 1, 1, 1]] * 3))
    assert set(CUTOFFS) == {"random_with_input_pad", "input_pad"}


def test_tokenize_sft_uses_chat_template_and_appends_eos():
    from rlvr.world.tokenizer import train_bpe_tokenizer

    tok = train_bpe_tokenizer(["def f(x):\n    return x + 1\n"] * 20 + ["Write f."] * 20, vocab_size=300)
    ex = tokenize_sft([{"role": "user", "content": "Write f."}], "def f(x):\n    return x + 1\n", tok)
    assert tok.decode(ex["prompt_ids"]) == "<|im_start|>user\nWrite f.<|im_end|>\n<|im_start|>assistant\n"
    assert ex["response_ids"][-1] == tok.eos_token_id
    assert tok.decode(ex["response_ids"]) == "def f(x):\n    return x + 1\n<|endoftext|>"
    assert tokenize_sft("Write f.", "x", tok)["prompt_ids"] == ex["prompt_ids"]  # a string is one user turn
