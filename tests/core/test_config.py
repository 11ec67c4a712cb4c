from __future__ import annotations

import subprocess
import sys
from typing import Literal

import pytest

from rlvr.config import Config, ConfigError, apply_overrides, load_config


class Optim(Config):
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.95)


class Recipe(Config):
    name: str = "run"
    steps: int = 10
    weighting: Literal["inverse_t", "linear", "cart"] = "cart"
    optim: Optim = Optim()


def test_defaults_yaml_and_overrides_compose(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 20\noptim:\n  lr: 0.001\n")
    cfg = load_config(Recipe, path, ["optim.betas=[0.8, 0.99]", "name=abc"])
    assert cfg.steps == 20
    assert cfg.optim.lr == 0.001
    assert cfg.optim.betas == (0.8, 0.99)
    assert cfg.name == "abc"
    assert cfg.weighting == "cart"


def test_override_values_are_parsed_like_yaml():
    data = apply_overrides({}, ["a.b=3", "a.c=1e-4", "d=null", "e=true", "f=hello"])
    assert data == {"a": {"b": 3, "c": 1e-4}, "d": None, "e": True, "f": "hello"}


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown config key 'optim.lrr'"):
        load_config(Recipe, None, ["optim.lrr=1"])


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError) as exc:
        load_config(Recipe, None, ["steps=many"])
    assert "'steps'" in str(exc.value) and "'many'" in str(exc.value)
    with pytest.raises(ConfigError, match="'weighting'"):
        load_config(Recipe, None, ["weighting=cosine"])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(Recipe, None, ["steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Recipe, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a value"):
        load_config(Recipe, None, ["name=a", "name.x=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Recipe, bad)


def test_cli_reports_config_error_and_exits_nonzero(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "rlvr.cli", "sft", "no_such_key=1"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "unknown config key 'no_such_key'" in out.stderr


class Custom(Config):
    optim: Optim = Optim(lr=0.5)


def test_partial_section_keeps_the_sections_own_defaults():
    cfg = load_config(Custom, None, ["optim.betas=[0.1, 0.2]"])
    assert cfg.optim.lr == 0.5  # not Optim's class default 1e-5
    assert cfg.optim.betas == (0.1, 0.2)
