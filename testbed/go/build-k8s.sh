#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd (the layout envtest's KUBEBUILDER_ASSETS expects), and
# kubelet and kube-scheduler for the pod tests, from the Go module proxy into a per-version cache. Only missing
# binaries are built: a run with all five present builds nothing, and adding the kubelet leaves the others as
# they are.
# Usage: build-k8s.sh [k8s-version ...]   (first that builds wins; default: 1.36.3 1.37.2 1.35.4 1.34.4)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${VMSNAP_CACHE:-$HOME/.cache/vmsnap}
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
command -v go >/dev/null || { echo "build-k8s: no Go toolchain on PATH (install golang >= 1.26)" >&2; exit 2; }

etcd_for() {  # the envtest matrix pairing, at the newest patch the proxy serves
  case "$1" in 1.37.*) echo 3.7.3 ;; 1.36.*) echo 3.6.16 ;; 1.35.*) echo 3.6.16 ;; *) echo 3.6.16 ;; esac
}

build_one() {
  local kv=$1 sv=0.${1#1.} minor; minor=$(echo "$kv" | cut -d. -f2)
  local bin=$cache/k8s/$kv work=$cache/k8s-src/$kv log
  local k8s_bins=(kube-apiserver kube-controller-manager kubelet kube-scheduler) missing=() b
  for b in "${k8s_bins[@]}"; do [[ -x $bin/$b ]] || missing+=("$b"); done
  if [[ ${#missing[@]} -eq 0 && -x $bin/etcd ]]; then
    echo "$bin"; return 0
  fi
  mkdir -p "$bin" "$work/apiserver" "$work/etcd"
  log=$work/build.log; : >"$log"
  echo "build-k8s: building Kubernetes v$kv: ${missing[*]}$([[ -x $bin/etcd ]] || echo " etcd") (log: $log)" >&2
  set +e   # errexit is ignored inside a subshell tested with ||, so test its status afterwards
  (
    set -e
    cd "$work/apiserver"
    [[ -f go.mod ]] || go mod init vmsnap.local/testbins/apiserver
    gomod=$(go mod download -json "k8s.io/kubernetes@v$kv" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
    # every staging module upstream maps to ./staging/src is published as v0.<minor>.<patch>
    for m in $(grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u); do
      go mod edit -replace="$m=$m@v$sv"
    done
    # upstream GODEBUG defaults (a dependency's godebug line is ignored)
    gd=$(grep -E '^godebug ' "$gomod" || true); [[ -z $gd ]] || grep -q '^godebug ' go.mod || echo "$gd" >>go.mod
    go get "k8s.io/kubernetes@v$kv"
    cat >tools.go <<GO
//go:build tools
package tools
import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
    go mod tidy
    V=k8s.io/component-base/version
    ld="-s -w -X $V.gitVersion=v$kv -X $V.gitMajor=1 -X $V.gitMinor=$minor -X $V.gitTreeState=clean"
    for b in "${missing[@]}"; do  # only what is missing: binaries already built stay byte for byte
      go build -trimpath -ldflags "$ld" -o "$bin/$b.partial" "k8s.io/kubernetes/cmd/$b"
      mv "$bin/$b.partial" "$bin/$b"
    done
    # etcd in its own module so MVS cannot raise the versions kube-apiserver pins
    [[ ! -x $bin/etcd ]] || exit 0
    cd "$work/etcd"; ev=$(etcd_for "$kv")
    [[ -f go.mod ]] || go mod init vmsnap.local/testbins/etcd
    go get "go.etcd.io/etcd/server/v3@v$ev"
    printf '//go:build tools\npackage tools\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    go mod tidy
    go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
  ) >>"$log" 2>&1
  local rc=$?; set -e
  if [[ $rc -ne 0 ]]; then
    echo "build-k8s: Kubernetes v$kv failed to build; last lines of $log:" >&2; tail -n 20 "$log" >&2; return 1
  fi
  echo "$bin"
}

versions=("$@"); [[ ${#versions[@]} -gt 0 ]] || versions=(1.36.3 1.37.2 1.35.4 1.34.4)
for v in "${versions[@]}"; do
  if out=$(build_one "$v"); then
    ln -sfn "$out" "$cache/k8s/current"
    echo "$out"; exit 0
  fi
done
echo "build-k8s: no Kubernetes version built (tried ${versions[*]})" >&2
exit 1
