# Two commands do all the set-up on a fresh machine:
#   make run    the main job (core install only: no torch, no tensorflow)
#   make test   the tests (installs the dev, train, convert, studio and calibration extras too)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SRC    := edge studio trainer calibration tests benchmarks tools

.PHONY: setup setup-all run test lint clean

setup: $(VENV)/.core
setup-all: $(VENV)/.all

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.all: $(VENV)/.core
	$(BIN)/pip install --quiet -e '.[dev,train,convert,studio,calibration]'
	touch $@

run: setup
	$(BIN)/edge calibrate scale --sim --part 3001 --tilt 30 edge/data/sim/raw/3001/*/*.jpg
	$(BIN)/edge run --sim --parts 240

test: setup-all
	@command -v systemd-analyze >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq systemd >/dev/null; } || echo "systemd-analyze is missing: install the systemd package"
	@ls /usr/lib/*/libLLVM*19* >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq libllvm19 >/dev/null; } || echo "libLLVM 19 is missing: apt-get install libllvm19 (the path tracer's tests are skipped)"
	$(BIN)/ruff check $(SRC)
	$(BIN)/pytest -q

lint: setup-all
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) out
