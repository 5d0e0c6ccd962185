#!/usr/bin/env bash
# Benchmark: the cost of the lifecycle layer alone. One axum app (GET / answers `Hello, World!`)
# served plain (hyper-util's auto builder per connection, as axum::serve does) and through
# zdd-lifecycle (with_probe_routes + serve: probes, request metrics, the drain machinery), both from
# crates/lifecycle/examples/bench_server.rs, in one run with the same load. Prints a Markdown
# section with the lifecycle / plain ratios; the target is <= 1.10 server CPU per request.
#
#   bench/lifecycle.sh                                   # 7 rounds of 5s, then the instruction counts
#   DURATION=2s ROUNDS=2 INSTRUCTIONS=0 bench/lifecycle.sh # a quick check
#   BENCH_SERVER=/tmp/bench_server bench/lifecycle.sh      # measure that binary, no build
#
# Installs wrk (and valgrind for INSTRUCTIONS=1) from Debian when missing, as root or via sudo.
# Needs curl and python3. Release builds; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-7}
# Instruction counts: each server under callgrind answers up to this many requests per wrk thread
# (2 threads, 16 connections), within CALLGRIND_SECONDS.
INSTRUCTIONS=${INSTRUCTIONS:-1}
CALLGRIND_REQUESTS_PER_THREAD=${CALLGRIND_REQUESTS_PER_THREAD:-10000}
CALLGRIND_SECONDS=${CALLGRIND_SECONDS:-20}
TARGET_RATIO=1.10

# Debian packages, installed only when their command is missing.
install_missing() { # command package
  command -v "$1" >/dev/null && return
  local sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_=sudo
  echo "bench/lifecycle.sh: installing $2" >&2
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "$2" >/dev/null
}
install_missing wrk wrk
if [ "$INSTRUCTIONS" = 1 ]; then install_missing valgrind valgrind; fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/lifecycle.sh: $tool is required" >&2; exit 2; }
done

# BENCH_SERVER=path/to/bench_server skips the build (to measure a given binary).
if [ -z "${BENCH_SERVER:-}" ]; then
  cargo build --release --quiet -p zdd-lifecycle --example bench_server
  BENCH_SERVER=target/release/examples/bench_server
fi
BIN=$BENCH_SERVER
WORK=$(mktemp -d)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PIDS=()
cleanup() {
  for each in "${PIDS[@]}"; do
    kill "$each" 2>/dev/null || true
  done
  for each in "${PIDS[@]}"; do
    wait "$each" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_answering() { # url
  local deadline=$(($(date +%s) + 60))
  until curl -s -o /dev/null "$1"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "bench/lifecycle.sh: $1 never answered" >&2
      exit 1
    fi
    sleep 0.05
  done
}

# Both servers stop at SIGTERM; the lifecycle one drains first, DRAIN_DELAY=0s makes that immediate.
# Sets STARTED to the pid (a child of this shell, so that `wait` works).
start() { # mode port [wrapper...]
  local mode=$1 port=$2
  shift 2
  DRAIN_DELAY=0s PORT=$port "$@" "$BIN" "$mode" >/dev/null 2>>"$WORK/$mode.log" &
  STARTED=$!
  PIDS+=("$STARTED")
}

# SIGTERM, then waits for the exit (callgrind writes its counts then).
stop() { # pid
  kill -TERM "$1"
  wait "$1" 2>/dev/null || true
  local left=() each
  for each in "${PIDS[@]}"; do [ "$each" = "$1" ] || left+=("$each"); done
  PIDS=("${left[@]}")
}

# CPU time of the process, all threads, so far: "user system" in clock ticks.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12, $13 }' "/proc/$1/stat"; }
CLOCK_TICKS=$(getconf CLK_TCK)
requests_total() { awk '$2 == "requests" && $3 == "in" { print $1 }'; }
errors() { awk '/Non-2xx|Socket errors/ { print }' | tr '\n' ' '; }

declare -A port pid
for mode in plain lifecycle; do
  port[$mode]=$(free_port)
  start "$mode" "${port[$mode]}"
  pid[$mode]=$STARTED
  wait_answering "http://127.0.0.1:${port[$mode]}/"
done

load() { # mode -> "req/s cpu_us_per_request user_cpu_us_per_request errors"
  local user0 system0 user1 system1 output requests
  read -r user0 system0 <<<"$(cpu_ticks "${pid[$1]}")"
  output=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:${port[$1]}/")
  read -r user1 system1 <<<"$(cpu_ticks "${pid[$1]}")"
  requests=$(requests_total <<<"$output")
  python3 -c "import sys; n, s = max(int(sys.argv[1]), 1), float(sys.argv[2].rstrip('s')); \
us = 1e6 / $CLOCK_TICKS / n; \
print(f'{n / s:.0f} {($user1 - $user0 + $system1 - $system0) * us:.2f} {($user1 - $user0) * us:.2f}', end='')" \
    "$requests" "$DURATION"
  echo " $(errors <<<"$output")"
}

median() { # "values separated by spaces" [decimals]
  local values
  read -ra values <<<"$1"
  python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.${2:-2}f}')" "${values[@]}"
}
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.3f}')" "$1" "$2"; }

