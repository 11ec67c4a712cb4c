"""GRPO with verifiable rewards for a diffusion code LM (Dream-Coder RL recipe; the main job).

Run: ``rlvr train -c recipes/configs/tiny/grpo.yaml`` (2-core CPU: local Ray, Docker sandbox, DeepSpeed
on CPU) or ``rlvr train -c recipes/configs/qwen2.5-coder-7b/grpo.yaml`` on a GPU Ray cluster.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rlvr.grpo.config import GRPOConfig
from rlvr.preflight import Problem, model_folder, prompt_rows, sandbox_urls

__all__ = ["CONFIG_CLASS", "check", "main"]

CONFIG_CLASS = GRPOConfig


def check(cfg: GRPOConfig, connect: bool = True) -> list[Problem]:
    """Everything :func:`main` needs that can be checked without starting (see :mod:`rlvr.preflight`):
    the model folder (with its tokenizer), the prompt rows against the schema, the memory plan when
    ``trainer.gpu`` names a GPU (``auto`` plans once the cluster is up), and (``connect``, as ``--check``
    does) the sandbox URLs; a run instead waits for the replicas (``reward.sandbox_wait_s``)."""
    model = model_folder("model.path", cfg.model.path, need_tokenizer=True)
    problems = model + prompt_rows("data.train", cfg.data.train) + prompt_rows("data.heldout", cfg.data.heldout)
    if not model and cfg.trainer.gpu not in (None, "auto"):  # the memory plan (`rlvr plan`) on the named GPU
        from rlvr.plan import fit_problem

        verdict = fit_problem(cfg)
        problems += [Problem("trainer.gpu", cfg.trainer.gpu, verdict)] if verdict else []
    return problems + (sandbox_urls("reward.sandbox_urls", cfg.reward.sandbox_urls) if connect else [])


def main(cfg: GRPOConfig) -> dict:
    from rlvr.grpo.controller import Controller

    with Controller(cfg) as controller:
        summary = controller.run()
    table = Table(title="GRPO run")
    table.add_column("held-out pass@1 before RL")
    table.add_column("after RL")
    table.add_column("train reward, first quarter of steps")
    table.add_column("last quarter")
    table.add_column("policy")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    table.add_row(
        fmt(summary["pass@1_before"]),
        fmt(summary["pass@1_after"]),
        fmt(summary.get("train_reward_first_quarter")),
        fmt(summary.get("train_reward_last_quarter")),
        summary["final_model"],
    )
    Console().print(table)
    return summary
