#!/bin/sh
# The production compose's one-shot schema job: Temporal's two databases on PostgreSQL, brought to the schema
# version this temporal-sql-tool carries (embedded in it). Every step is a no-op when done already, so the job
# runs again on every `up`.
set -eu
export SQL_PLUGIN=postgres12 SQL_HOST=postgres SQL_PORT=5432 SQL_USER=temporal SQL_PASSWORD="${POSTGRES_PASSWORD:?}"
for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*}
  temporal-sql-tool --db "$db" create-database
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema --schema-name "postgresql/v12/${pair#*:}"
done
