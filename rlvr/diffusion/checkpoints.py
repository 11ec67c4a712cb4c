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

:func:`convert` writes a folder back out in either format (``rlvr convert``).
"""

from __future__ import annotations

import json
import logging
import shutil
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
    "convert",
]

log = logging.getLogger(__name__)

# model_type -> what the folder is (the error message lists these)
FORMATS = {
    "qwen2": "Hugging Face Qwen2 causal LM (Qwen2.5-Coder; rlvr's own diffusion checkpoints)",
    "Dream": "Dream-family diffusion LM (Dream-v0, Dream-Coder-v0, DiffuCoder)",
}
DREAM_AUTO_MAP = {
    "AutoConfig": "configuration_dream.DreamConfig",
    "AutoModel": "modeling_dream.DreamModel",
}
DREAM_CODE_FILES = ("configuration_dream.py", "modeling_dream.py", "generation_utils.py", "tokenization_dream.py")
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


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def convert(src: str | Path, dst: str | Path, to: str, code_from: str | Path | None = None) -> Path:
    """Write the checkpoint at ``src`` (any supported format) to ``dst`` in format ``to``.

    ``to="qwen2"``: a plain Qwen2 folder plus the diffusion metadata (``mask_token_id``,
    ``is_causal: false``): what rlvr trains and ``transformers`` loads with no remote code.
    ``to="Dream"``: Dream's layout: the config as ``DreamConfig`` reads it (``model_type: Dream``,
    ``DreamModel``, ``auto_map``), the same weight files, the tokenizer, and a ``generation_config.json``
    with the diffusion sampling defaults. Dream's tooling loads it with ``trust_remote_code``, which needs
    Dream's own ``configuration_dream.py`` / ``modeling_dream.py``: they are copied from ``code_from`` (a
    released Dream folder), or from ``src`` when it is one; rlvr does not ship them.
    """
    from rlvr.diffusion.model import DiffusionLM

    if to not in FORMATS:
        raise UnsupportedCheckpoint(f"cannot write format {to!r}; choose one of {sorted(FORMATS)}")
    src, dst = Path(src), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{str(dst)!r} exists and is not empty")
    dlm = DiffusionLM.from_pretrained(src)
    dlm.save_pretrained(dst)  # plain Qwen2 layout: safetensors with Qwen2's (= Dream's) names
    if to == "qwen2":
        return dst
    cfg = read_config_dict(dst)
    dream = {k: v for k, v in cfg.items() if k not in ("is_causal", "dtype", "torch_dtype")}
    dream.update(model_type="Dream", architectures=["DreamModel"], auto_map=dict(DREAM_AUTO_MAP), use_cache=False)
    dream["torch_dtype"] = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32").removeprefix("torch.")
    _write_json(dst / "config.json", dream)
    gen = {
        "bos_token_id": dream.get("bos_token_id"),
        "eos_token_id": dream.get("eos_token_id"),
        "pad_token_id": dream.get("pad_token_id"),
        "mask_token_id": dlm.mask_token_id,
        "alg": "entropy",
        "temperature": 0.1,
        "top_p": 0.95,
        "max_new_tokens": 512,
        "steps": 512,
    }
    _write_json(dst / "generation_config.json", {k: v for k, v in gen.items() if v is not None})
    code_dir = Path(code_from) if code_from else (src if checkpoint_format(src) == "Dream" else None)
    copied = []
    for name in DREAM_CODE_FILES:
        if code_dir is not None and (code_dir / name).is_file():
            shutil.copy(code_dir / name, dst / name)
            copied.append(name)
    if "modeling_dream.py" not in copied:
        log.warning(
            "%s has Dream's config and weights but not its code: copy configuration_dream.py and "
            "modeling_dream.py from a released Dream checkpoint (or pass --code-from) before loading it "
            "with trust_remote_code",
            dst,
        )
    return dst
