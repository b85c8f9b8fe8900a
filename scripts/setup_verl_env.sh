#!/usr/bin/env bash
# Create (or reuse) .venv-verl, the env that tests labkit's verl plug-in on a CPU machine.
#
# verl 0.9.1 pins transformers<5.11 (ours: 5.23), so it gets its own env:
#   1. torch==2.13.0 first, on its own: the CPU build (a loose torch pulls a multi-GB CUDA build).
#   2. verl==0.9.1 with --no-deps: its full dependency list (vllm-free but with ray[default], wandb,
#      peft, tensorboard, torchdata, ...) is not needed to import and test the loss.
#   3. The minimal set its import chain needs, pinned in requirements/verl-ci.txt.
#   4. labkit itself with --no-deps (the plug-in imports labkit and torch only).
# The env is reused when its stamp is newer than this script and the pins. Prints the setup time.
# Usage: scripts/setup_verl_env.sh [VENV_DIR]   (default .venv-verl, relative to the repo root)
# Exit code 3 means verl could not be installed (CI skips the verl step with a message then).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-verl}"
PYTHON="${PYTHON:-python3}"
PINS=requirements/verl-ci.txt
STAMP="$VENV/.installed"

if [[ -f "$STAMP" && "$STAMP" -nt "$0" && "$STAMP" -nt "$PINS" ]]; then
    echo "setup_verl_env: reusing $VENV"
    exit 0
fi

start=$(date +%s)
pip_install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
pip_install torch==2.13.0
if ! pip_install --no-deps -c "$PINS" verl; then
    echo "setup_verl_env: verl could not be installed from the package index" >&2
    exit 3
fi
pip_install -c "$PINS" ray tensordict hydra-core omegaconf transformers codetiming datasets pillow \
    numpy packaging pytest
pip_install --no-deps -e .
# Fail here, not in the test, when the recipe stops producing a working env.
"$VENV/bin/python" -c "import verl.trainer.ppo.core_algos, verl.workers.utils.losses, verl.utils.config"

touch "$STAMP"
echo "setup_verl_env: $VENV ready in $(( $(date +%s) - start )) s"
