#!/usr/bin/env bash
# May the workers be rolled back from the image they run? deploy/README.md, "Upgrading", says when to ask.
#
# Usage: deploy/rollback-check.sh [IMAGE]
#   IMAGE: the version being rolled back from (default: the image deployment/vmsnap-worker runs now).
#
# The version before IMAGE cannot replay an operation whose workflow started on IMAGE's code when IMAGE changed
# that workflow (the branches of contract/compat.py serve older histories, never newer ones). This lists the
# creates, reverts and deletes still running that started since IMAGE's rollout began (the creation of the
# worker ReplicaSet that runs it): exit 0 when there are none, 1 (with their IDs) when there are, 2 on an error.
# Needs kubectl on the cluster and the temporal CLI on the product's Temporal namespace (TEMPORAL_ADDRESS,
# TEMPORAL_NAMESPACE and, with TLS, TEMPORAL_TLS_CERT/_KEY/_CA_CERT or TEMPORAL_API_KEY, as for any `temporal`
# command). VMSNAP_NAMESPACE: the product's Kubernetes namespace (vmsnap-system).
set -euo pipefail
ns=${VMSNAP_NAMESPACE:-vmsnap-system}
fail() { echo "rollback-check: $*" >&2; exit 2; }

image=${1:-$(kubectl -n "$ns" get deployment vmsnap-worker \
  -o jsonpath='{.spec.template.spec.containers[?(@.name=="worker")].image}')} || fail "cannot read deployment/vmsnap-worker"
[[ -n $image ]] || fail "deployment/vmsnap-worker names no worker image"
# the oldest ReplicaSet that ran IMAGE: a Deployment rolled back and forth again reuses it (an earlier bound is
# the safe side: it lists more)
since=$(kubectl -n "$ns" get replicaset -l app.kubernetes.io/name=vmsnap-worker -o \
  jsonpath='{range .items[*]}{.metadata.creationTimestamp}{" "}{.spec.template.spec.containers[?(@.name=="worker")].image}{"\n"}{end}' \
  | awk -v image="$image" '$2 == image { print $1 }' | sort | head -n 1) || fail "cannot list the worker ReplicaSets"
[[ -n $since ]] || fail "no ReplicaSet of deployment/vmsnap-worker ran $image"

query="ExecutionStatus = 'Running' AND WorkflowType IN ('CreateSnapshot', 'RevertSnapshot', 'DeleteSnapshot') \
AND StartTime >= '$since'"
counted=$(temporal workflow count --query "$query") || fail "temporal workflow count failed"
running=$(awk '/^Total:/ { print $2 }' <<<"$counted")
[[ $running =~ ^[0-9]+$ ]] || fail "unexpected answer from temporal workflow count: $counted"
if (( running == 0 )); then
  echo "rollback-check: no operation started on $image (since $since) is running: roll back"
  exit 0
fi
echo "rollback-check: $running operations started on $image (since $since) are running; the version before it" \
  "cannot run them. Roll back once they have ended (run this again):"
temporal workflow list --query "$query" --limit 50
exit 1
