#!/usr/bin/env bash
# make wheels: builds an sdist and one wheel per CPython 3.10-3.13 found on this machine into dist/,
# then installs each wheel into a fresh virtualenv (no source tree on sys.path) and smoke-tests it:
# `peakrec --version`, a small demo catalogue built into a bundle, verified and served from Python.
# PYTHONS="/path/python3.12 ..." overrides the search. Other platforms: .github/workflows/wheels.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}

find_python() {  # $1 = 3.10: python3.10 on PATH, else a pyenv-installed one
    local v=$1 p
    if p=$(command -v "python$v") && "$p" -c "" 2>/dev/null; then echo "$p"; return; fi
    for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/"python$v"; do
        if [ -x "$p" ]; then echo "$p"; return; fi
    done
}

if [ -z "${PYTHONS:-}" ]; then
    PYTHONS=""
    for v in 3.10 3.11 3.12 3.13; do
        p=$(find_python "$v" || true)
        if [ -n "$p" ]; then PYTHONS="$PYTHONS $p"; else echo "wheels: no python$v here, skipped" >&2; fi
    done
fi
[ -n "$PYTHONS" ] || { echo "wheels: no CPython 3.10-3.13 found" >&2; exit 1; }

if [ "${1:-}" != "--smoke-only" ]; then  # --smoke-only: test the wheels already in dist/
    rm -rf dist
    # shellcheck disable=SC2086
    "$BIN/maturin" build --release --sdist --out dist --interpreter $PYTHONS

    # The sdist must carry everything a source build needs.
    sdist=$(ls dist/peakrec-*.tar.gz)
    listing=$(tar tzf "$sdist")
    for needed in pyproject.toml Cargo.toml Cargo.lock rust/lib.rs rust/core/Cargo.toml \
        python/peakrec/__init__.py python/peakrec/py.typed python/peakrec/_core.pyi; do
        grep -q "^peakrec-[^/]*/$needed\$" <<<"$listing" || { echo "wheels: $sdist lacks $needed" >&2; exit 1; }
    done
    echo "wheels: $sdist has the Rust and Python sources"
fi

smoke=$(mktemp -d)
trap 'rm -rf "$smoke"' EXIT
for py in $PYTHONS; do
    tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    wheel=$(ls dist/peakrec-*-"$tag"-*.whl)
    venv="$smoke/$tag"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "$wheel"
    (
        cd "$smoke"  # not the source tree: the installed wheel must be what is imported
        "$venv/bin/peakrec" --version
        "$venv/bin/peakrec" demo-data --items 2000 --users 200 --dim 16 --seed 3 --out "$venv/demo" >/dev/null
        d="$venv/demo"
        "$venv/bin/peakrec" build --items "$d/items.jsonl" --users "$d/users.jsonl" \
            --item-vectors "$d/item_vectors.npy" --user-vectors "$d/user_vectors.npy" \
            --config "$d/build.toml" --min-recall 0.9 --out "$venv/bundles" --quiet >/dev/null
        "$venv/bin/peakrec" inspect "$venv/bundles" >/dev/null
        "$venv/bin/python" - "$venv/bundles" <<'PY'
import sys

import peakrec
from peakrec.pipeline.types import Page, Shopper, StorefrontRequest

assert "site-packages" in peakrec.__file__, peakrec.__file__
recommender = peakrec.Recommender(peakrec.load_bundle(sys.argv[1]))
page = recommender.storefront(StorefrontRequest(shopper=Shopper(region="CN-ZJ"), page=Page(page_size=10)))
assert len(page.item_ids) == 10, page
X = peakrec.FeatureHasher(n_features=1024, input_type="string").transform([["a", "b"]])
assert X.nnz == 2
print(f"wheels: {sys.version.split()[0]} ok: {peakrec.__file__}")
PY
    )
done
ls -l dist
