#!/usr/bin/env bash
# Builds the test bed's vCenter simulator (testbed/go/vcsim: govmomi's simulator package plus the snapshot
# behaviours vcsim lacks) into a cache outside the clone, keyed by the govmomi version and a hash of our Go
# sources. A second run with nothing changed builds nothing. Prints the binary's path.
# Usage: build-vcsim.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/vcsim
cache=${VMSNAP_CACHE:-$HOME/.cache/vmsnap}
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local
command -v go >/dev/null || { echo "build-vcsim: no Go toolchain on PATH (install golang >= 1.25)" >&2; exit 2; }

version=$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/vmware/govmomi") print $(i + 1) }' "$src/go.mod")
[[ -n $version ]] || { echo "build-vcsim: no github.com/vmware/govmomi requirement in $src/go.mod" >&2; exit 2; }
hash=$(cd "$src" && cat go.mod go.sum $(ls *.go | LC_ALL=C sort) | sha256sum | cut -c1-12)
out=$cache/vcsim/$version-$hash
bin=$out/vmsnap-vcsim
if [[ -x $bin ]]; then
  echo "$bin"; exit 0
fi

mkdir -p "$out"
log=$out/build.log; : >"$log"
echo "build-vcsim: building vmsnap-vcsim with govmomi $version (log: $log)" >&2
# Build to a name of our own and rename, so that concurrent runs never see a half-written binary.
( cd "$src" && go build -trimpath -ldflags "-s -w" -o "$bin.$$" . && mv -f "$bin.$$" "$bin" ) >>"$log" 2>&1 || {
  echo "build-vcsim: vcsim failed to build (log: $log); last lines:" >&2; tail -n 20 "$log" >&2; exit 1; }
echo "$bin"
