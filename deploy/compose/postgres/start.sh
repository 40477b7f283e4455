#!/bin/sh
# PostgreSQL for the production compose's Temporal (Debian's postgresql-15), as user postgres: a cluster made on
# the first start in $PGDATA with superuser `temporal` (password $POSTGRES_PASSWORD), reached over TCP with that
# password only (no Unix socket, no trust). Stop it with SIGINT (compose's stop_signal): a fast shutdown.
set -eu
: "${PGDATA:?}" "${POSTGRES_PASSWORD:?}"
bin=/usr/lib/postgresql/15/bin
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  "$bin/initdb" -D "$PGDATA" -U temporal --pwfile="$pwfile" --auth-host=scram-sha-256 --auth-local=reject \
    -E UTF8 --locale=C
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"  # the stack's other containers
fi
# four Temporal services, each with pools to both databases
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories= -c max_connections=300
