"""Config-time checks: every registry name is validated when the config loads, and ``--check`` lists
every problem (key and value) before any work starts; a bad model folder is one line, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rlvr.recipes.pretrain import PretrainConfig
from rlvr.recipes.sft import SFTConfig
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.config import ConfigError, load_config
from rlvr.grpo.config import GRPOConfig

REGISTRY_FIELDS = [
    (GRPOConfig, "rollout.sampler.alg", "sampler algorithm", "entropy"),
    (GRPOConfig, "rollout.sampler.cache", "cache mode", "prefix"),
    (GRPOConfig, "rollout.sampler.schedule", "sampler schedule", "even"),
    (GRPOConfig, "rollout.sampler.early_exit", "early exit", "eos"),
    (GRPOConfig, "rollout.engine", "rollout engine", "vllm"),
    (GRPOConfig, "algo.advantage", "advantage estimator", "rloo"),
    (GRPOConfig, "algo.logprob_estimator", "log-prob estimator", "diffucoder"),
    (GRPOConfig, "algo.weighting", "loss weighting", "inverse_t"),
    (GRPOConfig, "algo.zero_advantage", "zero-advantage policy", "refill"),
    (GRPOConfig, "reward.verifier", "verifier", "format"),
    (GRPOConfig, "model.kind", "policy kind", "autoregressive"),
    (GRPOConfig, "algo.kl_estimator", "KL estimator", "k1"),
    (SFTConfig, "objective.weighting", "loss weighting", "cart"),
    (SFTConfig, "data.cutoff", "cutoff mode", "input_pad"),
    (PretrainConfig, "objective.weighting", "loss weighting", "linear"),
]
REQUIRED = {SFTConfig: ["model.path=m", "data.files=[a]"], PretrainConfig: ["model.path=m", "data.files=[a]"]}


@pytest.mark.parametrize(("cls", "key", "kind", "valid"), REGISTRY_FIELDS, ids=[f[1] for f in REGISTRY_FIELDS])
def test_every_registry_name_is_checked_when_the_config_loads(cls, key, kind, valid):
    base = REQUIRED.get(cls, [])
    with pytest.raises(ConfigError) as exc:
        load_config(cls, None, [*base, f"{key}=bogus_name"])
    msg = str(exc.value)
    assert f"config key {key!r}: unknown {kind} 'bogus_name'; choose one of [" in msg
    assert repr(valid) in msg  # the valid names are listed
    if key not in ("rollout.engine", "model.kind"):  # those two only load with their partners
        node = load_config(cls, None, [*base, f"{key}={valid}"])
        for part in key.split("."):
            node = getattr(node, part)
        assert node == valid


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_check_prints_the_resolved_config_and_exits_0(grpo_world, tmp_path):
    out = tmp_path / "run"
    overrides = [f"model.path={grpo_world['model']}", f"data.train={grpo_world['train']}",
                 f"data.heldout={grpo_world['heldout']}", f"trainer.out_dir={out}", "algo.clip_high=0.3"]
    res = _invoke("train", "--check", *overrides)
    assert res.exit_code == 0, res.output
    printed = yaml.safe_load(res.stdout)
    assert printed["algo"]["clip_high"] == 0.3 and printed["model"]["path"] == grpo_world["model"]
    assert printed == load_config(GRPOConfig, None, overrides).model_dump(mode="json")
    assert not out.exists()  # nothing started, nothing written


def test_check_lists_every_problem_with_its_key_and_value(grpo_world, tmp_path):
    bad_rows = tmp_path / "bad.jsonl"
    row = json.loads(Path(grpo_world["train"]).read_text().splitlines()[0])
    bad_rows.write_text(json.dumps({**row, "prompt": "not a list"}) + "\n")
    empty = tmp_path / "empty_model"
    empty.mkdir()
    res = _invoke(
        "train", "--check", f"model.path={empty}", f"data.train={bad_rows}",
        f"data.heldout={tmp_path / 'nope.jsonl'}", "reward.sandbox_urls=[http://127.0.0.1:9]",
    )
    assert res.exit_code == 2
    err = res.stderr
    assert "4 problem(s) before starting" in err
    assert f"model.path='{empty}': holds no model (no config.json)" in err
    assert f"data.train='{bad_rows}': row 0: prompt:" in err
    assert f"data.heldout='{tmp_path / 'nope.jsonl'}': does not exist" in err
    assert "reward.sandbox_urls[0]='http://127.0.0.1:9': does not answer (ConnectError)" in err
    # config errors are listed too, all of them, before anything else is looked at
    res = _invoke("train", "--check", "algo.advantage=grpoo", "rollout.sampler.alg=bogus")
    assert res.exit_code == 2 and "'algo.advantage'" in res.stderr and "'rollout.sampler.alg'" in res.stderr


def test_stages_fail_in_one_line_on_a_missing_model_folder(tmp_path):
    """Not a traceback minutes later: exit 2 and one line naming the key and the path."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "hi", "response": "there"}\n')
    for stage, extra in (("train", []), ("sft", [f"data.files=[{data}]"]), ("pretrain", [f"data.files=[{data}]"])):
        out = subprocess.run(
            [sys.executable, "-m", "rlvr.cli", stage, f"model.path={tmp_path / 'missing'}", *extra],
            capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 2, (stage, out.stderr)
        assert "Traceback" not in out.stderr
        assert f"model.path='{tmp_path / 'missing'}': does not exist" in out.stderr, out.stderr


def test_sft_and_pretrain_check(tmp_path, grpo_world):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "hi", "response": "there"}\n')
    res = _invoke("sft", "--check", f"model.path={grpo_world['model']}", f"data.files=[{data}]")
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.stdout)["data"]["files"] == [str(data)]
    res = _invoke("pretrain", "--check", "model.init={}", f"model.tokenizer={tmp_path}", f"data.files=[{data}, {tmp_path / 'x'}]")
    assert res.exit_code == 2
    assert f"data.files[1]='{tmp_path / 'x'}': does not exist" in res.stderr
    assert f"model.tokenizer='{tmp_path}': is neither 'qwen' nor a tokenizer folder" in res.stderr
