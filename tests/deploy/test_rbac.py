"""Least privilege, asked of the REAL authorizer: authenticated as each ServiceAccount (a token the apiserver
issued), SelfSubjectAccessReviews over a matrix of resources × verbs × namespaces must be allowed exactly where
the code needs them (NEEDED, each row traced to its call) and denied everywhere else — Secrets, Deployments,
deletes, the VirtualMachine finalizers, other groups. test_service_accounts.py then runs the processes as these
identities end to end. The module scan at the bottom fails when the code starts using a kind of Kubernetes client
call this table has not seen (a new resource reached through the generic custom-object calls it already uses is
for the end-to-end run, and the reviewer, to catch)."""

from __future__ import annotations

import ast
import inspect
import re

import pytest
from kubernetes import client, config

from api.group_snapshot_names import GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_PLURAL
from api.names import (
    CAPABILITIES_CONFIG_MAP_NAME,
    CAPABILITIES_CONFIG_MAP_NAMESPACE,
    CAPABILITIES_GROUP,
    CAPABILITIES_PLURAL,
    CAPABILITIES_VERSION,
    GROUP,
    SUPERVISOR_CAPABILITIES_NAME,
)
from api.schedule_names import SCHEDULE_GROUP, SCHEDULE_PLURAL
from runtime.kube import Kube
from tests.deploy.manifests import REPO

NAMESPACE = "vmsnap-system"
VOLUME_SNAPSHOTS = ("snapshot.storage.k8s.io", "volumesnapshots", "")
SNAPSHOTS, SNAPSHOTS_STATUS = (GROUP, "virtualmachinesnapshots", ""), (GROUP, "virtualmachinesnapshots", "status")
VMS, VMS_STATUS = (GROUP, "virtualmachines", ""), (GROUP, "virtualmachines", "status")
SCHEDULES = (SCHEDULE_GROUP, SCHEDULE_PLURAL, "")
SCHEDULES_STATUS = (SCHEDULE_GROUP, SCHEDULE_PLURAL, "status")
GROUP_SNAPSHOTS = (GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_PLURAL, "")
GROUP_SNAPSHOTS_STATUS = (GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_PLURAL, "status")
VM_GROUPS = (GROUP, "virtualmachinegroups", "")

# base/rbac: what every installation grants
BASE_NEEDED: dict[str, dict[tuple[str, str, str], set[str]]] = {
    "vmsnap-worker": {
        SNAPSHOTS: {"get", "list", "update", "patch"},  # Kube.get_snapshot, list_snapshots, _update (PUT),
        # annotate_snapshot (merge patch)
        SNAPSHOTS_STATUS: {"update", "patch"},     # Kube._update(status=True): PUT or JSON patch
        VMS: {"get", "list", "watch", "update"},   # Kube.get_vm, BoundVMs (list + watch), _update (revert)
        VMS_STATUS: {"update", "patch"},           # tree status, the revert condition
        ("", "persistentvolumeclaims", ""): {"get"},  # kube_compute_requested_storage
        VOLUME_SNAPSHOTS: {"list"},                # Kube.list_volume_snapshots (revert preflight)
        ("", "events", ""): {"create"},            # EventRecorder.record
    },
    "vmsnap-bridge": {
        SNAPSHOTS: {"get", "list", "watch"},       # Informer (list pages + watch), ClusterReader (get, list)
        VMS: {"get", "list", "watch"},             # Informer, ClusterReader
    },
}
# components/schedules: what schedule runs add (the standalone overlay, installed here, includes it)
SCHEDULES_NEEDED: dict[str, dict[tuple[str, str, str], set[str]]] = {
    "vmsnap-worker": {
        SNAPSHOTS: {"create", "delete"},           # a schedule's runs: Kube.create_object, delete_object
        SCHEDULES: {"get"},                        # Kube.get_schedule
        SCHEDULES_STATUS: {"patch"},               # Kube.update_schedule_status (a run's record)
    },
    "vmsnap-bridge": {
        SCHEDULES: {"get", "list", "watch"},       # Kube.schedules_unavailable (at start), Informer,
        # update_schedule_status
        SCHEDULES_STATUS: {"patch"},               # Kube.update_schedule_status (conditions, next run)
    },
}

# components/group-snapshots: what group snapshots add (the standalone overlay includes it)
GROUP_SNAPSHOTS_NEEDED: dict[str, dict[tuple[str, str, str], set[str]]] = {
    "vmsnap-worker": {
        SNAPSHOTS: {"create", "delete"},           # a group's members and their undo: create_object, delete_object
        GROUP_SNAPSHOTS: {"get"},                  # Kube.get_group_snapshot
        GROUP_SNAPSHOTS_STATUS: {"patch"},         # Kube.update_group_snapshot_status (the saga's record)
        VM_GROUPS: {"get"},                        # spec.vmGroupName: Kube.get_object (VM Operator's group)
    },
    "vmsnap-bridge": {
        GROUP_SNAPSHOTS: {"get", "list", "watch"},  # Kube.group_snapshots_unavailable (at start), Informer,
        # ClusterReader.group_snapshot (a member's deletion)
        VM_GROUPS: {"get"},                        # ClusterReader.read_vm_group (spec.vmGroupName)
    },
}


