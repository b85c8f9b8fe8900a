#!/usr/bin/env bash
# Create (or reuse) .venv-verl, the env that tests labkit's verl plug-in on a CPU machine.
#
# verl 0.9.1 pins transformers<5.11 (ours: 5.23), so it gets its own env:
#   1. torch==2.13.0 first, on its own: the CPU build (a loose torch pulls a multi-GB CUDA build).
#   2. verl==0.9.1 with --no-deps: its full dependency list (vllm-free but with ray[default], wandb,
#      peft, tensorboard, torchdata, ...) is not needed to import and test the loss.
#   3. The minimal set its import chain needs, pinned in requirements/verl-ci.txt.
# labkit itself is not installed: callers put the checkout on PYTHONPATH (make test-verl does).
# The env is reused while its stamp holds the hash of this script and the pins (so it may live
# outside the checkout, e.g. in a cache shared by CI runs). Prints the setup time.
# Usage: scripts/setup_verl_env.sh [VENV_DIR]   (default .venv-verl, relative to the repo root)
# Exit code 3 means verl could not be installed (CI skips the verl step with a message then).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-verl}"
PYTHON="${PYTHON:-python3}"
PINS=requirements/verl-ci.txt
STAMP="$VENV/.installed"

KEY=$(cat "$0" "$PINS" | sha256sum | cut -c1-16)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" ]]; then
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
    numpy packaging pytest pytest-timeout
# Fail here, not in the test, when the recipe stops producing a working env.
"$VENV/bin/python" -c "import verl.trainer.ppo.core_algos, verl.workers.utils.losses, verl.utils.config"

echo "$KEY" > "$STAMP"
echo "setup_verl_env: $VENV ready in $(( $(date +%s) - start )) s"
