# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edge_str-installed
DEMO_DIR ?= demo

.PHONY: venv test test-fast lint demo bench quality clean

venv: $(STAMP)

# pip quietly: no progress bars, no "new release of pip" notice.
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_PROGRESS_BAR := off

# torch is pinned first so pip takes the local CPU wheel instead of the CUDA build; numpy comes
# with it, or torch's first import (checking torchaudio) warns "Failed to initialize NumPy".
# torchaudio is then made CPU-only by tools/install_torchaudio_cpu.sh (see README).
$(STAMP): pyproject.toml tools/install_torchaudio_cpu.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "torch==2.13.0" "numpy>=1.24"
	bash tools/install_torchaudio_cpu.sh $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	# Build the fused FastGRNN kernel now rather than in the first test or training run;
	# without a compiler edge_str falls back to its PyTorch fused path (hence the "-").
	-$(BIN)/python -m edge_str.fused_ext
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

# The edit-test loop: everything but notebooks, kernel builds and end-to-end runs (marker slow).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

demo: $(STAMP)
	$(BIN)/python -m edge_str.demo --out $(DEMO_DIR)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

# The defaults against nn.GRU / nn.LSTM on five synth trees (issue 12); resumes where it stopped.
quality: $(STAMP)
	$(BIN)/python -m benchmarks.quality

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
