#!/usr/bin/env bash
# The main job on a 2-core CPU machine: tiny world -> diffusion pretraining -> SFT -> GRPO with
# sandbox rewards. Prints held-out pass@1 before and after RL (also in $RUN/grpo/summary.json).
# Usage: scripts/main.sh [RUN_DIR]  (default runs/tiny; GRPO overrides via GRPO_ARGS)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/tiny}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} RAY_AUTH_MODE=disabled
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=${WANDB_MODE:-offline}

if [ -f "$RUN/sft2/model/config.json" ]; then
  echo "[main] reusing the SFT model in $RUN/sft2/model (delete it to retrain)"
else
  bash scripts/tiny_pipeline.sh "$RUN"
fi
start=$(date +%s)
# shellcheck disable=SC2086
.venv/bin/rlvr train -c recipes/configs/tiny/grpo.yaml \
  model.path="$RUN/sft2/model" data.train="$RUN/data/rl/train.jsonl" data.heldout="$RUN/data/rl/heldout.jsonl" \
  trainer.out_dir="$RUN/grpo" ${GRPO_ARGS:-}
echo "[main] GRPO took $(( $(date +%s) - start ))s; curves: $RUN/grpo/curves.png; summary: $RUN/grpo/summary.json"
