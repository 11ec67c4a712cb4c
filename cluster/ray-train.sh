#!/usr/bin/env bash
# Ray job entrypoint on a cluster started from cluster/ray-cluster.yaml (runs on the head node):
#
#   RAY_ADDRESS=http://127.0.0.1:8265 ray job submit -- bash ~/rlvr/cluster/ray-train.sh [key=value ...]
#
# Finds the sandbox replicas on the Ray nodes that advertise the `sandbox` resource, waits until they
# are healthy, then runs the controller against the running cluster. Extra arguments are overrides.
set -euo pipefail
cd ~/rlvr
CONFIG=${CONFIG:-recipes/configs/qwen2.5-coder-7b/grpo.yaml}
export RAY_AUTH_MODE=disabled DS_ACCELERATOR=cuda PYTHONUNBUFFERED=1

sandbox_urls=$(.venv/bin/python cluster/sandbox_urls.py --ray-resource sandbox --replicas 4 --port 8080 --wait 900)
echo "[grpo] sandbox replicas: $sandbox_urls" >&2
exec .venv/bin/rlvr train -c "$CONFIG" trainer.ray_address=auto "reward.sandbox_urls=$sandbox_urls" "$@"
