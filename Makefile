# Two commands do all the set-up on a fresh machine:
#   make run    the main job
#   make test   the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup run test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: setup
	$(BIN)/trainer demo --out out/demo

test: setup
	@command -v systemd-analyze >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq systemd >/dev/null; } || echo "systemd-analyze is missing: install the systemd package"
	$(BIN)/ruff check edge trainer calibration tests benchmarks tools
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check edge trainer calibration tests benchmarks tools
	$(BIN)/ruff format --check edge trainer calibration tests benchmarks tools
	$(BIN)/mypy

clean:
	rm -rf $(VENV) out
