#!/usr/bin/env bash
# The main job on a 2-core CPU machine: tiny world -> diffusion pretraining -> SFT -> difficulty filter
# of the RL prompts -> RL-train / RL-held-out split -> GRPO with sandbox rewards. Prints pass@1 before and
# after RL on both held-out sets with the paired per-task gain and its 95% bootstrap CI (also in
# $RUN/grpo/summary.json, and $RUN/grpo/heldout_gain.png).
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
# Difficulty filter (Dream-Coder's offline RL-data filtering): the SFT model's pass rate on every RL
# prompt over 8 rollouts, then keep the prompts it solves sometimes but not always. Those it never or
# always solves only make zero-advantage groups. Once per SFT model (~6 minutes here).
if [ -f "$RUN/rl_filter/train.jsonl" ] && [ "$RUN/rl_filter/train.jsonl" -nt "$RUN/sft2/model/config.json" ]; then
  echo "[main] reusing the difficulty-filtered RL prompts in $RUN/rl_filter/train.jsonl"
else
  start=$(date +%s)
  rm -rf "$RUN/rl_filter"
  .venv/bin/rlvr eval run -c recipes/configs/tiny/difficulty.yaml \
    dataset="$RUN/data/rl/train.jsonl" model.path="$RUN/sft2/model" out_dir="$RUN/rl_filter/pass_rates"
  .venv/bin/rlvr data curate "$RUN/data/rl/train.jsonl" "$RUN/rl_filter/train.jsonl" \
    --pass-rates "$RUN/rl_filter/pass_rates/problems.jsonl" --min-pass-rate 0.01 --max-pass-rate 0.99 \
    --near-dup-threshold 1 --no-humaneval  # tiny-world prompts differ only in constants: exact dedup only
  echo "[main] difficulty filter took $(( $(date +%s) - start ))s"
fi
# RL-train / RL-held-out: an i.i.d. split of the filtered pool (same templates, prompts never trained on),
# to measure learning; the world's held-out set (unseen template/constant combinations) measures transfer
# and forgetting
if [ ! -f "$RUN/rl_split/heldout.jsonl" ] || [ "$RUN/rl_filter/train.jsonl" -nt "$RUN/rl_split/heldout.jsonl" ]; then
  .venv/bin/rlvr data split "$RUN/rl_filter/train.jsonl" "$RUN/rl_split/train.jsonl" "$RUN/rl_split/heldout.jsonl" \
    --fraction 0.2 --seed 0
fi
start=$(date +%s)
# shellcheck disable=SC2086
.venv/bin/rlvr train -c recipes/configs/tiny/grpo.yaml \
  model.path="$RUN/sft2/model" data.train="$RUN/rl_split/train.jsonl" \
  "data.heldout={rl_heldout: $RUN/rl_split/heldout.jsonl, transfer: $RUN/data/rl/heldout.jsonl}" \
  trainer.out_dir="$RUN/grpo" ${GRPO_ARGS:-}
echo "[main] GRPO took $(( $(date +%s) - start ))s; curves: $RUN/grpo/curves.png; summary: $RUN/grpo/summary.json"
