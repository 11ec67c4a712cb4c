"""Write the memory plan of the shipped 7B GRPO config into its README (between the plan markers).

    .venv/bin/python scripts/plan_readme.py [--check]

The table is `rlvr plan`'s for Dream-Coder-v0-Instruct-7B's shape (dream-coder-7b.config.json) on the GPU
the config states (8 x H100 80GB); the verdicts on the other GPUs follow it. ``--check`` exits 1 when the
README differs from what the plan gives now (tests run it, so the table cannot drift from the code).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rlvr.config import load_config
from rlvr.grpo.config import GRPOConfig
from rlvr.plan import GPUS, markdown_table, plan_grpo, read_shape

FOLDER = Path(__file__).resolve().parent.parent / "recipes/configs/qwen2.5-coder-7b"
BEGIN, END = "<!-- plan:begin (scripts/plan_readme.py writes this) -->", "<!-- plan:end -->"
STATED_GPU = "h100-80g"


def section() -> str:
    cfg = load_config(GRPOConfig, FOLDER / "grpo.yaml", [])
    shape = read_shape(FOLDER / "dream-coder-7b.config.json")
    plan = plan_grpo(cfg, shape, STATED_GPU)
    lines = [
        BEGIN,
        f"`rlvr plan -c recipes/configs/qwen2.5-coder-7b/grpo.yaml --model-config "
        f"recipes/configs/qwen2.5-coder-7b/dream-coder-7b.config.json --gpu {STATED_GPU}` (GiB per GPU; a term "
        "counts in the phases it is resident in; the 8 learner ranks and 8 rollout workers share the node's 8 GPUs):",
        "",
        markdown_table(plan),
        "",
        f"- {plan.notes[0]}",
        f"- model states {sum(t.bytes for t in plan.terms if t.name in ('parameters', 'gradients', 'optimizer states', 'ZeRO-3 gathered layer')) / 2**30:.2f} GiB; "
        f"DeepSpeed's `estimate_zero3_model_states_mem_needs`: {plan.deepspeed_model_states / 2**30:.2f} GiB",
    ]
    for gpu in GPUS:
        lines.append(f"- `--gpu {gpu}`: {plan_grpo(cfg, shape, gpu).verdict()}")
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    readme = FOLDER / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"{readme}: no plan markers", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN, 1)
    new = head + section() + rest.split(END, 1)[1]
    if "--check" in sys.argv[1:]:
        if new != text:
            print(f"{readme}: the plan table is stale; run scripts/plan_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    print(f"wrote the plan into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
