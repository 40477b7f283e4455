#!/bin/sh
# One service of the production compose's Temporal cluster: `start.sh frontend|history|matching|worker`.
# The services find each other through their membership ring, where each announces one address: this
# container's own (its first), unless TEMPORAL_BROADCAST_ADDRESS names one.
set -eu
: "${POSTGRES_PASSWORD:?}" "${PROMETHEUS_ENDPOINT:?}"
if [ -z "${TEMPORAL_BROADCAST_ADDRESS:-}" ]; then
  TEMPORAL_BROADCAST_ADDRESS=$(hostname -i | cut -d ' ' -f 1)
fi
export TEMPORAL_BROADCAST_ADDRESS
# --allow-no-auth: no authorizer, as the dev server; the frontend is reachable on the stack's network only
exec temporal-server --config-file /etc/temporal/server.yaml --allow-no-auth start --service "$1"
