"""Data pipelines for diffusion-LM training: packed pretraining blocks and chat SFT batches.

Pretraining streams text from local files with ``datasets`` (jsonl/json/parquet/txt), appends EOS to
each document and packs the token stream into fixed-length blocks. SFT tokenises chat prompt/response
pairs the way Dream-Coder does and collates them with a per-batch *cutoff* mode chosen by name
(:data:`CUTOFFS`), the default being ``random_with_input_pad``.

Every random choice takes an explicit ``random.Random`` so that a step's batch is a pure function of
(seed, step): resuming from a checkpoint replays the exact same batches.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "load_text_stream",
    "pack_blocks",
    "pretrain_blocks",
    "tokenize_sft",
    "collate_random_with_input_pad",
    "collate_input_pad",
    "CUTOFFS",
    "load_sft_examples",
]

_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".txt": "text", ".csv": "csv"}


def _format_of(files: Sequence[str]) -> str:
    if not files:
        raise ValueError("data.files is empty: give at least one local file")
    kinds = set()
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"data file {f!r} does not exist")
        suffix = Path(f).suffix.lower()
        if suffix not in _FORMATS:
            raise ValueError(f"data file {f!r}: unsupported suffix {suffix!r}; use one of {sorted(_FORMATS)}")
        kinds.add(_FORMATS[suffix])
    if len(kinds) != 1:
        raise ValueError(f"data.files mix formats {sorted(kinds)}; use one format per run")
    return kinds.pop()


def load_text_stream(
    files: Sequence[str], text_field: str, seed: int, epoch: int, shuffle_buffer: int
) -> Iterator[str]:
    """Texts of ``files`` streamed by ``datasets`` (never fully loaded), shuffled per epoch by a buffer."""
    import datasets

    fmt = _format_of(files)
    ds = datasets.load_dataset(fmt, data_files=list(files), split="train", streaming=True)
    if shuffle_buffer > 1:
        ds = ds.shuffle(seed=seed, buffer_size=shuffle_buffer)
        ds.set_epoch(epoch)
    for i, row in enumerate(ds):
        if text_field not in row:
            raise KeyError(f"row {i} of {list(files)} has no field {text_field!r} (fields: {sorted(row)})")
        yield row[text_field]


def pack_blocks(token_lists: Iterator[list[int]], block_size: int, eos_id: int) -> Iterator[list[int]]:
    """Concatenate documents, each followed by EOS, and cut the stream into ``block_size`` blocks.

    The last partial block of the stream is dropped (it would need padding, which packing avoids).
    """
    buf: list[int] = []
    for ids in token_lists:
        buf.extend(ids)
        buf.append(eos_id)
        while len(buf) >= block_size:
            yield buf[:block_size]
            buf = buf[block_size:]


def pretrain_blocks(
    files: Sequence[str],
    tokenizer: Any,
    block_size: int,
    text_field: str = "text",
    seed: int = 0,
    shuffle_buffer: int = 1000,
    skip: int = 0,
) -> Iterator[list[int]]:
    """Endless packed blocks over epochs; ``skip`` drops the first blocks (the resume cursor)."""
    epoch = 0
    produced = 0
    while True:
        texts = load_text_stream(files, text_field, seed, epoch, shuffle_buffer)
        tokens = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts)
        empty = True
        for block in pack_blocks(tokens, block_size, tokenizer.eos_token_id):
            empty = False
            produced += 1
            if produced > skip:
                yield block
        if empty:
            raise ValueError(f"data.files {list(files)} hold fewer than block_size={block_size} tokens")
        epoch += 1


# ------------------------------------------------------------------------------------------- SFT
def tokenize_sft(prompt: list[dict[str, str]] | str, response: str, tokenizer: Any) -> dict[str, list[int]]:
    """Dream-Coder's SFT tokenisation: chat template with generation prompt, then ``response + EOS``."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    prompt_text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return {"prompt_ids": prompt_ids, "response_ids": response_ids}


