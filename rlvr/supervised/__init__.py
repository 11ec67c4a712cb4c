"""The supervised stages before RL: diffusion pretraining (AR-to-diffusion adaptation) and SFT.

One optimizer-step loop (:mod:`rlvr.supervised.loop`) on the shared DeepSpeed engine
(:mod:`rlvr.engine`), the data pipelines (packed pretraining blocks, chat SFT batches with random
truncation), and how a stage gets its model. The runnable recipes are ``rlvr.recipes.pretrain`` and
``rlvr.recipes.sft``; RL begins in :mod:`rlvr.grpo`.
"""
