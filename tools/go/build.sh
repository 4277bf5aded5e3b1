#!/bin/bash
# Builds the upstream components the VM suite runs beside Debian's packages, as Go modules with the
# go command, from the versions pinned in tools/go/<component>/go.mod and go.sum:
#   tools/go/build.sh COMPONENT...      prints one line per component: "COMPONENT DIR"
#   tools/go/build.sh --list            the components and their modules
#
# Components (one Go module each, so that each builds with the dependency versions it was released
# with rather than a merge of everybody's):
#   gvisor        runsc and gVisor's shim (containerd-shim-runsc-v1), the newest the proxy serves
#   gvisor-2025   the same, from a 2025 release merge
#   containerd    containerd 2.x, ctr and containerd-shim-runc-v2
#   containerd-1.7  the newest containerd 1.7 the proxy serves, the same three binaries
#   runc          runc (static, with seccomp)
#   cri-tools     crictl and critest (critest is a Go test binary: go test -c)
#   distribution  the image registry (distribution/v3's registry) the conformance run serves images from
#   cni           the CNI plugins bridge, host-local, loopback and portmap for the pods of the conformance
#                 and Kubernetes node runs,
#                 named cni-*: the guest installs every binary on PATH, where `bridge` is iproute2's
#   kubernetes    Kubernetes 1.37: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#                 kubectl (make k8s: the Kubernetes node on the upstream suite, tests/e2e/k8s.sh)
#   kubernetes-1.36  the newest Kubernetes 1.36 the proxy serves: kubelet and kubectl only
#   etcd          etcd 3.6 and etcdctl, for kube-apiserver
#
# Each build lands in $RUNSC_GUARD_CACHE/go-bin/<component>-<key>/ (default cache root
# $XDG_CACHE_HOME/runsc-guard or ~/.cache/runsc-guard), where <key> hashes the component's go.mod,
# go.sum, its binaries, the build recipe and the Go version: a second run with the same pins reuses the binaries, a
# changed pin builds anew. Beside bin/ sits VERSIONS, one line per binary: name, module@version,
# the Go toolchain, the version string stamped in (if any). The VM suite copies it into every
# report.
#
# Environment: GOTOOLCHAIN is honoured (a component whose go.mod needs a newer Go than the
# machine's takes it from the module proxy; none does today). GOFLAGS=-mod=readonly is set: a
# build never changes the pins.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${RUNSC_GUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runsc-guard}/go-bin

log() { printf 'go-build: %s\n' "$*" >&2; }
die() { printf 'go-build: error: %s\n' "$*" >&2; exit 1; }

# component -> "binary=package[:how]" ...; how is build (default), test (go test -c) or cgo-static.
declare -A targets=(
    [gvisor]="runsc=gvisor.dev/gvisor/runsc containerd-shim-runsc-v1=gvisor.dev/gvisor/shim"
    [gvisor-2025]="runsc=gvisor.dev/gvisor/runsc containerd-shim-runsc-v1=gvisor.dev/gvisor/shim"
    [containerd]="containerd=github.com/containerd/containerd/v2/cmd/containerd ctr=github.com/containerd/containerd/v2/cmd/ctr containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
    [containerd-1.7]="containerd=github.com/containerd/containerd/cmd/containerd ctr=github.com/containerd/containerd/cmd/ctr containerd-shim-runc-v2=github.com/containerd/containerd/cmd/containerd-shim-runc-v2"
    [runc]="runc=github.com/opencontainers/runc:cgo-static"
    [cri-tools]="crictl=sigs.k8s.io/cri-tools/cmd/crictl critest=sigs.k8s.io/cri-tools/cmd/critest:test"
    [distribution]="registry=github.com/distribution/distribution/v3/cmd/registry"
    [kubernetes]="kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler kubelet=k8s.io/kubernetes/cmd/kubelet kubectl=k8s.io/kubernetes/cmd/kubectl"
    [kubernetes-1.36]="kubelet=k8s.io/kubernetes/cmd/kubelet kubectl=k8s.io/kubernetes/cmd/kubectl"
    [etcd]="etcd=go.etcd.io/etcd/server/v3 etcdctl=go.etcd.io/etcd/etcdctl/v3"
    [cni]="cni-bridge=github.com/containernetworking/plugins/plugins/main/bridge cni-host-local=github.com/containernetworking/plugins/plugins/ipam/host-local cni-loopback=github.com/containernetworking/plugins/plugins/main/loopback cni-portmap=github.com/containernetworking/plugins/plugins/meta/portmap"
)

# How the binaries are built (the flags in build_component). Change it when they change, so that
# cached builds are made again.
recipe=2

# The version string runsc prints for `runsc --version`. gVisor's own release builds stamp the
# release (`git describe` of the merged commit); a plain `go build` of the module leaves
# VERSION_MISSING. The go branch's merge commit names the release it merged, e.g. "Merge
# release-20251215.0-12-g9f6ccf11c (automated)"; that name is stamped where it is known, so the
# build says what it is. The newest module version is left unstamped on purpose: that is what
# everyone who installs runsc from the module gets, and the shim must read such a runsc's
# capabilities from runsc itself rather than from a date.
declare -A runsc_stamp=(
    [gvisor-2025]="release-20251215.0-12-g9f6ccf11c"
)

module_version() { # module_version DIR MODULE: the version go.mod pins for MODULE
    (cd "$1" && go list -m -f '{{.Version}}' "$2")
}

