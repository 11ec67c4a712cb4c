"""The runnable recipes (``rlvr pretrain``, ``rlvr sft``, ``rlvr train``), each a typed config class and a
``main(cfg)``; their YAML configs are under ``configs/`` (tiny CPU world and the 7B GPU recipe)."""
