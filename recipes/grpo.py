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
    problems = model + prompt_rows("data.train", cfg.data.train)
    sets = cfg.data.eval_sets()
    for name, path in sets.items():
        problems += prompt_rows("data.heldout" if isinstance(cfg.data.heldout, str) else f"data.heldout.{name}", path)
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
    if summary.get("eval"):
        sets = Table(title="held-out sets: per-task pass@1 before -> after, paired gain (95% bootstrap CI over tasks)")
        for col in ("set", "tasks x samples", "pass@1 before", "after", "gain [95% CI]", "pass@k after"):
            sets.add_column(col)
        for name, e in summary["eval"].items():
            g = e["gain_pass@1"]
            ks = "  ".join(f"{k} {v:.3f}" for k, v in e["after"].items() if k != "pass@1")
            sets.add_row(name, f"{e['tasks']} x {e['samples_per_task']}", fmt(e["before"]["pass@1"]),
                         fmt(e["after"]["pass@1"]), f"{g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]", ks)
        Console().print(sets)
    return summary