module_of() { # module_of DIR PACKAGE: the module that provides PACKAGE
    (cd "$1" && go list -f '{{.Module.Path}}' "$2")
}

# Keeps the two newest builds of a component (another checkout may still use the older pins) and
# drops what an interrupted build left behind.
prune() {
    local c=$1 old d pid
    mapfile -t old < <(find "$cache" -mindepth 1 -maxdepth 1 -type d \
        -regextype posix-extended -regex ".*/$c-[0-9a-f]{16}" -printf '%T@ %p\n' |
        sort -rn | awk 'NR > 2 { print $2 }')
    for d in "${old[@]}"; do
        log "$c: removing an old build ($d)"
        rm -rf "$d"
    done
    for d in "$cache/$c"-*.tmp.*; do
        [[ -d $d ]] || continue
        pid=${d##*.}
        kill -0 "$pid" 2>/dev/null || rm -rf "$d"
    done
}

build_component() {
    local c=$1 dir=$here/$1
    [[ -f $dir/go.mod && -f $dir/go.sum ]] || die "no pins for $c: $dir/go.mod and go.sum"
    local gover key out
    gover=$(go env GOVERSION)
    # What decides the binaries: the pins, what is built from them and how, and the toolchain.
    # Not the rest of this script, so adding a component rebuilds nothing else.
    key=$(cat "$dir/go.mod" "$dir/go.sum" <(printf '%s\n' "$recipe" "$gover" "${targets[$c]}" \
        "${runsc_stamp[$c]:-}") | sha256sum | cut -c1-16)
    out=$cache/$c-$key
    if [[ -f $out/VERSIONS ]]; then
        log "$c: cached ($out)"
        printf '%s %s\n' "$c" "$out"
        return 0
    fi
    local tmp=$out.tmp.$$
    rm -rf "$tmp"
    mkdir -p "$tmp/bin"
    local t=$SECONDS spec bin pkg how mod ver stamp ldflags
    for spec in ${targets[$c]}; do
        bin=${spec%%=*}
        pkg=${spec#*=}
        how=build
        if [[ $pkg == *:* ]]; then
            how=${pkg##*:}
            pkg=${pkg%:*}
        fi
        mod=$(module_of "$dir" "$pkg")
        ver=$(module_version "$dir" "$mod")
        stamp=""
        ldflags="-s -w"
        # containerd stamps its version as its own release builds do (`containerd --version`).
        if [[ $mod == github.com/containerd/containerd* ]]; then
            ldflags+=" -X $mod/version.Version=$ver"
        fi
        # Kubernetes stamps its release as its own builds do (hack/lib/version.sh), in
        # component-base (`kubelet --version`, the servers' --version) and client-go (`kubectl
        # version --client`); a module build would say v0.0.0-master+$Format:%H$. (etcd's version
        # is a constant in its source; only its git SHA is stamped by its release builds.)
        if [[ $mod == k8s.io/kubernetes ]]; then
            local major minor p
            major=${ver#v}
            minor=${major#*.}
            major=${major%%.*}
            minor=${minor%%.*}
            for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
                ldflags+=" -X $p.gitVersion=$ver -X $p.gitMajor=$major -X $p.gitMinor=$minor"
            done
            stamp=$ver
        fi
        if [[ $bin == runsc && -n ${runsc_stamp[$c]:-} ]]; then
            stamp=${runsc_stamp[$c]}
            ldflags+=" -X gvisor.dev/gvisor/runsc/version.version=$stamp"
        fi
        log "$c: building $bin from $pkg@$ver ($how)"
        case "$how" in
            build)
                (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly \
                    go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/$bin" "$pkg")
                ;;
            test)
                (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly \
                    go test -c -trimpath -ldflags "$ldflags" -o "$tmp/bin/$bin" "$pkg")
                ;;
            cgo-static)
                # runc's release builds: static, with seccomp (libseccomp-dev's libseccomp.a).
                (cd "$dir" && CGO_ENABLED=1 GOFLAGS=-mod=readonly \
                    go build -trimpath -tags "seccomp urfave_cli_no_docs netgo osusergo" \
                    -ldflags "$ldflags -X main.version=${ver#v} -extldflags -static" \
                    -o "$tmp/bin/$bin" "$pkg")
                ;;
            *) die "unknown build kind $how" ;;
        esac || die "$c: go build of $pkg@$ver failed"
        printf '%s %s@%s %s %s\n' "$bin" "$mod" "$ver" "$gover" "${stamp:--}" >>"$tmp/VERSIONS"
    done
    rm -rf "$out"
    mv "$tmp" "$out"
    log "$c: built in $((SECONDS - t))s ($out)"
    prune "$c"
    printf '%s %s\n' "$c" "$out"
}

if [[ ${1:-} == --list ]]; then
    for c in "${!targets[@]}"; do printf '%s: %s\n' "$c" "${targets[$c]}"; done | sort
    exit 0
fi
[[ $# -gt 0 ]] || die "usage: tools/go/build.sh COMPONENT... | --list"
command -v go >/dev/null || die "go is missing (Go 1.26 or later)"
for c in "$@"; do
    [[ -n ${targets[$c]:-} ]] || die "unknown component $c (tools/go/build.sh --list)"
done
mkdir -p "$cache"
for c in "$@"; do build_component "$c"; done
