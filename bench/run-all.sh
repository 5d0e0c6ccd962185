#!/usr/bin/env bash
# Runs every benchmark in one go and writes BENCHMARKS.md from their Markdown sections.
# Each bench/<name>.sh measures zdd's part against a named peer in the same run and prints a section.
# Needs: wrk, nginx, haproxy (Debian), oha (cargo install oha), .venv/bin/traefik (scripts/install-test-deps.sh);
# bench/lifecycle.sh installs valgrind (Debian) for its instruction counts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export PATH="$PWD/.venv/bin:$HOME/.cargo/bin:$PATH"
for tool in wrk nginx haproxy oha; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing: apt-get install -y wrk nginx haproxy; cargo install oha" >&2; exit 2; }
done
cargo build --release --workspace --examples --bins

out=$(mktemp)
{
  echo "# Benchmarks"
  echo
  echo "Measured by \`bench/run-all.sh\` on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD),"
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))."
  echo "Every figure is a ratio against a peer measured in the same run on the same machine;"
  echo "absolute numbers vary from machine to machine and run to run, the ratios much less."
  echo
  for script in bench/service.sh bench/lifecycle.sh bench/probe.sh bench/router.sh; do
    [ -x "$script" ] || continue
    echo "running $script" >&2
    "$script"
    echo
  done
} >"$out"
mv "$out" BENCHMARKS.md
echo "wrote BENCHMARKS.md" >&2
