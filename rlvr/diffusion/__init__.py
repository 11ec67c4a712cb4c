"""Masked discrete diffusion LMs built from autoregressive checkpoints."""

from rlvr.diffusion.model import DiffusionLM, shift_logits

__all__ = ["DiffusionLM", "shift_logits"]
