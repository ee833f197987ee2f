#!/usr/bin/env bash
# Regenerate the wrapper Go modules that pin the e2e toolchain.
#
#   e2e/toolchain/update.sh [K8S_VERSION] [ETCD_VERSION] [HELM_VERSION]
#   e2e/toolchain/update.sh v1.36.3 v3.6.16 v3.22.0
#
# Run it only to move to other versions, then commit the go.mod/go.sum it
# rewrites; build-binaries.sh reads the versions back from those files.
#
# Why wrapper modules: k8s.io/kubernetes requires its staging modules at
# v0.0.0 and maps them with `replace => ./staging/...`, which Go ignores when
# the module is a dependency, so every staging module is pinned here to its
# published v0.<minor>.<patch>. etcd's tagged server go.mod has `replace => ../api`
# too, so `go install …@version` refuses it; a wrapper requiring it resolves.
# Each tool has its own module so minimum version selection cannot move one
# tool's pinned dependencies (grpc, otel, etcd client) because of another's.
set -euo pipefail

K8S_VERSION=${1:-v1.36.3}
ETCD_VERSION=${2:-v3.6.16}
HELM_VERSION=${3:-v3.22.0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${VECTORIZER_E2E_CACHE:-$HOME/.cache/vectorizer-e2e}
export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$cache/go/mod}
export GOCACHE=${GOCACHE_OVERRIDE:-$cache/go/build}
export GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off
mkdir -p "$GOMODCACHE" "$GOCACHE"

log() { printf '[toolchain/update] %s\n' "$*" >&2; }

# go.mod's `go` line: the highest that any of the pinned tools requires.
go_directive() {
    go mod download -json "$1" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' | xargs sed -n 's/^go \([0-9.]*\).*/\1/p'
}

fresh_module() { # dir module-path go-version
    rm -f "$1/go.mod" "$1/go.sum"
    (cd "$1" && go mod init "$2" >/dev/null 2>&1 && go mod edit -go="$3")
}

update_k8s() {
    local dir=$here/k8s minor staging gomod
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    staging="v0.${minor}.$(echo "$K8S_VERSION" | cut -d. -f3)"
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    log "k8s.io/kubernetes@$K8S_VERSION, staging modules at $staging"
    fresh_module "$dir" vectorizer.local/e2e/toolchain/k8s "$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod")"
    (
        cd "$dir"
        # Same runtime behaviour as upstream's own build (dependency godebug lines are ignored).
        godebug=$(sed -n 's/^godebug \(.*\)/\1/p' "$gomod")
        [[ -n $godebug ]] && go mod edit -godebug="$godebug"
        sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*|\1|p' "$gomod" | while read -r m; do
            go mod edit -replace="$m=$m@$staging"
        done
        for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
            go get -tool "k8s.io/kubernetes/cmd/$cmd@$K8S_VERSION"
        done
        go mod tidy
    )
}

update_etcd() {
    log "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    fresh_module "$here/etcd" vectorizer.local/e2e/toolchain/etcd "$(go_directive "go.etcd.io/etcd/server/v3@$ETCD_VERSION")"
    (cd "$here/etcd" && go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && go mod tidy)
}

update_helm() {
    log "helm.sh/helm/v3@$HELM_VERSION"
    fresh_module "$here/helm" vectorizer.local/e2e/toolchain/helm "$(go_directive "helm.sh/helm/v3@$HELM_VERSION")"
    (cd "$here/helm" && go get -tool "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" && go mod tidy)
}

update_k8s
update_etcd
update_helm
log "done; commit e2e/toolchain/{k8s,etcd,helm}/go.{mod,sum}"
