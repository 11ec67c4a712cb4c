"""Pretraining packing/streaming and the SFT sample order: exact and resumable."""

from __future__ import annotations

import json

import pytest
from rlvr.recipes.sft import sample_indices

from rlvr.supervised.data import pack_blocks, pretrain_blocks


def test_pack_blocks_appends_eos_and_drops_the_tail():
    docs = iter([[1, 2, 3], [4], [5, 6, 7, 8, 9]])
    assert list(pack_blocks(docs, 4, eos_id=0)) == [[1, 2, 3, 0], [4, 0, 5, 6], [7, 8, 9, 0]]
    assert list(pack_blocks(iter([[1, 2]]), 4, eos_id=0)) == []


class CharTok:
    """Characters as token ids (ord); enough to test streaming without a trained tokenizer."""

    eos_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


def test_pretrain_blocks_stream_epochs_and_skip(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["abc", "de", "fghij"]))
    blocks = pretrain_blocks([str(f)], CharTok(), 4, shuffle_buffer=0)
    first = [next(blocks) for _ in range(6)]
    a, b, c, d, e, ff, g, h, i, j = (ord(x) for x in "abcdefghij")
    assert first[:3] == [[a, b, c, 0], [d, e, 0, ff], [g, h, i, j]]
    assert first[3] == [a, b, c, 0]  # each epoch packs afresh: the tail of epoch 1 ([0]) is dropped
    resumed = pretrain_blocks([str(f)], CharTok(), 4, shuffle_buffer=0, skip=4)
    assert [next(resumed) for _ in range(2)] == first[4:6]


def test_pretrain_blocks_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        next(pretrain_blocks([str(tmp_path / "missing.jsonl")], CharTok(), 4))
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"content": "abc"}) + "\n")
    with pytest.raises(KeyError, match="'text'"):
        next(pretrain_blocks([str(f)], CharTok(), 4))


def test_sample_indices_are_epoch_permutations_and_pure():
    first = sample_indices(5, seed=1, start=0, count=10)
    assert sorted(first[:5]) == [0, 1, 2, 3, 4] and sorted(first[5:]) == [0, 1, 2, 3, 4]
    assert first[:5] != first[5:]  # a new shuffle each epoch (for this seed)
    assert sample_indices(5, seed=1, start=3, count=4) == first[3:7]
