#!/bin/sh
# The production compose's one-shot namespace job, once the cluster serves: namespace `default` and the
# product's five Keyword search attributes (deploy/README.md, "What Temporal needs"), each created by a call of its
# own (with several --name flags the CLI registers only the first), then polled until the frontend lists them all.
# What exists already is left as it is.
set -eu
address=${TEMPORAL_ADDRESS:?}
namespace=${TEMPORAL_NAMESPACE:?}
attributes="KubernetesNamespace VirtualMachine Snapshot SnapshotOperation VirtualMachineSnapshotSchedule"
t() { temporal "$@" --address "$address"; }

t operator namespace describe --namespace "$namespace" >/dev/null 2>&1 \
  || t operator namespace create --namespace "$namespace" --retention 7d
tries=0
until t operator namespace describe --namespace "$namespace" >/dev/null 2>&1; do
  tries=$((tries + 1)); [ "$tries" -lt 60 ] || { echo "namespace $namespace not visible" >&2; exit 1; }
  sleep 1
done
listed() { t operator search-attribute list --namespace "$namespace" --output json; }
for name in $attributes; do
  listed | grep -q "\"$name\"" \
    || t operator search-attribute create --namespace "$namespace" --name "$name" --type Keyword
done
tries=0
for name in $attributes; do
  until listed | grep -q "\"$name\""; do
    tries=$((tries + 1)); [ "$tries" -lt 60 ] || { echo "search attribute $name not listed" >&2; exit 1; }
    sleep 1
  done
done
echo "namespace $namespace with $attributes"
