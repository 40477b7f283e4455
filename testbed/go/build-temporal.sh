#!/usr/bin/env bash
# Builds a production-shaped Temporal server (go.temporal.io/server: temporal-server and temporal-sql-tool) from
# the Go module proxy into a per-version cache outside the clone, with the server's PostgreSQL schema next to it.
# A second run with the binaries present builds nothing. Prints the directory.
# Usage: build-temporal.sh [server-version]   (default 1.32.2)
set -euo pipefail
cache=${VMSNAP_CACHE:-$HOME/.cache/vmsnap}
version=${1:-1.32.2}
# v1.30+ require go >= 1.26.10; the go command fetches that toolchain from the module proxy when the local one
# is older (a no-op where the installed Go is new enough).
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${TEMPORAL_GOTOOLCHAIN:-go1.26.10}
command -v go >/dev/null || { echo "build-temporal: no Go toolchain on PATH (install golang >= 1.21)" >&2; exit 2; }

out=$cache/temporal/$version
work=$cache/temporal-src/$version
if [[ -x $out/temporal-server && -x $out/temporal-sql-tool && -d $out/schema/postgresql/v12 ]]; then
  echo "$out"; exit 0
fi
mkdir -p "$out" "$work"
log=$work/build.log; : >"$log"
echo "build-temporal: building Temporal server v$version (log: $log)" >&2
set +e   # errexit is ignored inside a subshell tested with ||, so test its status afterwards
(
  set -e
  cd "$work"
  [[ -f go.mod ]] || go mod init vmsnap.local/testbins/temporal
  # `go get` of the module alone leaves go.sum short of the packages' dependencies; get the package paths.
  go get "go.temporal.io/server/cmd/server@v$version" "go.temporal.io/server/cmd/tools/sql@v$version"
  printf '//go:build tools\npackage tools\nimport (\n\t_ "go.temporal.io/server/cmd/server"\n\t_ "go.temporal.io/server/cmd/tools/sql"\n)\n' >tools.go
  go mod tidy
  # Build to names of our own and rename, so that concurrent runs never see a half-written binary.
  go build -trimpath -ldflags "-s -w" -o "$out/temporal-server.$$" go.temporal.io/server/cmd/server
  go build -trimpath -ldflags "-s -w" -o "$out/temporal-sql-tool.$$" go.temporal.io/server/cmd/tools/sql
  src=$(go list -m -f '{{.Dir}}' go.temporal.io/server)
  rm -rf "$out/schema.$$"; mkdir -p "$out/schema.$$/postgresql"
  cp -r "$src/schema/postgresql/v12" "$out/schema.$$/postgresql/"
  chmod -R u+w "$out/schema.$$"
  rm -rf "$out/schema"; mv "$out/schema.$$" "$out/schema"
  mv -f "$out/temporal-sql-tool.$$" "$out/temporal-sql-tool"
  mv -f "$out/temporal-server.$$" "$out/temporal-server"
) >>"$log" 2>&1
rc=$?; set -e
if [[ $rc -ne 0 ]]; then
  echo "build-temporal: Temporal server v$version failed to build; last lines of $log:" >&2
  tail -n 20 "$log" >&2; exit 1
fi
echo "$out"
