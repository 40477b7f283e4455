"""Search attributes that make every operation on a VM findable in the Temporal UI and CLI, e.g.
`temporal workflow list --query "VirtualMachine = 'my-vm' AND KubernetesNamespace = 'team-a'"`."""

from temporalio.common import SearchAttributeKey

KUBERNETES_NAMESPACE = SearchAttributeKey.for_keyword("KubernetesNamespace")
VIRTUAL_MACHINE = SearchAttributeKey.for_keyword("VirtualMachine")
SNAPSHOT = SearchAttributeKey.for_keyword("Snapshot")
OPERATION = SearchAttributeKey.for_keyword("SnapshotOperation")

ALL = (KUBERNETES_NAMESPACE, VIRTUAL_MACHINE, SNAPSHOT, OPERATION)

# `temporal server start-dev --search-attribute Name=Keyword` arguments
DEV_SERVER_SEARCH_ATTRIBUTES = tuple(f"{key.name}=Keyword" for key in ALL)
