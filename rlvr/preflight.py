"""Checks that need no work: does every path a config names exist and hold what it should (a model
folder, a tokenizer, data rows in the schema), do the sandbox URLs answer.

``rlvr pretrain|sft|train --check`` runs a recipe's checks and prints the resolved config; every stage
also runs them before it starts, so a bad path costs a second and one line naming the key and the
value, not a traceback minutes into a run. Each recipe module lists its checks in ``check(cfg)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Problem",
    "PreflightError",
    "model_folder",
    "tokenizer_source",
    "local_files",
    "prompt_rows",
    "sandbox_urls",
    "raise_if",
]

MAX_ROW_ERRORS = 5  # per file; `rlvr data validate FILE` lists them all


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config value: the dotted key, the value, what is wrong."""

    key: str
    value: Any
    message: str

    def __str__(self) -> str:
        return f"{self.key}={self.value!r}: {self.message}"


class PreflightError(ValueError):
    """Problems found before any work; the message lists each, one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) before starting:\n  " + "\n  ".join(map(str, problems)))


def raise_if(problems: list[Problem]) -> None:
    if problems:
        raise PreflightError(problems)


def model_folder(key: str, path: str | None, need_tokenizer: bool = False) -> list[Problem]:
    """``path`` is a Hugging Face checkpoint folder (``config.json`` and weights; a tokenizer if asked)."""
    if not path:
        return [Problem(key, path, "no model folder given")]
    p = Path(path)
    if not p.exists():
        return [Problem(key, path, "does not exist")]
    if not p.is_dir():
        return [Problem(key, path, "is a file, not a checkpoint folder")]
    if not (p / "config.json").is_file():
        return [Problem(key, path, "holds no model (no config.json)")]
    weights = [*p.glob("*.safetensors"), *p.glob("*.bin"), *p.glob("*.safetensors.index.json")]
    if not weights:
        return [Problem(key, path, "holds a config.json but no weights (*.safetensors / *.bin)")]
    if need_tokenizer and not (p / "tokenizer_config.json").is_file():
        return [Problem(key, path, "holds no tokenizer (no tokenizer_config.json)")]
    return []


def tokenizer_source(key: str, value: str | None) -> list[Problem]:
    """``"qwen"`` (the bundled Qwen tokenizer) or a tokenizer folder."""
    if value is None or value == "qwen":
        return []
    p = Path(value)
    if not p.is_dir() or not (p / "tokenizer_config.json").is_file():
        return [Problem(key, value, "is neither 'qwen' nor a tokenizer folder (with tokenizer_config.json)")]
    return []


def local_files(key: str, files: Iterable[str]) -> list[Problem]:
    """Every file exists (``key[i]`` names the bad entry)."""
    files = list(files)
    if not files:
        return [Problem(key, files, "is empty: give at least one local file")]
    return [Problem(f"{key}[{i}]", f, "does not exist") for i, f in enumerate(files) if not Path(f).is_file()]


def prompt_rows(key: str, path: str | None) -> list[Problem]:
    """A prompt file in the rlvr.data schema (rlvr/data/SCHEMA.md): exists, and its rows are valid."""
    if path is None:
        return []
    if not Path(path).is_file():
        return [Problem(key, path, "does not exist")]
    from rlvr.data.validate import validate_file

    n, errors = validate_file(path)
    if n == 0:
        return [Problem(key, path, "holds no rows")]
    out = [Problem(key, path, f"row {e.index}: {e.field}: {e.message}") for e in errors[:MAX_ROW_ERRORS]]
    if len(errors) > MAX_ROW_ERRORS:
        out.append(Problem(key, path, f"... {len(errors) - MAX_ROW_ERRORS} more (rlvr data validate {path})"))
    return out


def sandbox_urls(key: str, urls: Iterable[str], timeout_s: float = 5.0) -> list[Problem]:
    """Every sandbox replica is healthy (:func:`rlvr.sandbox.client.health_problem`)."""
    from rlvr.sandbox.client import health_problem

    out = []
    for i, url in enumerate(urls):
        problem = health_problem(url, timeout_s)
        if problem is not None:
            out.append(Problem(f"{key}[{i}]", url, problem))
    return out
