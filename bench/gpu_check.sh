#!/usr/bin/env bash
# The whole GPU check in one go (issue: "Beyond one machine", GPU check). Needs python3 with torch,
# transformers, tokenizers and pytest; no network, no install. Writes into ${OUT:-bench/results}.
#   bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_nvidia_smi.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/gpu_pytest.log" || true  # report, then measure anyway
python3 bench/loss_cost.py --device cuda --repeats 50 --out "$OUT/loss_cost_cuda.json"
python3 bench/gpu_check.py --out "$OUT/gpu_check.json"
python3 bench/logprob_memory.py --out "$OUT/logprob_memory.json"
python3 bench/bandit_speed.py --device cuda --sizes 1,64,1024,4096,16384,65536 --threads 1 \
    --loop-runs 4 --repeats 2 --out "$OUT/bandit_speed_cuda.json"
