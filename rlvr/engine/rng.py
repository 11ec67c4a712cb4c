"""Seeds and RNG state: every random draw of a training step comes from ``(seed, step, ...)``, and a
checkpoint holds every generator's state, so a resumed run replays exactly."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch

__all__ = ["step_seed", "step_generator", "rng_state", "set_rng_state"]


def step_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed derived from ``(seed, step, micro, rank, ...)``; stable across runs and platforms."""
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def step_generator(seed: int, *parts: int, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(step_seed(seed, *parts))


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may touch (python, numpy, torch CPU, CUDA when present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
