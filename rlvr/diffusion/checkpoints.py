"""Checkpoint folders in and out: what ``config.json``'s ``model_type`` says, mapped onto the Qwen2 modules
rlvr runs, without ever executing a folder's remote code.

Formats (:data:`FORMATS`, by ``model_type``):

* ``qwen2``: a plain Hugging Face Qwen2 folder (Qwen2.5-Coder, and what rlvr writes: the same plus
  ``mask_token_id`` and ``is_causal: false`` in the config);
* ``Dream``: the released diffusion checkpoints of the Dream family (Dream-v0, Dream-Coder-v0,
  DiffuCoder): ``architectures: ["DreamModel"]`` and an ``auto_map`` to ``configuration_dream.py`` /
  ``modeling_dream.py``. Their weights carry Qwen2's names and shapes (``model.layers.N.self_attn.q_proj``
  with biases, ``model.norm``, ``lm_head``) and their logits are AR-aligned (the sampler shifts them), so
  the same tensors load into ``Qwen2ForCausalLM`` and :class:`~rlvr.diffusion.DiffusionLM` applies the
  shift. The config's ``mask_token_id``, ``pad_token_id``, ``bos_token_id`` and ``eos_token_id`` are kept.
  The tokenizer (``DreamTokenizer``, remote code too) is Qwen2's byte-level BPE and loads as
  ``Qwen2TokenizerFast`` from the folder's ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``.

:mod:`rlvr.diffusion.convert` writes a folder back out in either format (``rlvr convert``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

__all__ = [
    "FORMATS",
    "UnsupportedCheckpoint",
    "read_config_dict",
    "checkpoint_format",
    "load_config",
    "load_tokenizer",
    "load_causal_lm",
]

log = logging.getLogger(__name__)

# model_type -> what the folder is (the error message lists these)
FORMATS = {
    "qwen2": "Hugging Face Qwen2 causal LM (Qwen2.5-Coder; rlvr's own diffusion checkpoints)",
    "Dream": "Dream-family diffusion LM (Dream-v0, Dream-Coder-v0, DiffuCoder)",
}
# config keys that only describe the folder's packaging, never the network
_PACKAGING_KEYS = ("auto_map", "architectures", "model_type", "transformers_version")


class UnsupportedCheckpoint(ValueError):
    """A folder whose ``model_type`` rlvr cannot load; the message names it and the supported ones."""


def read_config_dict(path: str | Path) -> dict[str, Any]:
    f = Path(path) / "config.json"
    if not f.is_file():
        raise FileNotFoundError(f"{str(path)!r} is not a Hugging Face checkpoint folder (no config.json)")
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(f)!r} is not valid JSON: {exc}") from None


def checkpoint_format(path: str | Path) -> str:
    """The folder's format name (a :data:`FORMATS` key), or :class:`UnsupportedCheckpoint`."""
    model_type = read_config_dict(path).get("model_type")
    if model_type not in FORMATS:
        supported = ", ".join(f"{k} ({v})" for k, v in FORMATS.items())
        raise UnsupportedCheckpoint(
            f"{str(Path(path) / 'config.json')!r} has model_type {model_type!r}, which rlvr cannot load; "
            f"supported: {supported}"
        )
    return str(model_type)


def load_config(path: str | Path) -> Any:
    """The folder's config as a ``Qwen2Config`` (Dream configs mapped; extra keys such as
    ``mask_token_id`` kept as attributes). Never imports the folder's Python files."""
    from transformers import Qwen2Config

    fmt = checkpoint_format(path)
    data = read_config_dict(path)
    if fmt == "Dream":
        data = {k: v for k, v in data.items() if k not in _PACKAGING_KEYS}
        data.setdefault("use_cache", False)
    else:
        data = {k: v for k, v in data.items() if k != "model_type"}
    return Qwen2Config.from_dict(data)


def load_tokenizer(path: str | Path) -> Any:
    """The folder's tokenizer, or None when it has none. A tokenizer whose class is remote code
    (``DreamTokenizer``) is read as ``Qwen2TokenizerFast`` from the same files."""
    from transformers import AutoTokenizer, Qwen2TokenizerFast

    path = Path(path)
    cfg_file = path / "tokenizer_config.json"
    if not cfg_file.is_file():
        return None
    tok_cfg = json.loads(cfg_file.read_text())
    if "auto_map" in tok_cfg or str(tok_cfg.get("tokenizer_class", "")).startswith("Dream"):
        return Qwen2TokenizerFast.from_pretrained(str(path))
    return AutoTokenizer.from_pretrained(str(path))


def load_causal_lm(path: str | Path, torch_dtype: Any = None, **hf_kwargs: Any) -> tuple[Any, Any]:
    """``(Qwen2ForCausalLM, tokenizer or None)`` from a folder of any :data:`FORMATS` format."""
    from transformers import AutoModelForCausalLM, Qwen2ForCausalLM

    fmt = checkpoint_format(path)
    kw = dict(hf_kwargs)
    if torch_dtype is not None:
        kw["dtype"] = torch_dtype
    if fmt == "Dream":
        model = Qwen2ForCausalLM.from_pretrained(str(path), config=load_config(path), **kw)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kw)
    return model, load_tokenizer(path)
