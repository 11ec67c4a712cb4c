"""Held-out pass@1 of a diffusion LM on tiny-world tasks: sample, extract code, run hidden tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from rlvr.batch import pad_left
from rlvr.world.executor import run_many

__all__ = ["extract_code", "read_rows", "evaluate"]

_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(text: str, stop: tuple[str, ...] = ("<|endoftext|>", "<|im_end|>")) -> str:
    """The program in a completion: the first fenced block when there is one, else the text before
    the first stop string. Trailing blank lines are dropped."""
    for s in stop:
        text = text.split(s, 1)[0]
    m = _FENCE.search(text)
    if m:
        text = m.group(1)
    return text.rstrip() + "\n"


def assert_codes(row: dict[str, Any]) -> list[str]:
    """The assert statements of a tiny-world row (``ground_truth.tests`` of type ``assert``)."""
    return [t["code"] for t in row["reward_model"]["ground_truth"]["tests"]]


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
    max_new_tokens: int = 48,
    steps: int | None = None,
    alg: str = "entropy",
    temperature: float = 0.0,
    batch_size: int = 32,
    timeout: float = 5.0,
    workers: int = 2,
    progress: bool = True,
    **gen_kwargs: Any,
) -> dict[str, Any]:
    """pass@1 (one sample per task) of ``model`` (a DiffusionLM with its tokenizer) on ``rows``."""
    from rich.progress import track

    tok = model.tokenizer
    model.eval()
    prompts = [
        tok(
            tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True),
            add_special_tokens=False,
        )["input_ids"]
        for r in rows
    ]
    completions: list[str] = []
    starts = range(0, len(rows), batch_size)
    for start in track(starts, description="sampling", disable=not progress):
        ids, mask = pad_left(prompts[start : start + batch_size], tok.pad_token_id)
        out = model.generate(
            ids.to(model.device),
            attention_mask=mask.to(model.device),
            max_new_tokens=max_new_tokens,
            steps=steps or max_new_tokens,
            alg=alg,
            temperature=temperature,
            **gen_kwargs,
        )
        new = out.sequences[:, ids.shape[1] :].cpu()
        completions.extend(tok.decode(row, skip_special_tokens=False) for row in new)
    codes = [extract_code(c) for c in completions]
    results = run_many(
        [(code, assert_codes(r)) for code, r in zip(codes, rows, strict=True)],
        timeout=timeout,
        workers=workers,
    )
    by_template: dict[str, list[int]] = {}
    for r, res in zip(rows, results, strict=True):
        key = r.get("extra_info", {}).get("template", "?")
        by_template.setdefault(key, []).append(int(res.passed))
    n_pass = sum(res.passed for res in results)
    return {
        "n": len(rows),
        "passed": n_pass,
        "pass@1": n_pass / max(1, len(rows)),
        "by_template": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_template.items())},
        "statuses": {
            s: sum(res.status == s for res in results) for s in sorted({res.status for res in results})
        },
        "samples": [
            {"index": r.get("extra_info", {}).get("index"), "completion": c, "status": res.status}
            for r, c, res in zip(rows, completions, results, strict=True)
        ],
    }
