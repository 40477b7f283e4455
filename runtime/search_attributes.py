"""Search attributes that make every operation on a VM findable in the Temporal UI and CLI, e.g.
`temporal workflow list --query "VirtualMachine = 'my-vm' AND KubernetesNamespace = 'team-a'"`."""

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

KUBERNETES_NAMESPACE = SearchAttributeKey.for_keyword("KubernetesNamespace")
VIRTUAL_MACHINE = SearchAttributeKey.for_keyword("VirtualMachine")
SNAPSHOT = SearchAttributeKey.for_keyword("Snapshot")
OPERATION = SearchAttributeKey.for_keyword("SnapshotOperation")
# the VirtualMachineSnapshotSchedule a scheduled run is of (workflows/scheduled_run.py)
SCHEDULE = SearchAttributeKey.for_keyword("VirtualMachineSnapshotSchedule")

ALL = (KUBERNETES_NAMESPACE, VIRTUAL_MACHINE, SNAPSHOT, OPERATION, SCHEDULE)



def for_vm(namespace: str, vm: str, **more: str) -> TypedSearchAttributes:
    """The attributes of a workflow about one VM (`snapshot=`, `operation=` for an operation's workflow)."""
    pairs = [SearchAttributePair(KUBERNETES_NAMESPACE, namespace), SearchAttributePair(VIRTUAL_MACHINE, vm)]
    if "snapshot" in more:
        pairs.append(SearchAttributePair(SNAPSHOT, more["snapshot"]))
    if "operation" in more:
        pairs.append(SearchAttributePair(OPERATION, more["operation"]))
    return TypedSearchAttributes(pairs)


# `temporal server start-dev --search-attribute Name=Keyword` arguments
DEV_SERVER_SEARCH_ATTRIBUTES = tuple(f"{key.name}=Keyword" for key in ALL)


# --- scheduled runs ---
# Temporal's own, on every workflow a Schedule starts: the run's nominal time
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def for_schedule(namespace: str, name: str) -> TypedSearchAttributes:
    return TypedSearchAttributes([SearchAttributePair(KUBERNETES_NAMESPACE, namespace),
                                  SearchAttributePair(SCHEDULE, name),
                                  SearchAttributePair(OPERATION, "ScheduledSnapshotRun")])



# --- group snapshots ---
def for_group_snapshot(namespace: str, name: str) -> TypedSearchAttributes:
    """A group's saga: found by its namespace, and by the group's name as the snapshot it is."""
    return TypedSearchAttributes([SearchAttributePair(KUBERNETES_NAMESPACE, namespace),
                                  SearchAttributePair(SNAPSHOT, name),
                                  SearchAttributePair(OPERATION, "GroupSnapshot")])
