"""Build the diffusion LM a trainer starts from (a checkpoint folder, or a fresh tiny Qwen2)."""

from __future__ import annotations

from typing import Any

import torch

from rlvr.supervised.config import ModelSection

__all__ = ["load_model", "prepare_run"]


def load_model(section: ModelSection, seed: int = 0, ds_config: dict[str, Any] | None = None) -> Any:
    """A :class:`DiffusionLM` with its tokenizer attached.

    ``model.path``: an HF causal LM or DiffusionLM folder (``<|mask|>`` is added when missing);
    ``model.tokenizer`` overrides the folder's tokenizer. ``model.init``: a random tiny Qwen2 whose
    vocabulary is the tokenizer's. With a ZeRO-3 ``ds_config`` the HF weights are loaded already
    partitioned (transformers' ``HfDeepSpeedConfig`` must exist before ``from_pretrained``).
    """
    from rlvr.diffusion import DiffusionLM
    from rlvr.world.tokenizer import load_tokenizer

    dtype = getattr(torch, section.dtype)
    tokenizer = load_tokenizer(section.tokenizer) if section.tokenizer else None
    if section.init is not None:
        from rlvr.world.model import build_tiny_qwen2

        hf = build_tiny_qwen2(tokenizer, seed=seed, **section.init.model_dump()).to(dtype)
        return DiffusionLM.from_pretrained(hf, tokenizer=tokenizer)
    keep_alive = None
    if ds_config is not None and ds_config.get("zero_optimization", {}).get("stage") == 3:
        from transformers.integrations import HfDeepSpeedConfig

        keep_alive = HfDeepSpeedConfig(ds_config)
    if tokenizer is None:
        from pathlib import Path

        if (Path(section.path) / "tokenizer_config.json").is_file():
            tokenizer = load_tokenizer(section.path)
    model = DiffusionLM.from_pretrained(section.path, tokenizer=tokenizer, torch_dtype=dtype)
    model._hf_ds_config = keep_alive  # transformers holds it weakly; it must outlive training under ZeRO-3
    return model


def prepare_run(cfg: Any) -> tuple[Any, Any, Any]:
    """Common start of the pretrain and SFT recipes: threads, seed, the resolved config written to
    ``loop.out_dir``, and the model (ZeRO-3 aware) with its tokenizer. Returns ``(model, tokenizer, out_dir)``."""
    from pathlib import Path

    from rlvr.config import dump_config
    from rlvr.engine.engine import build_ds_config

    if cfg.loop.threads:
        torch.set_num_threads(cfg.loop.threads)
    torch.manual_seed(cfg.loop.seed)
    out = Path(cfg.loop.out_dir)
    dump_config(cfg, out / "config.yaml")
    ds_cfg = build_ds_config(cfg.deepspeed, cfg.loop.micro_batch, cfg.loop.grad_accum, cfg.optim.grad_clip)
    model = load_model(cfg.model, seed=cfg.loop.seed, ds_config=ds_cfg)
    if model.tokenizer is None:
        raise ValueError("model.tokenizer is not set and the model folder has no tokenizer")
    return model, model.tokenizer, out
