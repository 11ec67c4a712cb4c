"""Masked discrete diffusion LMs built from autoregressive checkpoints."""

from rlvr.diffusion.model import DiffusionLM, shift_logits
from rlvr.diffusion.sampler import GenerationOutput, generate

__all__ = ["DiffusionLM", "GenerationOutput", "generate", "shift_logits"]
