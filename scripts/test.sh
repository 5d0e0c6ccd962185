#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Works on a fresh machine with only the
# Rust toolchain (and the Python 3 the machine comes with): it installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== deploy/kubernetes manifests" && deploy/kubernetes/tests/run.sh
echo "== cargo test"
cargo test --workspace
