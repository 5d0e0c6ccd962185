#!/usr/bin/env bash
# Benchmark: the highest rate at which each zero-downtime strategy finishes with 0 failed requests,
# for the builtin router and for Traefik, found by bisection; beside it the rate the probe sustains
# through the same router with no rollout (the machine's limit: crates/zdd/examples/steady.rs), and
# the peak open descriptors and RSS of zdd and of the router. Prints a Markdown section.
#
#   bench/ceiling.sh                                  # both routers, the four strategies
#   ROUTERS=builtin STRATEGIES=rolling-update bench/ceiling.sh
#
# Release builds, loopback only; every run is bounded (a rollout's own deadlines, and a watchdog).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUTERS=${ROUTERS:-builtin traefik}
STRATEGIES=${STRATEGIES:-rolling-update blue-green canary-replicas canary-weight}
LOW=${LOW:-1000}             # a rate every run is expected to hold
HIGH=${HIGH:-60000}          # above what this machine can carry
STEADY_DURATION=${STEADY_DURATION:-8s}
PAUSE=${PAUSE:-1s}           # the canaries' pauses (the demo's --pause)
TRIES=${TRIES:-2}            # a failing step is tried again once: one stall of a shared machine
export PATH="$PWD/.venv/bin:$PATH"

scripts/install-test-deps.sh >&2
cargo build --release --quiet -p zdd --bin zdd --example steady
ZDD=$PWD/target/release/zdd
STEADY=$PWD/target/release/examples/steady
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Samples a process and its Traefik child every 100 ms until it exits: writes
# "zdd_fds zdd_rss_kib router_fds router_rss_kib" peaks to $2.
sample_peaks() { # pid file
  local pid=$1 out=$2 zf=0 zr=0 rf=0 rr=0 f r child
  while kill -0 "$pid" 2>/dev/null; do
    f=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    ((f > zf)) && zf=$f
    ((${r:-0} > zr)) && zr=${r:-0}
    for child in $(pgrep -P "$pid" -x traefik 2>/dev/null); do
      f=$(ls "/proc/$child/fd" 2>/dev/null | wc -l)
      r=$(awk '/^VmRSS:/ {print $2}' "/proc/$child/status" 2>/dev/null || echo 0)
      ((f > rf)) && rf=$f
      ((${r:-0} > rr)) && rr=${r:-0}
    done
    sleep 0.1
  done
  echo "$zf $zr $rf $rr" >"$out"
}

# One run at a rate: "pass|fail failed_by_kind" and the peaks in $work/peaks.
run_once() { # kind(steady|strategy) router rate
  local kind=$1 router=$2 rate=$3 json=$work/out.json pid
  rm -f "$json"
  if [ "$kind" = steady ]; then
    "$STEADY" --spec examples/rolling-update.yaml --zdd "$ZDD" --router "$router" \
      --rate "$rate" --duration "$STEADY_DURATION" >"$json" 2>"$work/err.log" &
  else
    "$ZDD" demo "$kind" --router "$router" --rate "$rate" --pause "$PAUSE" \
      --run-dir "$work/runs" --json "$json" >/dev/null 2>"$work/err.log" &
  fi
  pid=$!
  # Bounded: a run that hangs is stopped (SIGTERM, which zdd turns into a clean stop).
  # (Its output away from this function's: a sleeping watchdog must not hold the pipe open.)
  (sleep 300 && kill "$pid") >/dev/null 2>&1 &
  local watchdog=$!
  sample_peaks "$pid" "$work/peaks" >/dev/null 2>&1 &
  local sampler=$!
  wait "$pid" || true
  pkill -P "$watchdog" sleep 2>/dev/null || true
  wait "$sampler" || true
  python3 - "$json" <<'EOF'
import json, sys
try:
    data = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("fail no-result"); sys.exit()
report = data[0]["report"] if isinstance(data, list) else data
failed = report.get("failed", 1)
kinds = ",".join(f"{k}:{v}" for k, v in sorted(report.get("failed_by_kind", {}).items()) if v)
ok = failed == 0 and (not isinstance(data, list) or data[0].get("succeeded"))
print(("pass" if ok else "fail") + " " + (kinds or "-"))
EOF
}

