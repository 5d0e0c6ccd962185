#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Works on a fresh Debian machine with the
# Rust toolchain and the Python 3 it comes with: scripts/install-test-deps.sh first installs what
# the tests need (pinned Python tools in .venv, npm packages, Debian packages when missing).
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