def union(*grants: dict[str, dict[tuple[str, str, str], set[str]]]) -> dict[str, dict[tuple[str, str, str], set[str]]]:
    merged: dict[str, dict[tuple[str, str, str], set[str]]] = {}
    for grant in grants:
        for account, rows in grant.items():
            for resource, verbs in rows.items():
                merged.setdefault(account, {}).setdefault(resource, set()).update(verbs)
    return merged


NEEDED = union(BASE_NEEDED, SCHEDULES_NEEDED, GROUP_SNAPSHOTS_NEEDED)
# ... and everything else a compromised process could want
OTHERS = [
    (GROUP, "virtualmachines", "finalizers"), (GROUP, "virtualmachinesnapshots", "finalizers"),
    ("", "secrets", ""), ("", "configmaps", ""), ("", "pods", ""), ("", "pods", "exec"),
    ("", "persistentvolumeclaims", "status"), ("", "serviceaccounts", "token"), ("", "namespaces", ""),
    ("events.k8s.io", "events", ""), ("apps", "deployments", ""), ("rbac.authorization.k8s.io", "clusterroles", ""),
    ("rbac.authorization.k8s.io", "clusterrolebindings", ""),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", ""),
    ("apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("snapshot.storage.k8s.io", "volumesnapshotcontents", ""),
]
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
CLUSTER_SCOPED = {"namespaces", "clusterroles", "clusterrolebindings", "validatingwebhookconfigurations",
                  "customresourcedefinitions", "volumesnapshotcontents"}


def allowed(api: client.ApiClient, resource: tuple[str, str, str], verb: str, namespace: str, name: str = "") -> bool:
    group, plural, subresource = resource
    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(group=group, resource=plural, subresource=subresource,
                                                        verb=verb, namespace=namespace or None, name=name or None)))
    return client.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed


def granted(api: client.ApiClient, namespace: str) -> dict[tuple[str, str, str], set[str]]:
    grants: dict[tuple[str, str, str], set[str]] = {}
    for resource in [*{r for rows in NEEDED.values() for r in rows}, *OTHERS]:
        where = "" if resource[1] in CLUSTER_SCOPED else namespace
        verbs = {verb for verb in VERBS if allowed(api, resource, verb, where)}
        if verbs:
            grants[resource] = verbs
    return grants


@pytest.mark.parametrize("account", sorted(NEEDED))
def test_the_account_gets_exactly_what_its_code_calls(account, service_account_kubeconfig, namespace):
    api = config.new_client_from_config(str(service_account_kubeconfig(NAMESPACE, account)))
    # a user's namespace, the product's own, the control plane's, and all namespaces at once (cluster-wide
    # list/watch: the informers and the tree resync)
    for where in (namespace, NAMESPACE, "kube-system", ""):
        assert granted(api, where) == NEEDED[account], f"{account} in namespace {where or '(all)'}"


# ... and, by name only (resourceNames), the two objects runtime/coexistence.py reads to learn whether VM Operator's
# own snapshot controller is on: (resource, namespace, name)
CAPABILITIES = (CAPABILITIES_GROUP, CAPABILITIES_PLURAL, "")
CAPABILITY_OBJECTS = [(CAPABILITIES, "", SUPERVISOR_CAPABILITIES_NAME),
                      (("", "configmaps", ""), CAPABILITIES_CONFIG_MAP_NAMESPACE, CAPABILITIES_CONFIG_MAP_NAME)]


@pytest.mark.parametrize("account", sorted(NEEDED))
def test_the_account_reads_vm_operators_capability_objects_by_name_and_nothing_beside(
        account, service_account_kubeconfig, namespace):
    api = config.new_client_from_config(str(service_account_kubeconfig(NAMESPACE, account)))
    for resource, where, name in CAPABILITY_OBJECTS:
        assert {verb for verb in VERBS if allowed(api, resource, verb, where, name)} == {"get"}, name
        assert not allowed(api, resource, "get", where, "another-name")
        assert not allowed(api, resource, "list", where)
    for where in (namespace, NAMESPACE):  # the ConfigMap's name elsewhere is nothing
        assert not allowed(api, ("", "configmaps", ""), "get", where, CAPABILITIES_CONFIG_MAP_NAME)
    # and the real reads, through the one Kubernetes layer: absent on the test bed (no Capabilities API, no
    # ConfigMap), a 404 each, never a 403
    kube = Kube(api)
    assert kube.get_cluster_object(CAPABILITIES_PLURAL, SUPERVISOR_CAPABILITIES_NAME, group=CAPABILITIES_GROUP,
                                   version=CAPABILITIES_VERSION) is None
    assert kube.get_config_map(CAPABILITIES_CONFIG_MAP_NAMESPACE, CAPABILITIES_CONFIG_MAP_NAME) is None


