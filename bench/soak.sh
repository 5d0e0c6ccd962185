#!/usr/bin/env bash
# Ten rollouts in a row in one zdd process (rolling update, blue-green, canary by replicas, canary
# by weight, and again), at a high rate: none may lose a request, and nothing may leak: zdd's open
# descriptors and threads after each rollout stay where the first left them, its RSS after the
# tenth is within 10% of the first's, and no process is left when it ends (a replica leaked by any
# rollout would still be there). Prints a Markdown
# section; exits 1 when a check fails.
#
#   bench/soak.sh                          # 10 rollouts at 10000 requests/s, builtin router
#   RATE=2000 ROUTER=traefik bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-10000}
ROUTER=${ROUTER:-builtin}
PAUSE=${PAUSE:-1s}
ORDER=(rolling-update blue-green canary-replicas canary-weight)
COUNT=${COUNT:-10}
export PATH="$PWD/.venv/bin:$PATH"

scripts/install-test-deps.sh >&2
cargo build --release --quiet -p zdd --bin zdd
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One more rollout than measured: zdd must still be running to be looked at after the last one.
strategies=()
for i in $(seq 0 "$COUNT"); do strategies+=("${ORDER[$((i % ${#ORDER[@]}))]}"); done

# Every process that carries this run's marker (zdd, its replicas, Traefik).
marker="zdd-soak-$$-$RANDOM"
marked() { grep -l "ZDD_SOAK_MARKER=$marker" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true; }

ZDD_SOAK_MARKER=$marker target/release/zdd demo "${strategies[@]}" --router "$ROUTER" --rate "$RATE" \
  --pause "$PAUSE" --run-dir "$work/runs" --json "$work/soak.json" >"$work/out.txt" 2>"$work/err.txt" &
pid=$!
(sleep 1800 && kill "$pid") >/dev/null 2>&1 &
watchdog=$!

# zdd prints one line per finished rollout on stderr: sample it right then.
samples=$work/samples
: >"$samples"
seen=0
while kill -0 "$pid" 2>/dev/null; do
  done_now=$(grep -cE '^(rolling-update|blue-green|canary-replicas|canary-weight) ' "$work/err.txt" || true)
  if ((done_now > seen)); then
    seen=$done_now
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    echo "$seen $fds $threads $rss" >>"$samples"
  fi
  sleep 0.05
done
wait "$pid" && code=0 || code=$?
pkill -P "$watchdog" sleep 2>/dev/null || true
sleep 1
left=$(marked | wc -l)

python3 - "$work/soak.json" "$samples" "$code" "$left" "$RATE" "$ROUTER" "$COUNT" <<'EOF'
import json, sys
try:
    rows = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    rows = []
samples = [list(map(int, line.split())) for line in open(sys.argv[2]) if line.strip()]
code, left, rate, router, count = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7])
rows, extra = rows[:count], rows[count:]
samples = samples[:count]
print("## Ten rollouts in a row")
print()
print(f"`bench/soak.sh`: {len(rows)} rollouts in one `zdd demo` process at {rate} requests/s through the")
print(f"{router} router (3 replicas each), taking turns between the four zero-downtime strategies (and one")
print("more, unmeasured, so that zdd still runs after the last measured one). zdd's open descriptors,")
print("threads and RSS as each rollout ends (the next one is starting: the same moment every time).")
print()
print("| # | strategy | requests | failed | zdd fds | zdd threads | zdd RSS (MiB) |")
print("|---:|---|---:|---:|---:|---:|---:|")
for i, row in enumerate(rows):
    s = samples[i] if i < len(samples) else [i + 1, 0, 0, 0]
    print(f"| {i + 1} | {row['strategy']} | {row['total']} | {row['failed']} | {s[1]} | {s[2]} | {s[3] / 1024:.1f} |")
checks = []
everything = rows + extra
checks.append(("every rollout succeeded with 0 failed", code == 0 and len(rows) == count and all(r["failed"] == 0 and r["succeeded"] for r in everything)))
if len(samples) >= 2:
    first, last = samples[0], samples[-1]
    checks.append((f"descriptors after the last ({last[1]}) no more than after the first ({first[1]})", last[1] <= first[1]))
    checks.append((f"threads after the last ({last[2]}) no more than after the first ({first[2]})", last[2] <= first[2]))
    checks.append((f"RSS after the last ({last[3] / 1024:.1f} MiB) within 10% of the first ({first[3] / 1024:.1f} MiB)", last[3] <= 1.1 * first[3]))
checks.append((f"nothing left running at the end, replicas and routers included ({left} processes)", left == 0))
print()
for text, ok in checks:
    print(f"- {'ok' if ok else 'FAILED'}: {text}")
sys.exit(0 if all(ok for _, ok in checks) else 1)
EOF
