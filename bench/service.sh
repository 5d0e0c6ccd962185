#!/usr/bin/env bash
# Benchmark: the reference service (zdd-demo, GET /) against a bare hyper hello-world
# (crates/demo/examples/bare_hyper.rs), same load tool, same connections, same duration, in one
# run; plus idle memory (RSS) and time from start to ready. Prints a Markdown section.
#
#   bench/service.sh                      # 10s per round, 64 connections, 3 alternating rounds
#   DURATION=3s ROUNDS=1 bench/service.sh # a quick check
#
# Uses wrk and curl, installed when missing (bench/peers.sh). Release builds; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
TARGET_RATIO=0.90

. bench/peers.sh
need_peers wrk curl

cargo build --release --quiet -p zdd-demo --bin zdd-demo --example bare_hyper
DEMO_BIN=target/release/zdd-demo
BARE_BIN=target/release/examples/bare_hyper

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

now_ns() { date +%s%N; }

# Polls $1 until it answers 200; prints the milliseconds from $2 (start, ns) to that answer.
wait_ready_ms() {
  local url=$1 started=$2 deadline=$(( $(date +%s) + 20 ))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "bench/service.sh: $url never answered 200" >&2
      exit 1
    fi
    sleep 0.002
  done
  echo $(( ($(now_ns) - started) / 1000000 ))
}

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# wrk's latency distribution prints e.g. "     99%    1.23ms"; converted to milliseconds.
p99_ms() {
  awk '$1 == "99%" {
    value = $2; unit = value; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", value);
    if (unit == "us") value /= 1000; else if (unit == "s") value *= 1000; else if (unit == "m") value *= 60000;
    printf "%.2f", value
  }'
}
requests_per_s() { awk '$1 == "Requests/sec:" { printf "%.0f", $2 }'; }
requests_total() { awk '$2 == "requests" && $3 == "in" { print $1 }'; }
# CPU time (user + system, clock ticks) the process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLOCK_TICKS=$(getconf CLK_TCK)
errors() { awk '/Non-2xx|Socket errors/ { print }' | tr '\n' ' '; }

DEMO_PORT=$(free_port)
started=$(now_ns)
PORT=$DEMO_PORT BIND=127.0.0.1 APP_VERSION=v1 DRAIN_DELAY=0s RUST_LOG=warn "$DEMO_BIN" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
DEMO_READY_MS=$(wait_ready_ms "http://127.0.0.1:$DEMO_PORT/readyz" "$started")

BARE_PORT=$(free_port)
started=$(now_ns)
PORT=$BARE_PORT "$BARE_BIN" 2>/dev/null &
BARE_PID=$!
PIDS+=("$BARE_PID")
BARE_READY_MS=$(wait_ready_ms "http://127.0.0.1:$BARE_PORT/" "$started")

sleep 1 # let both settle before reading idle memory
DEMO_IDLE_RSS=$(rss_mib "$DEMO_PID")
BARE_IDLE_RSS=$(rss_mib "$BARE_PID")

# Server CPU per request is the figure least disturbed by other load on the machine: it counts
# only the server's own work, however much CPU the machine lets it have.
load() { # pid port -> "req/s p99 cpu_us_per_request errors"
  local output before after
  before=$(cpu_ticks "$1")
  output=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$2/")
  after=$(cpu_ticks "$1")
  local cpu_us
  cpu_us=$(python3 -c "print(f'{($after - $before) * 1e6 / $CLOCK_TICKS / max($(requests_total <<<"$output"), 1):.1f}')")
  echo "$(requests_per_s <<<"$output") $(p99_ms <<<"$output") $cpu_us $(errors <<<"$output")"
}

rows=()
best_demo=0; best_bare=0; best_demo_p99=""; best_bare_p99=""
demo_cpu=(); bare_cpu=()
for round in $(seq 1 "$ROUNDS"); do
  # Alternating order, so neither server always runs on a cooler (or hotter) machine.
  if (( round % 2 == 1 )); then order="bare demo"; else order="demo bare"; fi
  for which in $order; do
    if [ "$which" = bare ]; then pid=$BARE_PID port=$BARE_PORT; else pid=$DEMO_PID port=$DEMO_PORT; fi
    read -r rps p99 cpu errs <<<"$(load "$pid" "$port")"
    rows+=("| $round | $which | $rps | $p99 | $cpu | ${errs:-none} |")
    if [ "$which" = bare ]; then bare_cpu+=("$cpu"); else demo_cpu+=("$cpu"); fi
    if [ "$which" = bare ] && (( rps > best_bare )); then best_bare=$rps; best_bare_p99=$p99; fi
    if [ "$which" = demo ] && (( rps > best_demo )); then best_demo=$rps; best_demo_p99=$p99; fi
  done
done
DEMO_LOADED_RSS=$(rss_mib "$DEMO_PID")
BARE_LOADED_RSS=$(rss_mib "$BARE_PID")
RATIO=$(python3 -c "print(f'{$best_demo / $best_bare:.2f}')")
median() { python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.1f}')" "$@"; }
DEMO_CPU=$(median "${demo_cpu[@]}")
BARE_CPU=$(median "${bare_cpu[@]}")
CPU_RATIO=$(python3 -c "print(f'{$BARE_CPU / $DEMO_CPU:.2f}')")
VERDICT=$(python3 -c "print('meets' if $best_demo / $best_bare >= $TARGET_RATIO else 'misses')")

cat <<MARKDOWN
## Reference service vs bare hyper (GET /)

\`bench/service.sh\` with DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS ROUNDS=$ROUNDS;
load tool: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo);
release builds, loopback, the load tool on the same cores as the servers.

| | bare hyper | zdd-demo | ratio |
|---|---:|---:|---:|
| throughput, best round (req/s) | $best_bare | $best_demo | **${RATIO}x** |
| p99 latency of that round (ms) | $best_bare_p99 | $best_demo_p99 | |
| server CPU per request, median (µs) | $BARE_CPU | $DEMO_CPU | **${CPU_RATIO}x** (bare / demo) |
| idle RSS (MiB) | $BARE_IDLE_RSS | $DEMO_IDLE_RSS | |
| RSS after the load (MiB) | $BARE_LOADED_RSS | $DEMO_LOADED_RSS | |
| start to ready (ms; /readyz 200 for zdd-demo, first 200 for bare) | $BARE_READY_MS | $DEMO_READY_MS | |

zdd-demo $VERDICT the target of ${TARGET_RATIO}x the bare server's throughput. zdd-demo answers a JSON body
(version, host, uptime) with \`X-Version\`, through axum routing, request metrics and the drain
machinery; the bare server answers \`Hello, World!\` straight from hyper. On a shared machine the
throughput of a round swings with other load; the server CPU time per request (from /proc, over
each round) moves much less, and its ratio estimates the throughput ratio when the servers are
CPU-bound. Start to ready is measured by polling with curl (a few ms of resolution).

| round | server | req/s | p99 (ms) | server CPU per request (µs) | errors |
|---:|---|---:|---:|---:|---|
$(printf '%s\n' "${rows[@]}")
MARKDOWN