def test_what_a_compromised_process_could_try_is_refused(service_account_kubeconfig):
    """The same, as real calls rather than reviews."""
    worker = config.new_client_from_config(str(service_account_kubeconfig(NAMESPACE, "vmsnap-worker")))
    bridge = config.new_client_from_config(str(service_account_kubeconfig(NAMESPACE, "vmsnap-bridge")))
    refused = [
        lambda: client.CoreV1Api(worker).list_namespaced_secret("kube-system"),
        lambda: client.CoreV1Api(bridge).read_namespaced_secret("vmsnap-vcenter", NAMESPACE),
        lambda: client.CustomObjectsApi(worker).delete_namespaced_custom_object(GROUP, "v1alpha5", "default",
                                                                                "virtualmachines", "any"),
        lambda: client.AppsV1Api(worker).patch_namespaced_deployment("vmsnap-worker", NAMESPACE,
                                                                     {"spec": {"replicas": 0}}),
        lambda: client.CustomObjectsApi(bridge).patch_namespaced_custom_object_status(
            GROUP, "v1alpha5", "default", "virtualmachinesnapshots", "any", {"status": {}}),
    ]
    for call in refused:
        with pytest.raises(client.ApiException) as refusal:
            call()
        assert refusal.value.status == 403


def test_the_importer_role_is_granted_per_namespace(importer_kubeconfig, namespace):
    """vmsnap-vm-importer, bound by a RoleBinding, reaches exactly the calls of worker/vm_importer.py, in that
    namespace only (test_service_accounts.py runs the command with it)."""
    api = config.new_client_from_config(str(importer_kubeconfig))
    assert granted(api, namespace) == {VMS: {"get", "create", "patch"}, VMS_STATUS: {"patch"}}
    assert granted(api, "kube-system") == {}


# --- the calls the code makes --------------------------------------------------------------------------------

# the Kubernetes calls each process's code makes: methods of the one access layer (runtime/kube.py, whose methods
# each make one kind of request) and of the kubernetes client, and the rows of NEEDED they need
KNOWN_CALLS = {
    "vmsnap-worker": {"get_snapshot", "get_vm", "list_vm_snapshots", "list_vms", "list_volume_snapshots",
                      "update_snapshot", "update_vm", "annotate_snapshot",
                      # BoundVMs' informer (runtime/informer.py): the VMs bound to vCenter VMs
                      "list_object_pages", "watch_objects", "Watch",
                      "read_pvc", "create_event",
                      # a schedule's runs (activities/kube_schedule.py)
                      "list_objects", "get_schedule", "update_schedule_status", "create_object", "delete_object",
                      # runtime/coexistence.py: VM Operator's snapshot capability, by name
                      "get_cluster_object", "get_config_map",
                      # a group snapshot's saga (activities/kube_group_snapshot.py); get_object: VM Operator's
                      # VirtualMachineGroup (spec.vmGroupName)
                      "get_group_snapshot", "update_group_snapshot_status", "get_object"},
    "vmsnap-bridge": {"get_object", "list_objects", "list_object_pages", "watch_objects", "Watch",
                      "update_schedule_status", "get_cluster_object", "get_config_map",
                      # whether schedules are served at all (components/schedules): a list of one
                      "schedules_unavailable",
                      # whether group snapshots are served at all (components/group-snapshots)
                      "group_snapshots_unavailable"},
}
SOURCES = {"vmsnap-worker": ["activities/**/*.py", "worker/main.py", "runtime/informer.py", "runtime/coexistence.py"],
           "vmsnap-bridge": ["bridge/**/*.py", "runtime/informer.py", "runtime/coexistence.py"]}
API_METHOD = re.compile(r"^(get|list|read|create|replace|patch|delete|connect)_\w*(namespaced|cluster|custom_object)"
                        r"\w*$|^Watch$")
KUBE_METHODS = {name for name, member in vars(Kube).items()
                if not name.startswith("_") and inspect.isfunction(member)}  # not Kube.core: an API, no request


@pytest.mark.parametrize("account", sorted(KNOWN_CALLS))
def test_no_kind_of_kubernetes_call_without_its_permission(account):
    used: set[str] = set()
    for pattern in SOURCES[account]:
        for source in REPO.glob(pattern):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.Attribute) and (API_METHOD.match(node.attr) or node.attr in KUBE_METHODS):
                    used.add(node.attr)
    assert used == KNOWN_CALLS[account], (
        f"{account}'s code now uses {sorted(used - KNOWN_CALLS[account])} (and no longer "
        f"{sorted(KNOWN_CALLS[account] - used)}): update deploy/base/rbac/ and NEEDED/KNOWN_CALLS here")
