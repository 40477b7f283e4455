#!/usr/bin/env bash
# Builds the Temporal UI server (github.com/temporalio/ui-server/v2, cmd/server) from the Go module proxy into a
# per-version cache outside the clone; the module carries the built UI assets (embedded), so no npm build. A
# second run with the binary present builds nothing. Prints the binary's path.
# Usage: build-ui-server.sh [version]   (default 2.58.1)
set -euo pipefail
cache=${VMSNAP_CACHE:-$HOME/.cache/vmsnap}
version=${1:-2.58.1}
# v2.58 requires go >= 1.26.10; the go command fetches that toolchain from the module proxy when the local one
# is older (a no-op where the installed Go is new enough).
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${TEMPORAL_GOTOOLCHAIN:-go1.26.10}
command -v go >/dev/null || { echo "build-ui-server: no Go toolchain on PATH (install golang >= 1.21)" >&2; exit 2; }

api=${UI_SERVER_TEMPORAL_API-v1.64.1}   # empty: the module's own requirement
bin=$cache/ui-server/$version/ui-server
work=$cache/ui-server-src/$version
if [[ -x $bin ]]; then
  echo "$bin"; exit 0
fi
mkdir -p "$(dirname "$bin")" "$work"
log=$work/build.log; : >"$log"
echo "build-ui-server: building Temporal UI server v$version (log: $log)" >&2
set +e   # errexit is ignored inside a subshell tested with ||, so test its status afterwards
(
  set -e
  cd "$work"
  [[ -f go.mod ]] || go mod init vmsnap.local/testbins/ui-server
  # v2.58.1 asks for go.temporal.io/api v1.64.0, which the module proxy refuses (403, "not available"); the
  # nearest served patch release takes its place (minimal version selection keeps the higher of the two).
  go get "github.com/temporalio/ui-server/v2/cmd/server@v$version" ${api:+"go.temporal.io/api@$api"}
  printf '//go:build tools\npackage tools\nimport _ "github.com/temporalio/ui-server/v2/cmd/server"\n' >tools.go
  go mod tidy
  # Build to a name of our own and rename, so that concurrent runs never see a half-written binary.
  go build -trimpath -ldflags "-s -w" -o "$bin.$$" github.com/temporalio/ui-server/v2/cmd/server
  mv -f "$bin.$$" "$bin"
) >>"$log" 2>&1
rc=$?; set -e
if [[ $rc -ne 0 ]]; then
  echo "build-ui-server: Temporal UI server v$version failed to build; last lines of $log:" >&2
  tail -n 20 "$log" >&2; exit 1
fi
echo "$bin"