rows=()
declare -A cpu user rps round_cpu round_user round_rps round_errors
round_ratios="" round_user_ratios=""
for round in $(seq 1 "$ROUNDS"); do
  # Taking turns, so that neither server always runs on a cooler (or hotter) machine.
  if ((round % 2 == 1)); then order="plain lifecycle"; else order="lifecycle plain"; fi
  for mode in $order; do
    read -r r c u errs <<<"$(load "$mode")"
    round_rps[$mode]=$r round_cpu[$mode]=$c round_user[$mode]=$u round_errors[$mode]=${errs:-none}
    cpu[$mode]+="$c "
    user[$mode]+="$u "
    rps[$mode]+="$r "
  done
  # Both measured back to back: a drift in the machine's load moves both alike.
  r_ratio=$(ratio "${round_cpu[lifecycle]}" "${round_cpu[plain]}")
  round_ratios+="$r_ratio "
  round_user_ratios+="$(ratio "${round_user[lifecycle]}" "${round_user[plain]}") "
  rows+=("| $round | ${order/ / then } | ${round_rps[plain]} | ${round_rps[lifecycle]} | ${round_cpu[plain]} (${round_user[plain]}) | ${round_cpu[lifecycle]} (${round_user[lifecycle]}) | ${r_ratio}x | ${round_errors[plain]} / ${round_errors[lifecycle]} |")
done
for mode in plain lifecycle; do stop "${pid[$mode]}"; done

PLAIN_CPU=$(median "${cpu[plain]}")
LIFECYCLE_CPU=$(median "${cpu[lifecycle]}")
PLAIN_RPS=$(median "${rps[plain]}" 0)
LIFECYCLE_RPS=$(median "${rps[lifecycle]}" 0)
CPU_RATIO=$(ratio "$LIFECYCLE_CPU" "$PLAIN_CPU")
RPS_RATIO=$(ratio "$LIFECYCLE_RPS" "$PLAIN_RPS")
ROUND_RATIO=$(median "$round_ratios" 3)
PLAIN_USER=$(median "${user[plain]}")
LIFECYCLE_USER=$(median "${user[lifecycle]}")
ROUND_USER_RATIO=$(median "$round_user_ratios" 3)
VERDICT=$(python3 -c "print('meets' if $ROUND_RATIO <= $TARGET_RATIO else 'misses')")

# Instructions per request (user space, callgrind): the server under valgrind answers a bounded
# count of requests (a wrk Lua script stops each thread after its share); the instructions of a
# start and stop with no load are subtracted. Unlike CPU time, the count hardly moves with the
# machine's other load.
cat >"$WORK/stop.lua" <<'LUA'
local answered = 0
local limit = tonumber(os.getenv("REQUESTS_PER_THREAD"))
function response(status, headers, body)
  answered = answered + 1
  if answered >= limit then wrk.thread:stop() end
