#!/usr/bin/env bash
# The prepared GPU check (one run, ~5 min on an H100): bf16 scoring and training throughput, peak memory and
# effective MFU of decoder RMs (SmolLM2-135M and Llama-3.2-1B shapes, random weights built from config) on hh-shaped
# rows, rewardlab's prompt-shared packed rows vs length-sorted padded batches (and rewardlab's vllm: engine where vLLM
# is installed). Needs a Python with a CUDA torch and transformers (PYTHON=...); the numbers go to stdout as a markdown
# table and to $OUT/gpu_check.json.
#   bash benchmarks/gpu_check.sh            # the full check
#   bash benchmarks/gpu_check.sh --dry-run  # on the CPU with tiny models: checks that the script runs
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
"$PY" -c "import torch, transformers" || { echo "gpu_check: needs torch and transformers in $PY" >&2; exit 2; }
OUT_DIR=${OUT:-.}
PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" "$PY" benchmarks/gpu_check.py --large --json "$OUT_DIR/gpu_check.json" "$@"
