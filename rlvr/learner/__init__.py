"""The GRPO learner: DeepSpeed data-parallel ranks (Ray actors) running the clipped diffusion policy loss."""

from rlvr.learner.ppo import ppo_update, select_copy_rows
from rlvr.learner.rank import LearnerRank

__all__ = ["LearnerRank", "ppo_update", "select_copy_rows"]
