"""Writing a checkpoint out in another format (``rlvr convert``): a Dream-format folder for Dream's own
tooling, or a plain Qwen2 folder with the diffusion metadata. Reading is :mod:`rlvr.diffusion.checkpoints`."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from rlvr.diffusion.checkpoints import FORMATS, UnsupportedCheckpoint, checkpoint_format, read_config_dict
from rlvr.diffusion.model import DiffusionLM

__all__ = ["convert", "DREAM_AUTO_MAP", "DREAM_CODE_FILES"]

log = logging.getLogger(__name__)

DREAM_AUTO_MAP = {
    "AutoConfig": "configuration_dream.DreamConfig",
    "AutoModel": "modeling_dream.DreamModel",
}
DREAM_CODE_FILES = ("configuration_dream.py", "modeling_dream.py", "generation_utils.py", "tokenization_dream.py")


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
