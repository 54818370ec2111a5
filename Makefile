# peakrec developer commands. Everything installs into ./.venv; nothing is needed beyond the
# Rust toolchain and Python 3.10+ with pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: all venv build build-runtime test test-rust test-python bench bench-report loadgen lint fmt demo wheels clean protos

all: build

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Dependencies are re-installed only when pyproject.toml changes. scripts/requirements.py reads it with
# tomllib, or on Python 3.10 with tomli (installed first).
$(VENV)/.deps-%: pyproject.toml scripts/requirements.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet "maturin>=1.7,<2" "tomli>=1.1; python_version < '3.11'"
	$(BIN)/python scripts/requirements.py $(if $(filter dev,$*),test dev) > $(VENV)/requirements-$*.txt
	$(BIN)/python -m pip install --quiet -r $(VENV)/requirements-$*.txt
	touch $@

# Runtime dependencies only (make demo) or with the test and dev extras (everything else).
venv: $(VENV)/.deps-dev

# Builds the Rust extension in release mode into the virtualenv (incremental).
build: venv
	$(BIN)/maturin develop --release --quiet

build-runtime: $(VENV)/.deps-runtime
	$(BIN)/maturin develop --release --quiet

test: build test-rust test-python

test-rust:
	cargo test --release -p peakrec-core --quiet

test-python: build
	$(BIN)/python -m pytest tests --benchmark-disable -q

# The open-loop load generator of bench/test_bench_overload.py (Rust: grpc.aio cannot offer 10x from one core).
loadgen:
	cargo build --release --quiet --manifest-path bench/loadgen/Cargo.toml

# Saves the run as pytest-benchmark JSON (bench/results/), then regenerates README's bench-table
# block and docs/bench/{speedups,groups}.png from it (scripts/bench_report.py; `make bench-report` alone).
bench: build loadgen
	mkdir -p bench/results
	$(BIN)/python -m pytest bench --benchmark-only --benchmark-columns=min,median,max,rounds -q -s \
		--benchmark-json=bench/results/latest.json
	$(MAKE) bench-report

bench-report: venv
	$(BIN)/python scripts/bench_report.py bench/results/latest.json --readme README.md --plots docs/bench

lint: build  # stubtest checks _core.pyi against the built module
	cargo fmt --all --check
	cargo clippy --release --all-targets -- -D warnings
	cargo fmt --manifest-path bench/loadgen/Cargo.toml --check
	cargo clippy --release --manifest-path bench/loadgen/Cargo.toml -- -D warnings
	$(BIN)/ruff check python tests bench scripts
	$(BIN)/ruff format --check python tests bench scripts
	# _core.pyi against the built module
	$(BIN)/python -m mypy.stubtest peakrec._core --mypy-config-file pyproject.toml

fmt: venv
	cargo fmt --all
	$(BIN)/ruff format python tests bench scripts
	$(BIN)/ruff check --fix python tests bench scripts

# Installs runtime dependencies only; the `peakrec` command is then .venv/bin/peakrec.
demo: build-runtime
	$(BIN)/python -m peakrec.demo

# Wheels for every CPython 3.10-3.13 found here plus an sdist into dist/, each wheel installed into a
# fresh virtualenv and smoke-tested (CLI, a small bundle built, verified and queried). Other platforms
# (manylinux x86_64/aarch64 in containers): .github/workflows/wheels.yml.
wheels: $(VENV)/.deps-runtime
	bash scripts/wheels.sh

clean:
	rm -rf target bench/loadgen/target dist $(VENV) python/peakrec/*.so

# Regenerates the committed gRPC code from protos/ (tests/test_protos_current.py checks it is current).
protos: venv
	$(BIN)/python -m peakrec.service.protogen
