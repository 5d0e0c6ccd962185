#!/usr/bin/env bash
# The manifest tests alone: kustomize builds, official schemas (Kubernetes 1.30 and the newest
# kubernetes-validate knows), Traefik and Gateway API CRD schemas, the zero-downtime checker and
# the READMEs against the manifests. Needs scripts/install-test-deps.sh to have run once.
# Extra arguments go to pytest (e.g. `-k canary`).
set -euo pipefail
cd "$(dirname "$0")"
repo=$(cd ../../.. && pwd)
if [ ! -x "$repo/.venv/bin/pytest" ] || [ ! -d crd-schemas/node_modules ]; then
  "$repo/scripts/install-test-deps.sh"
fi
exec "$repo/.venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
