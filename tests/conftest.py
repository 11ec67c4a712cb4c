"""Shared fixtures: tiny random Qwen2 models (nothing is downloaded)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def make_tiny_qwen(vocab_size: int = 64, hidden: int = 32, layers: int = 2, seed: int = 0, **kw):
    """A randomly initialised Qwen2ForCausalLM small enough for unit tests (fp32, eval mode)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=1,
        pad_token_id=1,
        bos_token_id=0,
        tie_word_embeddings=False,
        **kw,
    )
    return Qwen2ForCausalLM(cfg).eval()


@pytest.fixture
def tiny_qwen():
    return make_tiny_qwen()


@pytest.fixture
def tiny_dlm():
    from rlvr.diffusion import DiffusionLM

    return DiffusionLM.from_pretrained(make_tiny_qwen(), mask_token_id=63)


@pytest.fixture(scope="session")
def _docker_pool_url():
    """One real sandbox server (Docker, 2 warm containers) for the whole session; the image is built if
    missing (idempotent; scripts/setup.sh normally did it). Stopped and its containers reaped at the end."""
    from rlvr.sandbox.image import build_image
    from rlvr.sandbox.testing import running_server

    build_image()
    with running_server(size=2) as url:
        yield url


@pytest.fixture(scope="session")
def sandbox_url(_docker_pool_url):
    """The session's sandbox service (Docker); tests/sandbox runs its suites on the bwrap backend too."""
    return _docker_pool_url


@pytest.fixture(scope="session")
def sandbox_client(sandbox_url):
    from rlvr.sandbox.client import SandboxClient

    client = SandboxClient(sandbox_url, timeout_s=120)
    yield client
    client.close()
