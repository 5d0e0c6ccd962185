#!/usr/bin/env bash
# `zdd check` on the reference service and on every example of examples/apps/ (naive and correct
# forms), with the defaults (1 s propagation delay, no preStop, 30 s grace period, the apps' own
# 5 s drain delay) and a 2 s request in flight at SIGTERM. Prints each table in Markdown: what
# docs/check.md shows. Needs python3, a JDK (java) and Go (go); about a minute.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p zdd
zdd=$PWD/target/release/zdd
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd examples/apps/go && go build -o "$work/go-naive" ./naive && go build -o "$work/go-correct" ./correct)

# NAME, the command as shown, then the command as run.
check() {
  local name=$1 shown=$2
  shift 2
  printf '### %s\n\n`zdd check --slow-path '"'"'/work?ms=2000'"'"' -- %s`\n\n' "$name" "$shown"
  "$zdd" check --slow-path '/work?ms=2000' --run-dir "$work/runs/${name// /-}" -- "$@" \
    | sed -n -e '/^note:/{s/$/\n/;p}' -e '/^|/p' -e '/^zdd check: .*\(failed\|no check\)/{s/^/\n/;p}'
  echo
}

check "zdd serve" "zdd serve" zdd serve
check "Python, naive" "python3 examples/apps/python/naive.py" python3 examples/apps/python/naive.py
check "Python, correct" "python3 examples/apps/python/correct.py" python3 examples/apps/python/correct.py
check "Java, naive" "java examples/apps/java/Naive.java" java examples/apps/java/Naive.java
check "Java, correct" "java examples/apps/java/Correct.java" java examples/apps/java/Correct.java
check "Go, naive" "examples/apps/go/naive (built)" "$work/go-naive"
check "Go, correct" "examples/apps/go/correct (built)" "$work/go-correct"
