# cnnjax: two commands on a fresh Debian/Ubuntu machine.
#   make demo   installs everything, then runs the main job on the offline default data
#   make test   installs everything, then runs the test suite (what CI runs)
#   make bench  installs PyTorch, TensorFlow and Keras too, then trains beside them on the CPU

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist
TCMALLOC := /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4

.PHONY: setup system-packages demo test test-slow bench-setup bench bench-quick lint format docs docs-serve clean

setup: system-packages $(VENV)/.installed

# Debian packages, where apt exists: the offline default dataset (elsewhere TFDS downloads)
# and tcmalloc, which the `cnnjax` command runs its training under (cnnjax/_malloc.py).
system-packages:
	@for pair in "dataset-fashion-mnist:$(FMNIST)" "libtcmalloc-minimal4:$(TCMALLOC)"; do \
	  pkg=$${pair%%:*}; path=$${pair#*:}; \
	  if ! ls $$path >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get install -y -q $$pkg >/dev/null 2>&1 || \
	    { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$pkg; }; \
	  fi; \
	done
	@[ -d $(FMNIST) ] && echo "offline data: $(FMNIST)" || echo "offline data: not installed (no apt); TFDS will download"
	@ls $(TCMALLOC) >/dev/null 2>&1 && echo "tcmalloc: installed" || echo "tcmalloc: not installed (no apt); training runs on the system malloc"

$(VENV)/.installed: pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all]'
	@touch $@

demo: setup
	$(BIN)/cnnjax demo

# What CI runs (.ci/run): lint, the test suite (slow tests excluded), the strict docs build.
test: setup lint
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory docs

test-slow: setup
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -q -m slow

# cnnjax beside PyTorch, Keras 3 on TensorFlow and Keras 3 on JAX (benchmarks/side_by_side.py):
# full Fashion-MNIST, both models, 5 epochs; the table lands in benchmarks/results/.
# torch is pinned: here 2.13.0 is a local CPU wheel (pip find-links); unpinned, pip would
# download a multi-GB CUDA build.
bench-setup: setup
	$(BIN)/python -m pip install -q torch==2.13.0 tensorflow keras

bench: setup bench-setup
	$(BIN)/python benchmarks/side_by_side.py

bench-quick: setup bench-setup
	$(BIN)/python benchmarks/side_by_side.py --quick

# The docs site, built strictly: a broken reference or a stale command output fails.
docs: setup
	$(BIN)/python docs/refresh.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -q

docs-serve: setup
	$(BIN)/mkdocs serve

lint: setup
	$(BIN)/ruff check cnnjax tests experiments benchmarks
	$(BIN)/ruff format --check cnnjax tests experiments benchmarks
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format cnnjax tests experiments benchmarks
	$(BIN)/ruff check --fix cnnjax tests experiments benchmarks

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .ruff_cache .hypothesis
