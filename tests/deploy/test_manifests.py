"""The kustomize builds hang together: commands, settings, ports, probes, mounts and names each refer to something
real — a console script, a Settings variable, a container port, a Secret the pod mounts, the Service the
generated webhook configuration calls. No cluster needed; test_dry_run.py sends the same builds to the apiserver."""

from __future__ import annotations

import posixpath

import pytest

from api.names import SERVED_VERSIONS, SNAPSHOT_PLURAL, VERSION
from api.schedule_names import SCHEDULE_GROUP, SCHEDULE_VERSION
from bridge.admission.manifests import CERT_MANAGER_INJECT_CA_ANNOTATION, IN_CLUSTER_SERVICE
from runtime.settings import Settings
from tests.deploy.manifests import (
    OVERLAYS,
    build,
    code_env_names,
    console_scripts,
    container,
    env,
    is_cert_manager,
    of_kind,
    one,
    product_env_names,
    pyproject,
)

NAMESPACE = IN_CLUSTER_SERVICE.namespace
COMMANDS = {"vmsnap-worker": "vmsnap-worker", "vmsnap-bridge": "vmsnap-bridge"}  # Deployment → console script


def value(deployment, name: str, default=None):
    entry = env(deployment).get(name)
    return entry["value"] if entry and "value" in entry else default


def port_number(deployment, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container(deployment).get("ports", []) if p["name"] == port]
    return number


def mounted_secret_file(deployment, path: str) -> tuple[str, str]:
    """(Secret name, key) of the file at `path` in the pod, failing if no mounted Secret provides it."""
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container(deployment).get("volumeMounts", []):
        directory, filename = posixpath.split(path)
        secret = volumes[mount["name"]].get("secret")
        if secret and directory == mount["mountPath"]:
            keys = [i["path"] for i in secret.get("items", [])]
            assert not keys or filename in keys, f"{path}: key {filename} is not among the mounted items {keys}"
            return secret["secretName"], filename
    raise AssertionError(f"{deployment['metadata']['name']}: nothing mounted provides {path}")


@pytest.fixture(params=OVERLAYS)
def objects(request):
    return build(request.param)


def test_each_process_runs_its_console_script(objects):
    scripts = console_scripts()
    for name, script in COMMANDS.items():
        deployment = one(objects, "Deployment", name)
        assert container(deployment)["command"] == [script]
        assert script in scripts


def test_every_variable_set_is_one_the_product_reads(objects):
    known = product_env_names()
    for deployment in of_kind(objects, "Deployment"):
        unknown = set(env(deployment)) - known
        assert not unknown, f"{deployment['metadata']['name']} sets variables nothing reads: {sorted(unknown)}"


def test_the_kubelet_waits_longer_than_the_worker_drains(objects):
    worker = one(objects, "Deployment", "vmsnap-worker")
    drain = float(value(worker, "VMSNAP_GRACEFUL_SHUTDOWN_SECONDS",
                        Settings.model_fields["graceful_shutdown_seconds"].default))
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain


def test_worker_probes_and_ports_are_the_ones_it_serves(objects):
    worker = one(objects, "Deployment", "vmsnap-worker")
    c = container(worker)
    health = int(value(worker, "VMSNAP_HEALTH_PORT", Settings.model_fields["health_port"].default))
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        assert c[probe]["httpGet"]["path"] == path
        assert port_number(worker, c[probe]["httpGet"]["port"]) == health
    metrics = int(value(worker, "VMSNAP_METRICS_PORT", Settings.model_fields["metrics_port"].default))
    assert port_number(worker, "metrics") == metrics


