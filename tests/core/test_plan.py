"""`rlvr plan`: the model's size from its config, model states against DeepSpeed's own estimators, the
activation / logits terms on hand-computed shapes, the verdict and its knob, and `rlvr train` refusing a
config that cannot fit (at --check time for a named GPU, at start for trainer.gpu=auto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import Qwen2Config, Qwen2ForCausalLM
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.config import ConfigError, load_config
from rlvr.grpo.config import GRPOConfig
from rlvr.plan import (
    GIB,
    ModelShape,
    deepspeed_estimate,
    layer_saved_bytes,
    learner_activation_terms,
    logits_bytes,
    model_state_terms,
    plan_grpo,
    read_shape,
)

SEVEN_B = Path("recipes/configs/qwen2.5-coder-7b")
SEVEN_B_SHAPE = SEVEN_B / "dream-coder-7b.config.json"


@pytest.mark.parametrize("tied", [False, True])
def test_parameter_count_and_largest_layer_match_a_real_model(tied):
    from deepspeed.runtime.zero.stage3 import model_to_params

    hf_cfg = Qwen2Config(vocab_size=1000, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                         num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=tied)
    model = Qwen2ForCausalLM(hf_cfg)
    shape = ModelShape.from_config(hf_cfg)
    total, largest = model_to_params(model)  # DeepSpeed's own count (shared weights once)
    assert shape.params() == total == sum(p.numel() for p in set(model.parameters()))
    assert shape.largest_layer_params() == largest == 1000 * 64


def test_the_shipped_7b_shape_is_qwen25_coder_7b():
    shape = read_shape(SEVEN_B_SHAPE)
    assert shape.params() == 7_615_616_512  # Qwen2.5-7B's published count
    assert (shape.head_dim, shape.kv_dim) == (128, 512)


@pytest.mark.parametrize("ranks", [1, 8, 16])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_model_states_agree_with_deepspeeds_estimators(stage, ranks):
    p, largest = 7_615_616_512, 152_064 * 3584
    ours = sum(model_state_terms(p, largest, stage, ranks, bf16=True).values())
    theirs = deepspeed_estimate(p, largest, stage, ranks)
    if stage == 1:  # DeepSpeed's shared stage-1/2 estimator does not count stage 1's full bf16 gradients
        assert ours - theirs == pytest.approx(2 * p * (1 - 1 / ranks), abs=ranks)
    else:
        assert ours == pytest.approx(theirs, abs=ranks)


def test_model_state_terms_by_hand():
    assert model_state_terms(800, 100, 3, 8, bf16=True) == {
        "parameters": 200, "gradients": 400, "optimizer states": 1200, "ZeRO-3 gathered layer": 400}
    assert model_state_terms(800, 100, 0, 8, bf16=True) == {
        "parameters": 1600, "gradients": 4800, "optimizer states": 9600}
    assert model_state_terms(800, 100, 2, 4, bf16=False) == {
        "parameters": 3200, "gradients": 800, "optimizer states": 1600}
    assert model_state_terms(800, 100, 3, 8, bf16=True, offload_optimizer=True)["optimizer states"] == 0
    assert deepspeed_estimate(800, 100, 0, 8) is None


def test_activation_and_logits_terms_by_hand():
    shape = ModelShape(vocab=100, hidden=8, layers=3, heads=2, kv_heads=1, head_dim=4, intermediate=16, tied=False)
    # per token, bf16: norms 2 * (4*8 + 2*8) + 2*8 = 112; attention 2*8 + 2*2*4 + 2*2*8 + 2*8 = 80; MLP 4*2*16 = 128
    assert layer_saved_bytes(shape, 1, 2) == 320
    # fp32: no upcast copies; norms 2 * 4*8 + 4*8 = 96; attention 4*8 + 2*4*4 + 2*4*8 + 4*8 = 160; MLP 256
    assert layer_saved_bytes(shape, 10, 4) == 5120
    assert learner_activation_terms(shape, 2, 5, 2, checkpointing=True) == {
        "activations": 3 * 10 * 8 * 2, "recomputed layer": 10 * 320 + 10 * 2 * 2 * 16}
    assert learner_activation_terms(shape, 2, 5, 2, checkpointing=False) == {"activations": 3 * 3200 + 10 * 16}
    # logits and their gradient in bf16 + two fp32 chunks of min(chunk, canvas) positions
    assert logits_bytes(rows=2, canvas=300, vocab=100, b=2, chunk=256) == 2 * 2 * 300 * 100 * 2 + 2 * 256 * 100 * 4
    assert logits_bytes(rows=2, canvas=10, vocab=100, b=2) == 2 * 2 * 10 * 100 * 2 + 2 * 10 * 100 * 4


def _seven_b(*overrides: str) -> GRPOConfig:
    return load_config(GRPOConfig, SEVEN_B / "grpo.yaml", list(overrides))


def test_the_shipped_7b_config_fits_its_stated_gpu_and_not_a_40g_one():
    shape = read_shape(SEVEN_B_SHAPE)
    plan = plan_grpo(_seven_b(), shape, "h100-80g")
    assert plan.fits, plan.verdict()
    assert plan.deepspeed_model_states == sum(
        t.bytes for t in plan.terms if t.name in ("parameters", "gradients", "optimizer states", "ZeRO-3 gathered layer"))
    small = plan_grpo(_seven_b(), shape, "a100-40g")
    assert not small.fits
    assert small.largest_term().name == "rollout model"
    assert "largest term: rollout model 14.2 GiB; shrink it with trainer.placement=separate" in small.verdict()
    # without gradient checkpointing the activations are the largest term, and the knob says so
    no_ckpt = plan_grpo(_seven_b("learner.deepspeed.gradient_checkpointing=false"), shape, "h100-80g")
    assert not no_ckpt.fits
    assert no_ckpt.largest_term().name == "activations"
    assert "learner.deepspeed.gradient_checkpointing=true" in no_ckpt.verdict()


def test_second_model_copies_are_sharded_like_the_policy():
    shape = read_shape(SEVEN_B_SHAPE)
    plan = plan_grpo(_seven_b("trainer.off_policy_overlap=true", "algo.kl_coef=0.01"), shape, "h100-80g")
    terms = {t.name: t.bytes for t in plan.terms}
    assert terms["behaviour model"] == terms["reference model"] == 2 * shape.params() // 8
    assert "behaviour model" not in {t.name for t in plan_grpo(_seven_b(), shape, "h100-80g").terms}


def test_a_sync_bucket_is_never_smaller_than_the_largest_tensor():
    shape = read_shape(SEVEN_B_SHAPE)
    terms = {t.name: t.bytes for t in plan_grpo(_seven_b(), shape, "h100-80g").terms}
    embedding = 2 * 152_064 * 3584  # bf16, larger than the 256 MB bucket: weight_sync.buckets sends it alone
    assert (terms["gathered weights"], terms["received bucket"]) == (2 * embedding, embedding)
    big = {t.name: t.bytes for t in plan_grpo(_seven_b("trainer.weight_sync_bucket_mb=4096"), shape, "h100-80g").terms}
    assert big["received bucket"] == 4096 * 2**20
    old = {t.name: t.bytes for t in plan_grpo(_seven_b("trainer.weight_sync=object_store"), shape, "h100-80g").terms}
    assert old["gathered weights"] == 2 * shape.params() and "received bucket" not in old


def test_a_config_needing_more_gpus_than_the_nodes_have_does_not_fit():
    cfg = _seven_b("learner.num_ranks=16", "rollout.num_workers=16")
    plan = plan_grpo(cfg, read_shape(SEVEN_B_SHAPE), "h100-80g", nodes=1)
    assert (plan.gpus_needed, plan.gpus_available, plan.fits) == (16, 8, False)
    assert plan_grpo(cfg, read_shape(SEVEN_B_SHAPE), "h100-80g", nodes=2).fits


def test_plan_cli_exit_codes_and_json(tmp_path):
    out = tmp_path / "plan.json"
    args = ["plan", "-c", str(SEVEN_B / "grpo.yaml"), "--model-config", str(SEVEN_B_SHAPE)]
    ok = CliRunner().invoke(app, [*args, "--gpu", "h100-80g", "--json", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "fits h100-80g" in ok.output and "DeepSpeed's estimator: 17.99 GiB" in ok.output
    data = json.loads(out.read_text())
    assert data["fits"] is True and data["gpu"] == "h100-80g"
    assert {t["term"] for t in data["terms"]} >= {"optimizer states", "logits", "rollout model", "KV cache"}
    bad = CliRunner().invoke(app, [*args, "--gpu", "a100-40g"])
    assert bad.exit_code == 1 and "does not fit a100-40g" in bad.output
    unknown = CliRunner().invoke(app, [*args, "--gpu", "v100"])
    assert unknown.exit_code == 2 and "--gpu 'v100'" in unknown.output
    missing = CliRunner().invoke(app, ["plan", "-c", str(SEVEN_B / "grpo.yaml")])
    assert missing.exit_code == 2
    assert "model.path='/checkpoints/Dream-Coder-v0-Instruct-7B': no config.json" in missing.output


def test_unknown_trainer_gpu_is_rejected_when_the_config_loads():
    with pytest.raises(ConfigError, match="unknown GPU 'rtx'; choose auto, null or one of a100-40g"):
        _seven_b("trainer.gpu=rtx")


def _seven_b_folder(tmp_path: Path) -> Path:
    """A folder with the 7B's config.json and stand-ins for weights and tokenizer: enough for the plan
    and for the path checks, which read no weights."""
    folder = tmp_path / "dream-coder-7b"
    folder.mkdir()
    (folder / "config.json").write_text(SEVEN_B_SHAPE.read_text())
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "tokenizer_config.json").write_text("{}")
    return folder


def test_train_check_refuses_a_config_that_cannot_fit_the_named_gpu(tmp_path, grpo_rows):
    folder = _seven_b_folder(tmp_path)
    common = ["train", "-c", str(SEVEN_B / "grpo.yaml"), "--check", f"model.path={folder}",
              f"data.train={grpo_rows}", "data.heldout=null", "reward.sandbox_urls=[]"]
    bad = CliRunner().invoke(app, [*common, "trainer.gpu=a100-40g"])
    assert bad.exit_code == 2, bad.output
    assert "trainer.gpu='a100-40g': does not fit a100-40g" in bad.output
    assert "largest term: rollout model" in bad.output and "trainer.placement=separate" in bad.output
    good = CliRunner().invoke(app, [*common, "trainer.gpu=h100-80g"])
    assert good.exit_code == 0, good.output


def test_trainer_gpu_auto_plans_on_the_probed_gpu(monkeypatch, tmp_path):
    from rlvr.grpo.controller import Controller

    folder = _seven_b_folder(tmp_path)
    monkeypatch.setattr("rlvr.plan.probe_gpu", lambda: ("NVIDIA A100-SXM4-40GB", 40 * GIB))
    controller = Controller.__new__(Controller)
    controller.cfg = _seven_b(f"model.path={folder}")
    with pytest.raises(ConfigError, match=r"trainer.gpu=auto \(NVIDIA A100-SXM4-40GB\): does not fit .*largest "
                                          r"term: rollout model"):
        controller._check_memory_plan()
    monkeypatch.setattr("rlvr.plan.probe_gpu", lambda: ("NVIDIA H100 80GB HBM3", 80 * GIB))
    controller._check_memory_plan()  # fits: returns
    controller.cfg = _seven_b(f"model.path={folder}", "learner.num_gpus_per_rank=0", "rollout.num_gpus_per_worker=0")
    monkeypatch.setattr("rlvr.plan.probe_gpu", lambda: pytest.fail("a CPU run must not probe for a GPU"))
    controller._check_memory_plan()


@pytest.fixture
def grpo_rows(tmp_path) -> str:
    from tests.grpo.conftest import _rows

    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows(3)))
    return str(path)


def test_the_7b_readme_carries_the_current_plan():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "scripts/plan_readme.py", "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_plan_check_benchmark_cases_use_the_plan_functions():
    """The benchmark's prediction is the plan's learner train phase (guards against the two drifting)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("plan_check", "benchmarks/plan_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    case = mod.CASES[0]
    shape = mod._shape(case)
    *_, rows, prompt, canvas, dtype, ckpt = case
    acts = learner_activation_terms(shape, rows, prompt + canvas, 4, ckpt)
    head = acts["activations"] + logits_bytes(rows, canvas, shape.vocab, 4)
    assert mod._predict(case) == max(head, acts["activations"] + acts["recomputed layer"]) + (
        shape.layers * shape.layer_params() * 4)
