"""Recipe configs: shipped YAMLs validate; bad keys and values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from rlvr.recipes.pretrain import PretrainConfig
from rlvr.recipes.sft import SFTConfig
from typer.testing import CliRunner

from rlvr.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "configs"


@pytest.mark.parametrize("name", ["tiny", "qwen2.5-coder-7b"])
def test_shipped_configs_validate(name):
    pre = load_config(PretrainConfig, CONFIGS / name / "pretrain.yaml")
    sft = load_config(SFTConfig, CONFIGS / name / "sft.yaml")
    assert pre.objective.weighting == "inverse_t"
    assert (sft.objective.weighting, sft.objective.cart_p, sft.data.cutoff) == (
        "cart",
        0.1,
        "random_with_input_pad",
    )
    assert (sft.optim.betas, sft.optim.weight_decay, sft.optim.grad_clip) == ((0.9, 0.95), 0.01, 1.0)
    if name != "tiny":
        assert pre.deepspeed.zero_stage == sft.deepspeed.zero_stage == 3


def test_sft_defaults_follow_the_reference():
    cfg = SFTConfig.model_validate({"model": {"path": "m"}, "data": {"files": ["a.jsonl"]}})
    assert (cfg.objective.weighting, cfg.objective.cart_p, cfg.objective.context) == ("cart", 0.1, "sequence")
    assert (cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay, cfg.optim.warmup_ratio) == (
        5e-6,
        (0.9, 0.95),
        0.01,
        0.1,
    )
    assert cfg.data.max_length == 4000 and cfg.objective.normalize == "masked_tokens"


@pytest.mark.parametrize(
    ("overrides", "key", "value"),
    [
        (["objective.weighting=bogus"], "objective.weighting", "bogus"),
        (["data.cutoff=tail"], "data.cutoff", "tail"),
        (["optim.lr=-1"], "optim.lr", "-1"),
        (["loop.stpes=3"], "loop.stpes", None),
        (["model.init.hidden_size=64"], "model", "exactly one of model.path"),
    ],
)
def test_bad_values_name_the_key(overrides, key, value):
    with pytest.raises(ConfigError) as err:
        load_config(SFTConfig, CONFIGS / "tiny" / "sft.yaml", overrides)
    assert key in str(err.value)
    if value:
        assert value in str(err.value)


def test_tiny_init_heads_must_divide():
    with pytest.raises(ConfigError, match="num_attention_heads=3"):
        load_config(PretrainConfig, CONFIGS / "tiny" / "pretrain.yaml", ["model.init.num_attention_heads=3"])


def test_cli_reports_config_error_and_exits_2():
    from rlvr.cli import app

    res = CliRunner().invoke(app, ["sft", "-c", str(CONFIGS / "tiny" / "sft.yaml"), "objective.cart_p=2"])
    assert res.exit_code == 2
    assert "objective.cart_p" in res.output


def test_grpo_eval_sampler_overrides_are_checked():
    from rlvr.grpo.config import GRPOConfig

    cfg = load_config(
        GRPOConfig,
        CONFIGS / "tiny" / "grpo.yaml",
        ["rollout.sampler.cache=prefix", "rollout.sampler.block_length=32", "trainer.eval_sampler={cache: none}"],
    )
    assert cfg.trainer.eval_sampler == {"cache": "none"}
    with pytest.raises(ConfigError, match=r"trainer.eval_sampler has unknown key\(s\) \['cahce'\]"):
        load_config(GRPOConfig, CONFIGS / "tiny" / "grpo.yaml", ["trainer.eval_sampler={cahce: none}"])
    with pytest.raises(ConfigError, match="cache"):
        load_config(GRPOConfig, CONFIGS / "tiny" / "grpo.yaml", ["trainer.eval_sampler={cache: bogus}"])


@pytest.mark.parametrize("name", ["tiny", "qwen2.5-coder-7b"])
def test_difficulty_configs_sample_as_the_grpo_rollouts(name):
    # the pass rates that filter RL prompts must come from the policy's own rollout distribution
    from rlvr.eval.harness import EvalConfig
    from rlvr.grpo.config import GRPOConfig

    diff = load_config(EvalConfig, CONFIGS / name / "difficulty.yaml")
    grpo = load_config(GRPOConfig, CONFIGS / name / "grpo.yaml")
    assert diff.sampler == grpo.rollout.sampler
    assert diff.n == grpo.rollout.n and diff.model.path == grpo.model.path
    if name == "tiny":  # scripts/main.sh: all RL prompts in, the curated ones (less an i.i.d. held-out 20%) to GRPO
        assert (diff.dataset, grpo.data.train) == ("runs/tiny/data/rl/train.jsonl", "runs/tiny/rl_split/train.jsonl")
        assert grpo.data.eval_sets() == {"rl_heldout": "runs/tiny/rl_split/heldout.jsonl",
                                         "transfer": "runs/tiny/data/rl/heldout.jsonl"}
    assert (diff.verifier, diff.verifier_kwargs) == (grpo.reward.verifier, grpo.reward.verifier_kwargs)