def test_bridge_probes_and_the_webhook_service_reach_what_it_serves(objects):
    bridge = one(objects, "Deployment", "vmsnap-bridge")
    c = container(bridge)
    webhook_port = int(value(bridge, "VMSNAP_WEBHOOK_PORT", Settings.model_fields["webhook_port"].default))
    health_port = int(value(bridge, "VMSNAP_HEALTH_PORT", Settings.model_fields["health_port"].default))
    assert (c["readinessProbe"]["httpGet"]["scheme"], port_number(bridge, c["readinessProbe"]["httpGet"]["port"])) \
        == ("HTTPS", webhook_port)
    assert port_number(bridge, c["livenessProbe"]["httpGet"]["port"]) == health_port

    service = one(objects, "Service", IN_CLUSTER_SERVICE.name)
    assert service["metadata"]["namespace"] == IN_CLUSTER_SERVICE.namespace
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == IN_CLUSTER_SERVICE.port]
    assert port_number(bridge, port["targetPort"]) == webhook_port
    pod_labels = bridge["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    for configuration in (*of_kind(objects, "MutatingWebhookConfiguration"),
                          *of_kind(objects, "ValidatingWebhookConfiguration")):
        for webhook in configuration["webhooks"]:
            reference = webhook["clientConfig"]["service"]
            assert (reference["name"], reference["namespace"], reference["port"]) == \
                (service["metadata"]["name"], service["metadata"]["namespace"], port["port"])


def test_files_the_settings_name_are_mounted(objects):
    bridge = one(objects, "Deployment", "vmsnap-bridge")
    cert_secret, cert_key = mounted_secret_file(bridge, value(bridge, "VMSNAP_WEBHOOK_CERT_FILE"))
    key_secret, key_key = mounted_secret_file(bridge, value(bridge, "VMSNAP_WEBHOOK_KEY_FILE"))
    assert cert_secret == key_secret and (cert_key, key_key) == ("tls.crt", "tls.key")  # a kubernetes.io/tls Secret
    worker = one(objects, "Deployment", "vmsnap-worker")
    for variable in ("VSPHERE_PASSWORD_FILE", "VSPHERE_CA_FILE"):
        if value(worker, variable):
            assert mounted_secret_file(worker, value(worker, variable))[0] == "vmsnap-vcenter"


def test_the_bridge_gets_no_vcenter_secret(objects):
    bridge = one(objects, "Deployment", "vmsnap-bridge")
    assert "vmsnap-vcenter" not in str(bridge["spec"]["template"])
    assert not {"VSPHERE_URL", "VSPHERE_PASSWORD", "VSPHERE_PASSWORD_FILE"} & set(env(bridge))


def test_availability(objects):
    worker, bridge = one(objects, "Deployment", "vmsnap-worker"), one(objects, "Deployment", "vmsnap-bridge")
    assert worker["spec"]["replicas"] >= 3
    assert bridge["spec"]["replicas"] == 2
    # a rolling update never takes the admission webhook (failurePolicy Fail) below its replica count
    assert bridge["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    for deployment in (worker, bridge):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (budget,) = [p for p in of_kind(objects, "PodDisruptionBudget")
                     if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        replicas = deployment["spec"]["replicas"]
        allowed = budget["spec"].get("maxUnavailable", replicas - budget["spec"].get("minAvailable", 0))
        assert 1 <= allowed < replicas, f"{deployment['metadata']['name']}: drains must proceed, never all at once"


def test_resources_and_security(objects):
    for deployment in of_kind(objects, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        c = container(deployment)
        assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory",
                                                                                   "ephemeral-storage"}
        for volume in pod["volumes"]:  # a runaway writer is evicted rather than filling the node's disk
            assert "emptyDir" not in volume or volume["emptyDir"].get("sizeLimit"), volume
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}}
        assert c["image"] == f"vmsnap:{pyproject()['project']['version']}"