end
LUA
# Sets RUN_REQUESTS and RUN_INSTRUCTIONS; no subshell, so that the cleanup can stop the server.
callgrind_run() { # mode requests_per_thread
  local mode=$1 per_thread=$2 port_ out output
  port_=$(free_port)
  out="$WORK/callgrind.$mode.$per_thread"
  start "$mode" "$port_" valgrind --tool=callgrind --callgrind-out-file="$out"
  wait_answering "http://127.0.0.1:$port_/"
  RUN_REQUESTS=0
  if [ "$per_thread" -gt 0 ]; then
    output=$(REQUESTS_PER_THREAD=$per_thread wrk -t2 -c16 -d"${CALLGRIND_SECONDS}s" -s "$WORK/stop.lua" \
      "http://127.0.0.1:$port_/")
    RUN_REQUESTS=$(requests_total <<<"$output")
  fi
  stop "$STARTED"
  RUN_INSTRUCTIONS=$(awk '/^(summary|totals):/ { print $2; exit }' "$out")
}
# Sets INSTR (per request) and INSTR_N (requests measured).
instructions_per_request() { # mode
  local idle
  callgrind_run "$1" 0
  idle=$RUN_INSTRUCTIONS
  callgrind_run "$1" "$CALLGRIND_REQUESTS_PER_THREAD"
  INSTR=$(python3 -c "print(f'{($RUN_INSTRUCTIONS - $idle) / $RUN_REQUESTS:.0f}')")
  INSTR_N=$RUN_REQUESTS
}
if [ "$INSTRUCTIONS" = 1 ]; then
  instructions_per_request plain
  PLAIN_INSTR=$INSTR PLAIN_INSTR_N=$INSTR_N
  instructions_per_request lifecycle
  LIFECYCLE_INSTR=$INSTR LIFECYCLE_INSTR_N=$INSTR_N
  INSTR_RATIO=$(ratio "$LIFECYCLE_INSTR" "$PLAIN_INSTR")
  INSTR_ROW="| instructions per request (callgrind; $PLAIN_INSTR_N and $LIFECYCLE_INSTR_N requests) | $PLAIN_INSTR | $LIFECYCLE_INSTR | **${INSTR_RATIO}x** |"
else
  INSTR_ROW="| instructions per request (callgrind) | not measured (INSTRUCTIONS=0) | | |"
fi

cat <<MARKDOWN
## The lifecycle layer alone: plain hyper vs zdd-lifecycle (GET /)

\`bench/lifecycle.sh\` with DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS ROUNDS=$ROUNDS;
load tool: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo);
release builds, loopback, the load tool on the same cores as the servers.

The same axum app (\`crates/lifecycle/examples/bench_server.rs\`) served plain (hyper-util's auto
builder per connection, as \`axum::serve\` does) and through zdd-lifecycle (\`with_probe_routes\` +
\`serve\`: probe and metrics routes, request metrics, the drain machinery), taking turns.

| | plain | lifecycle | lifecycle / plain |
|---|---:|---:|---:|
| server CPU per request, median of the rounds' ratios | | | **${ROUND_RATIO}x** |
| server CPU per request, median (µs) | $PLAIN_CPU | $LIFECYCLE_CPU | ${CPU_RATIO}x |
| of which user space, median (µs); median of the rounds' ratios | $PLAIN_USER | $LIFECYCLE_USER | ${ROUND_USER_RATIO}x |
| requests/s, median | $PLAIN_RPS | $LIFECYCLE_RPS | ${RPS_RATIO}x |
$INSTR_ROW

Target: the lifecycle layer costs <= ${TARGET_RATIO}x the plain server's CPU per request: **$VERDICT** (${ROUND_RATIO}x,
the median of the rounds' ratios: each round measures both servers back to back, so a change in
the machine's load between rounds moves both alike).
Server CPU per request is user + system time from /proc over each round, divided by the requests
answered; it moves much less than requests/s with other load on the machine. Most of it is the
kernel's loopback TCP work, the same for both servers (and the noisiest part on a shared machine);
the lifecycle's own work is in user space. Instructions per request count user space only, each
server alone under callgrind, with the instructions of an unloaded start and stop subtracted;
they hardly move with the machine's load.

| round | order | plain req/s | lifecycle req/s | plain CPU per request (user), µs | lifecycle CPU per request (user), µs | lifecycle / plain | errors (plain / lifecycle) |
|---:|---|---:|---:|---:|---:|---:|---|
$(printf '%s\n' "${rows[@]}")
MARKDOWN