def load_sft_examples(
    files: Sequence[str],
    tokenizer: Any,
    max_length: int,
    prompt_field: str = "prompt",
    response_field: str = "response",
) -> tuple[list[dict[str, list[int]]], int]:
    """Tokenised SFT pairs from local files, and how many were dropped for exceeding ``max_length``
    (the reference filters over-long samples rather than cutting them)."""
    import datasets

    ds = datasets.load_dataset(_format_of(files), data_files=list(files), split="train")
    out, dropped = [], 0
    for i, row in enumerate(ds):
        for f in (prompt_field, response_field):
            if row.get(f) in (None, "", []):
                raise ValueError(f"SFT row {i} of {list(files)}: field {f!r} is missing or empty")
        ex = tokenize_sft(row[prompt_field], row[response_field], tokenizer)
        if len(ex["prompt_ids"]) + len(ex["response_ids"]) > max_length:
            dropped += 1
            continue
        out.append(ex)
    return out, dropped


def _strip_trailing(ids: Sequence[int], pad_id: int) -> list[int]:
    n = len(ids)
    while n and ids[n - 1] == pad_id:
        n -= 1
    return list(ids[:n])


def _assemble(samples: Sequence[dict[str, list[int]]], pad_id: int, k: int) -> dict[str, torch.Tensor]:
    """Rows ``[left pad | prompt | response[:k] | pad ...]`` of width ``P_max + k``.

    Left pads: attention 0, loss 0. Prompt: attention 1, loss 0. Response and tail pads: attention 1,
    loss 1 (the tail is EOS=pad the model must learn to emit: Dream-Coder's "we use 1 here").
    """
    p_max = max(len(s["prompt_ids"]) for s in samples)
    width = p_max + k
    b = len(samples)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    attention = torch.ones((b, width), dtype=torch.long)
    loss_mask = torch.zeros((b, width), dtype=torch.long)
    for r, s in enumerate(samples):
        prompt = s["prompt_ids"]
        resp = _strip_trailing(s["response_ids"], pad_id)[:k]
        left = p_max - len(prompt)
        attention[r, :left] = 0
        input_ids[r, left:p_max] = torch.tensor(prompt, dtype=torch.long)
        input_ids[r, p_max : p_max + len(resp)] = torch.tensor(resp, dtype=torch.long)
        loss_mask[r, p_max:] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "loss_mask": loss_mask}


def collate_random_with_input_pad(
    samples: Sequence[dict[str, list[int]]], pad_id: int, rng: random.Random
) -> dict[str, torch.Tensor]:
    """Dream-Coder's ``perbatch_cutoff_type=random_with_input_pad`` for one micro-batch.

    1. prompts are left-padded so they all end at column ``P_max``;
    2. ``K`` is drawn uniformly from the batch's *non-pad* response lengths (trailing pad run removed;
       with eos = pad the response's own EOS counts as pad, as in the reference);
    3. each row becomes ``[left pad | prompt | response[:min(K, len)] | pad ...]``, width ``P_max + K``.

    Rows shorter than ``K`` learn some trailing EOS; longer rows are cut with no EOS ("canvas full").
    Returns ``input_ids``, ``attention_mask`` (0 only on left pads) and ``loss_mask`` (1 from ``P_max``).
    """
    lengths = [len(_strip_trailing(s["response_ids"], pad_id)) for s in samples]
    k = rng.choice(lengths)
    if k == 0:  # every response empty (only EOS): keep a one-token EOS canvas rather than no target
        k = 1
    return _assemble(samples, pad_id, k)


def collate_input_pad(
    samples: Sequence[dict[str, list[int]]], pad_id: int, rng: random.Random
) -> dict[str, torch.Tensor]:
    """No truncation: the canvas is one token wider than the longest response, so every row ends in EOS."""
    k = max(len(_strip_trailing(s["response_ids"], pad_id)) for s in samples) + 1
    return _assemble(samples, pad_id, k)


CUTOFFS: dict[
    str, Callable[[Sequence[dict[str, list[int]]], int, random.Random], dict[str, torch.Tensor]]
] = {
    "random_with_input_pad": collate_random_with_input_pad,
    "input_pad": collate_input_pad,
}
