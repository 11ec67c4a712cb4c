"""The DeepSpeed engine every training stage runs on: pretraining, SFT (:mod:`rlvr.supervised`) and the
GRPO learner ranks (:mod:`rlvr.learner`). ZeRO 0-3, AdamW, the LR schedule, gradient accumulation,
checkpoints that carry every RNG state, and the seeds a step draws its randomness from."""

from rlvr.engine.config import DeepSpeedSection, OptimConfig
from rlvr.engine.engine import Engine, build_ds_config, free_port, init_distributed, latest_tag, lr_schedule
from rlvr.engine.rng import rng_state, set_rng_state, step_generator, step_seed

__all__ = [
    "DeepSpeedSection",
    "Engine",
    "OptimConfig",
    "build_ds_config",
    "free_port",
    "init_distributed",
    "latest_tag",
    "lr_schedule",
    "rng_state",
    "set_rng_state",
    "step_generator",
    "step_seed",
]
