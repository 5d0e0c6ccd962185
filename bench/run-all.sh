#!/usr/bin/env bash
# Runs every benchmark in one go and writes BENCHMARKS.md from their Markdown sections, header
# included (what ran, on what, how loaded the machine was, how long it took).
# Each bench/<name>.sh measures zdd's part against a named peer in the same run and prints a section.
# Installs the peers it measures when they are missing: wrk, nginx, haproxy (Debian; as root or via
# sudo), oha (cargo install), Traefik (.venv, scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export PATH="$PWD/.venv/bin:$HOME/.cargo/bin:$PATH"
. bench/peers.sh
need_peers wrk nginx haproxy curl oha
cargo build --release --workspace --examples --bins

SCRIPTS=${SCRIPTS:-bench/service.sh bench/lifecycle.sh bench/probe.sh bench/router.sh bench/ceiling.sh bench/soak.sh}
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
body=$(mktemp)
for script in $SCRIPTS; do
  [ -x "$script" ] || continue
  echo "running $script" >&2
  # A benchmark whose own check fails (soak.sh exits 1) still reports what it measured.
  "$script" >>"$body" || echo "($script exited $?: see its checks above)" >>"$body"
  echo >>"$body"
done
minutes=$(( ($(date +%s) - started + 59) / 60 ))

out=$(mktemp)
{
  echo "# Benchmarks"
  echo
  echo "Measured by \`bench/run-all.sh\` on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD),"
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), in one go"
  echo "($minutes min; load average $load_at_start when it started)."
  echo "Every figure is a ratio against a peer measured in the same run on the same machine;"
  echo "absolute numbers vary from machine to machine and run to run, the ratios much less."
  echo "Rerun \`bench/run-all.sh\` to rewrite this file."
  echo
  cat "$body"
} >"$out"
mv "$out" BENCHMARKS.md
rm -f "$body"
echo "wrote BENCHMARKS.md" >&2
