#!/usr/bin/env bash
# Bring a local e2e cluster up or down (needs root: network/mount namespaces).
#
#   e2e/dev-cluster.sh up [--nodes N] [--entrypoint CMD]
#   e2e/dev-cluster.sh status
#   e2e/dev-cluster.sh down
#
# State, logs and kubeconfig live in $VECTORIZER_E2E_CACHE/dev-cluster
# (default ~/.cache/vectorizer-e2e/dev-cluster); `up` prints how to use kubectl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python3}" -m e2e.harness "$@"