# what the processes dial: DNS, the apiserver (443 or 6443), Temporal's frontend, vCenter (the worker; 443) and the
# OTLP collector (gRPC)
EGRESS_PORTS = {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP"), (7233, "TCP"), (4317, "TCP")}


def test_production_network_policies_allow_exactly_what_each_pod_serves_and_dials():
    objects = build("production")
    policies = of_kind(objects, "NetworkPolicy")
    for deployment in of_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (policy,) = [p for p in policies
                     if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}  # all else denied
        served = {(p["name"], "TCP") for p in container(deployment)["ports"]}
        allowed_in = {(p["port"], p["protocol"]) for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert allowed_in == served, deployment["metadata"]["name"]
        allowed_out = {(p["port"], p["protocol"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert allowed_out == EGRESS_PORTS, deployment["metadata"]["name"]
    assert not of_kind(build("standalone"), "NetworkPolicy")  # labs and dev clusters often enforce none


def test_only_the_schedules_component_lets_the_product_create_or_delete_objects():
    """Least privilege by default: create and delete (a schedule run's snapshots and pruning, a group's members and
    their undo) and every grant on our own group's kinds come with components/schedules and
    components/group-snapshots, which the standalone overlay includes and the others do not."""
    def schedule_grants(objects) -> set[tuple[str, str, str]]:
        return {(role["metadata"]["name"], resource, verb) for role in of_kind(objects, "ClusterRole")
                for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]
                if resource == SNAPSHOT_PLURAL and verb in ("create", "delete")
                or SCHEDULE_GROUP in rule["apiGroups"]}
    with_schedules = {("vmsnap-worker-schedules", "virtualmachinesnapshots", "create"),
                      ("vmsnap-worker-schedules", "virtualmachinesnapshots", "delete"),
                      ("vmsnap-worker-schedules", "virtualmachinesnapshotschedules", "get"),
                      ("vmsnap-worker-schedules", "virtualmachinesnapshotschedules/status", "patch"),
                      ("vmsnap-bridge-schedules", "virtualmachinesnapshotschedules", "get"),
                      ("vmsnap-bridge-schedules", "virtualmachinesnapshotschedules", "list"),
                      ("vmsnap-bridge-schedules", "virtualmachinesnapshotschedules", "watch"),
                      ("vmsnap-bridge-schedules", "virtualmachinesnapshotschedules/status", "patch")}
    with_groups = {("vmsnap-worker-group-snapshots", "virtualmachinesnapshots", "create"),
                   ("vmsnap-worker-group-snapshots", "virtualmachinesnapshots", "delete"),
                   ("vmsnap-worker-group-snapshots", "virtualmachinegroupsnapshots", "get"),
                   ("vmsnap-worker-group-snapshots", "virtualmachinegroupsnapshots/status", "patch"),
                   ("vmsnap-bridge-group-snapshots", "virtualmachinegroupsnapshots", "get"),
                   ("vmsnap-bridge-group-snapshots", "virtualmachinegroupsnapshots", "list"),
                   ("vmsnap-bridge-group-snapshots", "virtualmachinegroupsnapshots", "watch")}
    assert schedule_grants(build("standalone")) == with_schedules | with_groups
    for overlay in ("production", "namespaced"):
        assert schedule_grants(build(overlay)) == set(), overlay
        assert not [c for c in of_kind(build(overlay), "CustomResourceDefinition")
                    if c["spec"]["group"] == SCHEDULE_GROUP], overlay


def test_service_accounts_and_bindings_resolve(objects):
    accounts = {(a["metadata"]["namespace"], a["metadata"]["name"]) for a in of_kind(objects, "ServiceAccount")}
    for deployment in of_kind(objects, "Deployment"):
        assert (NAMESPACE, deployment["spec"]["template"]["spec"]["serviceAccountName"]) in accounts
    roles = {r["metadata"]["name"] for r in of_kind(objects, "ClusterRole")}
    for binding in of_kind(objects, "ClusterRoleBinding"):
        assert binding["roleRef"]["name"] in roles
        assert {(s["namespace"], s["name"]) for s in binding["subjects"]} <= accounts


def test_overlays_differ_where_vm_operator_does():
    standalone, production = build("standalone"), build("production")

    def crds(objects) -> set[str]:
        return {c["metadata"]["name"] for c in of_kind(objects, "CustomResourceDefinition")}
    # VM Operator's there; schedules and group snapshots are the standalone overlay's (components/schedules,
    # components/group-snapshots), a choice in production
    assert crds(standalone) - crds(production) == {"virtualmachines.vmoperator.vmware.com",
                                                   "virtualmachinesnapshotschedules.vmsnap.io",
                                                   "virtualmachinegroupsnapshots.vmsnap.io"}
    assert value(one(standalone, "Deployment", "vmsnap-worker"), "VMSNAP_CSI_SYNC") == "skip"
    assert value(one(production, "Deployment", "vmsnap-worker"), "VMSNAP_CSI_SYNC") is None  # handshake
    assert value(one(production, "Deployment", "vmsnap-worker"), "VSPHERE_CA_FILE")
    assert env(one(production, "Deployment", "vmsnap-worker"))["OTEL_EXPORTER_OTLP_ENDPOINT"]


def test_crds_serve_both_versions_alike_and_the_webhooks_admit_every_served_version(objects):
    # The CRD files write v1alpha5 as YAML aliases of v1alpha6: the build (kubectl's kustomize) expands them.
    served: dict[str, set[str]] = {}
    for crd in of_kind(objects, "CustomResourceDefinition"):
        versions = {v["name"]: v for v in crd["spec"]["versions"]}
        if crd["spec"]["group"] == SCHEDULE_GROUP:  # ours, one version (api/schedule_names.py)
            assert set(versions) == {SCHEDULE_VERSION} and versions[SCHEDULE_VERSION]["storage"]
            served[crd["spec"]["names"]["plural"]] = set(versions)
            continue
        assert set(versions) == {"v1alpha5", "v1alpha6"}, crd["metadata"]["name"]
        assert [name for name, v in versions.items() if v["storage"]] == [VERSION] == ["v1alpha6"]
        assert crd["spec"]["conversion"] == {"strategy": "None"}
        assert versions["v1alpha5"]["schema"] == versions["v1alpha6"]["schema"]
        assert versions["v1alpha6"]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        served[crd["spec"]["names"]["plural"]] = set(versions)
    assert SNAPSHOT_PLURAL in served
    webhooks = [w for c in (*of_kind(objects, "MutatingWebhookConfiguration"),
                            *of_kind(objects, "ValidatingWebhookConfiguration")) for w in c["webhooks"]]
    assert webhooks
    for webhook in webhooks:
        for rule in webhook["rules"]:
            for resource in rule["resources"]:
                # a CRD the build does not hold: VM Operator's VirtualMachine (production) serves both as well; the
                # schedules' one version, where components/schedules is not included (the webhook is then idle)
                elsewhere = {SCHEDULE_VERSION} if SCHEDULE_GROUP in rule["apiGroups"] else set(SERVED_VERSIONS)
                assert set(rule["apiVersions"]) == served.get(resource, elsewhere), webhook["name"]


# cert-manager's CRDs are not in the test bed, so these objects cannot go through the apiserver's dry run: their
# wiring is checked here instead, end to end from the webhook configurations to the Secret the bridge mounts.

def test_cert_manager_issues_the_secret_the_bridge_mounts_for_the_name_the_apiserver_calls(objects):
    bridge = one(objects, "Deployment", "vmsnap-bridge")
    secret, _ = mounted_secret_file(bridge, value(bridge, "VMSNAP_WEBHOOK_CERT_FILE"))
    (certificate,) = [c for c in of_kind(objects, "Certificate") if c["spec"]["secretName"] == secret]
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    service = f"{IN_CLUSTER_SERVICE.name}.{IN_CLUSTER_SERVICE.namespace}.svc"
    assert service in certificate["spec"]["dnsNames"]
    assert "server auth" in certificate["spec"].get("usages", ["server auth"])

    # cainjector fills every caBundle from the Certificate the annotation names
    name = f"{certificate['metadata']['namespace']}/{certificate['metadata']['name']}"
    for configuration in (*of_kind(objects, "MutatingWebhookConfiguration"),
                          *of_kind(objects, "ValidatingWebhookConfiguration")):
        assert configuration["metadata"]["annotations"][CERT_MANAGER_INJECT_CA_ANNOTATION] == name

    # the issuer chain ends in this build: serving cert ← CA Issuer ← CA Certificate ← self-signed Issuer
    issuer = one(objects, "Issuer", certificate["spec"]["issuerRef"]["name"])
    assert certificate["spec"]["issuerRef"]["kind"] == "Issuer"
    assert issuer["metadata"]["namespace"] == certificate["metadata"]["namespace"]
    ca_secret = issuer["spec"]["ca"]["secretName"]
    (ca,) = [c for c in of_kind(objects, "Certificate") if c["spec"]["secretName"] == ca_secret]
    assert ca["spec"]["isCA"] is True
    assert "selfSigned" in one(objects, "Issuer", ca["spec"]["issuerRef"]["name"])["spec"]


def test_only_cert_manager_objects_are_left_to_cert_manager(objects):
    assert {(o["apiVersion"], o["kind"]) for o in objects if is_cert_manager(o)} == \
        {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}
    assert all(o["metadata"]["namespace"] == NAMESPACE for o in objects if is_cert_manager(o))


def test_nothing_but_the_settings_reads_the_environment():
    assert code_env_names() == frozenset()
