#!/bin/sh
# The production compose's one-shot namespace job, once the cluster serves: namespace `default` and the
# product's five Keyword search attributes (deploy/README.md, "What Temporal needs"), each created by a call of its
# own (with several --name flags the CLI registers only the first), until the frontend lists them all. What exists
# already is left as it is. A new namespace reaches the services' namespace caches some seconds after its
# creation ("Namespace default is not found" meanwhile): each step is tried again, for a minute at most.
set -eu
address=${TEMPORAL_ADDRESS:?}
namespace=${TEMPORAL_NAMESPACE:?}
attributes="KubernetesNamespace VirtualMachine Snapshot SnapshotOperation VirtualMachineSnapshotSchedule"
t() { temporal "$@" --address "$address"; }
listed() { t operator search-attribute list --namespace "$namespace" --output json 2>/dev/null | grep -q "\"$1\""; }
deadline=$(($(date +%s) + 60))
give_up() { [ "$(date +%s)" -lt "$deadline" ] || { echo "setup-namespace: $1 after 60 s" >&2; exit 1; }; sleep 1; }

t operator namespace describe --namespace "$namespace" >/dev/null 2>&1 \
  || t operator namespace create --namespace "$namespace" --retention 7d
for name in $attributes; do
  until listed "$name"; do
    t operator search-attribute create --namespace "$namespace" --name "$name" --type Keyword 2>&1 || true
    listed "$name" || give_up "search attribute $name not listed"
  done
done
echo "setup-namespace: namespace $namespace with $attributes"
