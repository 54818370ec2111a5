# peakrec developer commands. Everything installs into ./.venv; nothing is needed beyond the
# Rust toolchain and Python 3.10+ with pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: all venv build test test-rust test-python bench lint fmt demo clean protos

all: build

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Dependencies are re-installed only when pyproject.toml changes.
$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "maturin>=1.7,<2" \
		$$($(BIN)/python -c "import tomllib;p=tomllib.load(open('pyproject.toml','rb'))['project'];print(' '.join(repr(d) for d in p['dependencies']+p['optional-dependencies']['test']+p['optional-dependencies']['dev']))" | tr -d "'")
	touch $@

venv: $(VENV)/.deps

# Builds the Rust extension in release mode into the virtualenv (incremental).
build: venv
	$(BIN)/maturin develop --release --quiet

test: build test-rust test-python

test-rust:
	cargo test --release -p peakrec-core --quiet

test-python: build
	$(BIN)/python -m pytest tests --benchmark-disable -q

bench: build
	$(BIN)/python -m pytest bench --benchmark-only --benchmark-columns=min,median,max,rounds -q -s

lint: build  # stubtest checks _core.pyi against the built module
	cargo fmt --all --check
	cargo clippy --release --all-targets -- -D warnings
	$(BIN)/ruff check python tests bench
	$(BIN)/ruff format --check python tests bench
	# _core.pyi against the built module
	$(BIN)/python -m mypy.stubtest peakrec._core --mypy-config-file pyproject.toml

fmt: venv
	cargo fmt --all
	$(BIN)/ruff format python tests bench
	$(BIN)/ruff check --fix python tests bench

demo: build
	$(BIN)/python -m peakrec.demo

clean:
	rm -rf target $(VENV) python/peakrec/*.so

# Regenerates the committed gRPC code from protos/ (tests/test_protos_current.py checks it is current).
protos: venv
	$(BIN)/python -m peakrec.service.protogen
