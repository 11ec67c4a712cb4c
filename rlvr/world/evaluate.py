"""Held-out pass@1 of a diffusion LM on tiny-world tasks: sample, then score every completion with a
verifier (``code_tests``: the hidden asserts run in the sandbox service, like every other execution of
generated code in rlvr)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlvr.algos import response_lengths
from rlvr.batch import pad_left

__all__ = ["read_rows", "evaluate", "world_verifier"]


def world_verifier(urls: list[str], **overrides: Any) -> Any:
    """How the tiny world is scored: ``code_tests`` in the sandbox service at ``urls``, reward 1 when every
    hidden assert passes; the world's answers are bare code, so no fence is required."""
    from rlvr.rewards import registry

    return registry.get("code_tests", urls=urls, **{"mode": "binary", "allow_unfenced": True, **overrides})


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """RL-schema rows from a JSONL file; a row without tests or entry point is an error naming it."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        gt = row.get("reward_model", {}).get("ground_truth", {})
        if not gt.get("tests") or not gt.get("entry_point") or not row.get("prompt"):
            raise ValueError(
                f"{path}:{lineno}: row lacks prompt or reward_model.ground_truth.tests/entry_point"
            )
        rows.append(row)
    return rows


@torch.no_grad()
def evaluate(
    model: Any,
    rows: list[dict[str, Any]],
    verifier: Any,
    max_new_tokens: int = 48,
    steps: int | None = None,
    alg: str = "entropy",
    temperature: float = 0.0,
    batch_size: int = 32,
    deadline_s: float = 600.0,
    progress: bool = True,
    generate_fn: Callable[..., Any] | None = None,
    **gen_kwargs: Any,
) -> dict[str, Any]:
    """pass@1 (one sample per task) of ``model`` (a DiffusionLM with its tokenizer) on ``rows``, scored by
    ``verifier`` (see :func:`world_verifier`). ``generate_fn`` defaults to :func:`rlvr.diffusion.generate`."""
    from rlvr.logs import Progress
    from rlvr.rewards import OverlongPolicy, Sample, score_sync

    if generate_fn is None:
        from rlvr.diffusion import generate as generate_fn
    tok = model.tokenizer
    model.eval()
    prompts = [
        tok(
            tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True),
            add_special_tokens=False,
        )["input_ids"]
        for r in rows
    ]
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    samples: list[Sample] = []
    with Progress(len(rows), "sampling", enabled=progress) as bar:
        for start in range(0, len(rows), batch_size):
            ids, mask = pad_left(prompts[start : start + batch_size], pad)
            out = generate_fn(
                model,
                ids.to(model.device),
                attention_mask=mask.to(model.device),
                max_new_tokens=max_new_tokens,
                steps=steps or max_new_tokens,
                alg=alg,
                temperature=temperature,
                **gen_kwargs,
            )
            canvas = out.sequences[:, ids.shape[1] :].cpu()
            lengths, truncated = response_lengths(canvas, pad, eos)
            for r in range(canvas.shape[0]):
                text = tok.decode(canvas[r, : int(lengths[r])].tolist(), skip_special_tokens=True)
                row = rows[start + r]
                samples.append(Sample(row, text, truncated=bool(truncated[r]), num_tokens=int(lengths[r])))
            bar.update(len(samples))
    # a completion that fills the canvas is still run: the world scores what the model wrote
    results = score_sync(verifier, samples, deadline_s=deadline_s, overlong=OverlongPolicy("score"))
    statuses = [res.reason or "passed" for res in results]
    by_template: dict[str, list[int]] = {}
    for r, res in zip(rows, results, strict=True):
        key = r.get("extra_info", {}).get("template", "?")
        by_template.setdefault(key, []).append(int(res.reward >= 1.0))
    n_pass = sum(res.reward >= 1.0 for res in results)
    return {
        "n": len(rows),
        "passed": n_pass,
        "pass@1": n_pass / max(1, len(rows)),
        "by_template": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_template.items())},
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        "samples": [
            {"index": r.get("extra_info", {}).get("index"), "completion": s.completion, "status": st}
            for r, s, st in zip(rows, samples, statuses, strict=True)
        ],
    }