# Tries a rate up to $TRIES times; prints "pass|fail kinds" and keeps the peaks of the last try.
try_rate() { # kind router rate
  local verdict
  for _ in $(seq 1 "$TRIES"); do
    verdict=$(run_once "$@")
    [ "${verdict%% *}" = pass ] && break
  done
  echo "$verdict"
}

# Bisection between LOW (assumed to pass) and HIGH; prints "ceiling peaks... kinds_above".
bisect() { # kind router
  local lo=$LOW hi=$HIGH mid verdict peaks="0 0 0 0" above="-"
  verdict=$(try_rate "$1" "$2" "$lo")
  if [ "${verdict%% *}" != pass ]; then
    echo "0 $(cat "$work/peaks") ${verdict#* }"
    return
  fi
  peaks=$(cat "$work/peaks")
  while (( hi - lo > lo / 20 && hi - lo > 250 )); do
    mid=$(( (lo + hi) / 2 ))
    verdict=$(try_rate "$1" "$2" "$mid")
    echo "  $1 $2 $mid: $verdict" >&2
    if [ "${verdict%% *}" = pass ]; then
      lo=$mid
      peaks=$(cat "$work/peaks")
    else
      hi=$mid
      above=${verdict#* }
    fi
  done
  echo "$lo $peaks $above"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
limit=$(ulimit -Hn)

echo "## Ceilings: the highest rate a rollout holds with 0 failed requests"
echo
echo "\`bench/ceiling.sh\`: bisection from $LOW to $HIGH requests/s (to within 5%; a failing step is"
echo "tried $TRIES times), each step one \`zdd demo STRATEGY --rate R --pause $PAUSE\` (3 replicas, the"
echo "examples' specs, the probe's default connection limit: rate × 2 s). No rollout: the same spec's"
echo "old version alone behind the same router with the probe for $STEADY_DURATION"
echo "(\`crates/zdd/examples/steady.rs\`): what this machine carries through that router. Peaks: open"
echo "descriptors and RSS sampled every 100 ms at the ceiling's run (zdd holds the probe and the builtin"
echo "router; Traefik is its own process). Open-file limit: $limit. $(nproc) CPUs, $(date -u +%F)."
echo
echo "| router | strategy | ceiling (req/s, 0 failed) | no rollout (req/s) | ceiling / no rollout | zdd peak fds | zdd peak RSS (MiB) | router peak fds | router peak RSS (MiB) | failures just above |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
for router in $ROUTERS; do
  read -r steady sf sr rf rr sabove < <(bisect steady "$router")
  echo "| $router | (no rollout) | | $steady | | $sf | $(mib "$sr") | ${rf/#0/-} | $(mib "$rr") | $sabove |"
  for strategy in $STRATEGIES; do
    read -r ceiling zf zr rf rr above < <(bisect "$strategy" "$router")
    share=$(awk -v c="$ceiling" -v s="$steady" 'BEGIN { if (s > 0) printf "%.2f", c / s; else print "n/a" }')
    echo "| $router | $strategy | **$ceiling** | $steady | $share | $zf | $(mib "$zr") | ${rf/#0/-} | $(mib "$rr") | $above |"
  done
done
echo
echo "Failures just above: the failed requests by kind at the lowest rate that failed (timeout: answers"
echo "later than the probe's 2 s; saturated: every connection slot busy; http_5xx, refused, reset: the"
echo "data plane). Timeouts with the no-rollout rate close to the ceiling mean the CPU (2 cores for the"
echo "probe, the router and up to 6 replicas) is the limit; peaks near the open-file limit would mean"
echo "descriptors."
