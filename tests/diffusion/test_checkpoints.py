"""Released Dream-family checkpoints load without their remote code, and rlvr writes both formats.

Tiny Dream-format folders are built here the way the released ones are laid out: Qwen2-named weights,
``config.json`` with ``model_type: Dream``, ``DreamModel`` and an ``auto_map``, a ``DreamTokenizer``
tokenizer config, and the remote-code files, which here raise if anything imports them."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.diffusion import DiffusionLM
from rlvr.diffusion.checkpoints import UnsupportedCheckpoint, load_config
from rlvr.diffusion.convert import convert
from rlvr.world.model import build_tiny_qwen2
from rlvr.world.tokenizer import train_bpe_tokenizer

TRAP = "raise RuntimeError('remote code was executed')\n"


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    tok = train_bpe_tokenizer(["def f(x):\n    return x + 1\n", "print('hi')"] * 20, vocab_size=300)
    model = build_tiny_qwen2(tok, seed=3, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    DiffusionLM.from_pretrained(model, tokenizer=tok).save_pretrained(root / "qwen")
    return root / "qwen"


def as_released_dream(src, dst):
    """The same weights in a released Dream folder's layout (what Dream-Coder-v0-Instruct-7B ships)."""
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for k in ("is_causal", "dtype", "transformers_version"):
        cfg.pop(k, None)
    cfg.update(model_type="Dream", architectures=["DreamModel"], torch_dtype="float32", use_cache=False,
               auto_map={"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"})
    (dst / "config.json").write_text(json.dumps(cfg))
    tok_cfg = json.loads((dst / "tokenizer_config.json").read_text())
    tok_cfg.update(tokenizer_class="DreamTokenizer", auto_map={"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]})
    (dst / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    for name in ("configuration_dream.py", "modeling_dream.py", "tokenization_dream.py", "generation_utils.py"):
        (dst / name).write_text(TRAP)
    return dst


IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])


def test_a_dream_folder_loads_as_the_same_diffusion_lm_without_remote_code(qwen_dir, tmp_path):
    dream = as_released_dream(qwen_dir, tmp_path / "dream")
    ref = DiffusionLM.from_pretrained(qwen_dir).eval()
    got = DiffusionLM.from_pretrained(dream).eval()  # no mask_token_id argument: the config has it
    assert got.mask_token_id == ref.mask_token_id and (got.pad_token_id, got.eos_token_id) == (ref.pad_token_id, ref.eos_token_id)
    with torch.no_grad():
        assert torch.equal(got(IDS), ref(IDS))
    text = "def f(x):\n    return x + 1<|mask|>"
    assert got.tokenizer(text)["input_ids"] == ref.tokenizer(text)["input_ids"]
    assert load_config(dream).model_type == "qwen2"


def test_an_unknown_model_type_is_named_with_the_supported_ones(qwen_dir, tmp_path):
    other = tmp_path / "llada"
    shutil.copytree(qwen_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "model_type": "llada"}))
    with pytest.raises(UnsupportedCheckpoint, match=r"model_type 'llada', which rlvr cannot load; supported: qwen2 .*Dream"):
        DiffusionLM.from_pretrained(other)


def test_round_trip_rlvr_to_dream_to_rlvr_is_bit_identical(qwen_dir, tmp_path):
    code = as_released_dream(qwen_dir, tmp_path / "released")
    dream = convert(qwen_dir, tmp_path / "as_dream", "Dream", code_from=code)
    cfg = json.loads((dream / "config.json").read_text())
    assert cfg["model_type"] == "Dream" and cfg["architectures"] == ["DreamModel"]
    assert cfg["auto_map"] == {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"}
    ref_cfg = json.loads((qwen_dir / "config.json").read_text())
    for key in ("mask_token_id", "pad_token_id", "bos_token_id", "eos_token_id", "vocab_size", "hidden_size", "rope_theta"):
        assert cfg.get(key) == ref_cfg.get(key), key
    assert "is_causal" not in cfg and (dream / "modeling_dream.py").read_text() == TRAP
    gen = json.loads((dream / "generation_config.json").read_text())
    assert gen["mask_token_id"] == ref_cfg["mask_token_id"] and gen["alg"] == "entropy"
    back = convert(dream, tmp_path / "back", "qwen2")
    a = DiffusionLM.from_pretrained(qwen_dir).model.state_dict()
    b = DiffusionLM.from_pretrained(back).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    back_cfg = json.loads((back / "config.json").read_text())
    assert back_cfg["model_type"] == "qwen2" and back_cfg["is_causal"] is False
    assert back_cfg["mask_token_id"] == ref_cfg["mask_token_id"]


def test_convert_cli_errors_name_the_problem(qwen_dir, tmp_path):
    res = CliRunner().invoke(app, ["convert", str(qwen_dir), str(tmp_path / "x"), "--to", "llada"])
    assert res.exit_code == 2 and "--to 'llada': choose one of ['dream', 'qwen2']" in res.stderr
    res = CliRunner().invoke(app, ["convert", str(tmp_path / "missing"), str(tmp_path / "y"), "--to", "dream"])
    assert res.exit_code == 2 and "no config.json" in res.stderr
    res = CliRunner().invoke(app, ["convert", str(qwen_dir), str(tmp_path / "z"), "--to", "dream"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "z" / "config.json").is_file() and not (tmp_path / "z" / "modeling_dream.py").exists()
