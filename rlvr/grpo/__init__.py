"""GRPO: the single controller that drives one RL run (prompts -> rollout actors -> rewards ->
group selection and advantages -> learner ranks -> weight sync), one module per stage of the step.
The actors it drives live in :mod:`rlvr.rollout` and :mod:`rlvr.learner`; the math in :mod:`rlvr.algos`."""
