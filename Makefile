# cnnjax: two commands on a fresh Debian/Ubuntu machine.
#   make demo   installs everything, then runs the main job on the offline default data
#   make test   installs everything, then runs the test suite (what CI runs)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup system-data demo test test-slow lint format clean

setup: system-data $(VENV)/.installed

# The offline default dataset comes from Debian's package; elsewhere TFDS downloads.
system-data:
	@if [ ! -d $(FMNIST) ] && command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q dataset-fashion-mnist; }; \
	fi
	@[ -d $(FMNIST) ] && echo "offline data: $(FMNIST)" || echo "offline data: not installed (no apt); TFDS will download"

$(VENV)/.installed: pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all]'
	@touch $@

demo: setup
	$(BIN)/cnnjax demo

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check cnnjax tests experiments benchmarks
	$(BIN)/ruff format --check cnnjax tests experiments benchmarks

format: setup
	$(BIN)/ruff format cnnjax tests experiments benchmarks
	$(BIN)/ruff check --fix cnnjax tests experiments benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
