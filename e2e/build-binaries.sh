#!/usr/bin/env bash
# Build the e2e toolchain (Kubernetes control plane, kubectl, etcd, helm) from
# the Go module proxy, pinned by the wrapper modules in e2e/toolchain/.
#
#   e2e/build-binaries.sh [k8s] [etcd] [helm]     (no argument: all three)
#
# Binaries land in $VECTORIZER_E2E_CACHE/bin/<component>-<version>/ (default
# cache: ~/.cache/vectorizer-e2e), outside the repository, and are reused while
# their inputs (go.mod, go.sum, Go version, build flags) are unchanged, so a
# warm run takes well under a second. GOMODCACHE and GOCACHE live in the same
# cache, so a rebuild after a version bump recompiles only what changed.
#
# The last line on stdout is one directory holding all requested binaries
# (symlinks), ready for PATH; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
toolchain=$here/toolchain
cache=${VECTORIZER_E2E_CACHE:-$HOME/.cache/vectorizer-e2e}
# Bump when the recipe below changes in a way that must invalidate old builds.
recipe=1

export GOMODCACHE=${VECTORIZER_E2E_GOMODCACHE:-$cache/go/mod}
export GOCACHE=${VECTORIZER_E2E_GOCACHE:-$cache/go/build}
export GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off CGO_ENABLED=0

log() { printf '[build-binaries] %s\n' "$*" >&2; }

# The version a wrapper module pins for `module` (read from its go.mod without
# running go, so the warm path stays fast).
pinned_version() { # dir module
    awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$1/go.mod"
}

# Everything that goes into a build; a different value means rebuild.
inputs_stamp() { # dir tags ldflags
    {
        echo "recipe=$recipe tags=$2 ldflags=$3"
        (cd "$1" && go env GOVERSION GOOS GOARCH)
        cat "$1/go.mod" "$1/go.sum"
    } | sha256sum | cut -d' ' -f1
}

# build_component name module-dir version tags ldflags package...
# Prints the component's bin directory.
build_component() {
    local name=$1 dir=$2 version=$3 tags=$4 ldflags=$5
    shift 5
    local out=$cache/bin/$name-$version stamp tmp start
    stamp=$(inputs_stamp "$dir" "$tags" "$ldflags")
    if [[ -f $out/.stamp && $(<"$out/.stamp") == "$stamp" ]]; then
        log "$name $version: cached in $out"
        echo "$out"
        return
    fi
    log "$name $version: building ${*##*/} (minutes on a cold cache)"
    start=$SECONDS
    tmp=$(mktemp -d "$cache/bin/.$name-$version.XXXXXX")
    local target=$tmp/
    # "name=package" builds one binary under a chosen name.
    if [[ $# -eq 1 && $1 == *=* ]]; then target=$tmp/${1%%=*} && set -- "${1#*=}"; fi
    (cd "$dir" && nice -n "${VECTORIZER_E2E_NICE:-10}" \
        go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$target" "$@")
    echo "$stamp" >"$tmp/.stamp"
    rm -rf "$out"
    mv "$tmp" "$out"
    log "$name $version: built in $((SECONDS - start))s"
    echo "$out"
}

build_k8s() {
    local dir=$toolchain/k8s version minor ld="-s -w" pkg
    version=$(pinned_version "$dir" k8s.io/kubernetes)
    minor=$(echo "$version" | cut -d. -f2)
    # Without these stamps the binaries report v0.0.0-master; kubectl's skew
    # check and tools that pick flags from `--version` rely on them.
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ld+=" -X $pkg.gitTreeState=clean"
    done
    # Upstream's tags (hack/lib/golang.sh): drop test-only code paths and grpc tracing.
    build_component kubernetes "$dir" "$version" "selinux,notest,grpcnotrace" "$ld" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kubectl
}

build_etcd() {
    local dir=$toolchain/etcd version
    version=$(pinned_version "$dir" go.etcd.io/etcd/server/v3)
    # go build would name it "server", after the module path.
    build_component etcd "$dir" "$version" "" "-s -w" etcd=go.etcd.io/etcd/server/v3
}

build_helm() {
    local dir=$toolchain/helm version client major minor ld
    version=$(pinned_version "$dir" helm.sh/helm/v3)
    client=$(pinned_version "$dir" k8s.io/client-go)
    major=$(($(echo "${client#v}" | cut -d. -f1) + 1))
    minor=$(echo "$client" | cut -d. -f2)
    # Same stamps as helm's Makefile.
    ld="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
    ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major"
    ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
    ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major"
    ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
    build_component helm "$dir" "$version" "" "$ld" helm.sh/helm/v3/cmd/helm
}

main() {
    local components=("$@") c dirs=() set_name="" set_dir f
    [[ ${#components[@]} -gt 0 ]] || components=(k8s etcd helm)
    mkdir -p "$cache/bin" "$GOMODCACHE" "$GOCACHE"
    # Serialise concurrent runs (e.g. pytest-xdist workers) on one cache.
    exec 9>"$cache/.build.lock"
    flock 9
    for c in "${components[@]}"; do
        case $c in
            k8s | etcd | helm) dirs+=("$("build_$c")") ;;
            *) log "unknown component '$c' (expected k8s, etcd, helm)" && exit 2 ;;
        esac
    done
    for f in "${dirs[@]}"; do set_name+=${set_name:+_}${f##*/}; done
    set_dir=$cache/bin/sets/$set_name
    mkdir -p "$set_dir"
    for f in "${dirs[@]}"; do
        ln -sfn "$f"/* "$set_dir/"
    done
    echo "$set_dir"
}

main "$@"
