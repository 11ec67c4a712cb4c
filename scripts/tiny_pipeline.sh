#!/usr/bin/env bash
# The tiny world end to end on CPU: make data -> diffusion pretraining -> SFT (two stages) -> held-out pass@1.
# Usage: scripts/tiny_pipeline.sh [RUN_DIR]   (default runs/tiny; extra overrides via PRETRAIN_ARGS/SFT_ARGS)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/tiny}
PY=${PY:-.venv/bin/python}
RLVR="$PY -m rlvr.cli"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} DS_ACCELERATOR=${DS_ACCELERATOR:-cpu}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)

$RLVR world make-data "$RUN/data"
t0=$(date +%s)
# shellcheck disable=SC2086
$RLVR pretrain -c recipes/configs/tiny/pretrain.yaml \
  model.tokenizer="$RUN/data/tokenizer" data.files="[$RUN/data/corpus/train.jsonl]" loop.out_dir="$RUN/pretrain" \
  ${PRETRAIN_ARGS:-}
t1=$(date +%s)
# shellcheck disable=SC2086
$RLVR sft -c recipes/configs/tiny/sft.yaml \
  model.path="$RUN/pretrain/model" data.files="[$RUN/data/sft/train.jsonl]" loop.out_dir="$RUN/sft" \
  ${SFT_ARGS:-}
# second SFT stage at half the lr: 3000 steps give ~4% held-out pass@1, 3000 more ~20% (BENCHMARKS.md)
# shellcheck disable=SC2086
$RLVR sft -c recipes/configs/tiny/sft.yaml \
  model.path="$RUN/sft/model" data.files="[$RUN/data/sft/train.jsonl]" loop.out_dir="$RUN/sft2" optim.lr=5e-4 \
  ${SFT_ARGS:-}
t2=$(date +%s)
$RLVR world plot "$RUN/pretrain" "$RUN/sft" "$RUN/sft2" --out "$RUN/loss_curves.png"
$RLVR world eval --model "$RUN/sft2/model" --data "$RUN/data/rl/heldout.jsonl" --out "$RUN/eval.json" ${EVAL_ARGS:-}
t3=$(date +%s)
echo "tiny world: pretrain $((t1 - t0))s, sft $((t2 - t1))s, eval $((t3 - t2))s, total $((t3 - start))s"
echo "loss curves: $RUN/loss_curves.png; per-task samples: $RUN/eval.json"
