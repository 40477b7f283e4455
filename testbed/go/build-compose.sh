#!/usr/bin/env bash
# Builds Docker Compose v2 (the `docker compose` CLI plugin) from the Go module proxy into a per-version cache, as
# a CLI plugin binary; nothing is built while it is there. The module cannot be `go install`ed (its go.mod has
# exclude directives), so it is built as the main module from a copy of its source.
# Usage: build-compose.sh [version]   (default v2.40.3); prints the binary's path.
set -euo pipefail
version=${1:-v2.40.3}
cache=${VMSNAP_CACHE:-$HOME/.cache/vmsnap}
bin=$cache/compose/$version/docker-compose
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local}
if [[ -x $bin ]]; then
  echo "$bin"; exit 0
fi
command -v go >/dev/null || { echo "build-compose: no Go toolchain on PATH (install golang >= 1.24)" >&2; exit 2; }
src=$cache/compose-src/$version
log=$cache/compose/$version/build.log
mkdir -p "$(dirname "$bin")"; : >"$log"
echo "build-compose: building docker compose $version (log: $log)" >&2
(
  set -e
  if [[ ! -f $src/go.mod ]]; then
    dir=$(go mod download -json "github.com/docker/compose/v2@$version" \
          | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
    rm -rf "$src.partial"; mkdir -p "$(dirname "$src")"
    cp -r "$dir" "$src.partial"; chmod -R u+w "$src.partial"; mv "$src.partial" "$src"
  fi
  cd "$src"
  go build -trimpath -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$version" -o "$bin.$$" ./cmd
  mv -f "$bin.$$" "$bin"
) >>"$log" 2>&1 || { echo "build-compose: failed (log: $log); last lines:" >&2; tail -n 20 "$log" >&2; exit 1; }
echo "$bin"
