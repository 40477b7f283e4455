"""docker-compose.yml, structurally (test_compose_up.py brings it up for real): the parts of `make dev` are all
there, the product's services run console scripts with variables the product reads, every address names a
service and a port it listens on, and the set-up scripts are Python that imports what exists."""

from __future__ import annotations

import ast
import importlib.util
import re
from urllib.parse import urlsplit

import pytest
import yaml

from runtime.search_attributes import DEV_SERVER_SEARCH_ATTRIBUTES
from testbed.stack import PRODUCT_PORTS
from tests.deploy.manifests import REPO, console_scripts, product_env_names

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PRODUCT = {"worker": "vmsnap-worker", "bridge": "vmsnap-bridge"}       # service → console script
PRODUCT_IMAGE = {name for name, s in SERVICES.items() if s.get("build") == "."}


def flag(service: str, name: str) -> str:
    """The value of `--name value`, `--name=value` or `-name value` in a service's command."""
    command = [str(a) for a in SERVICES[service]["command"]]
    for i, argument in enumerate(command):
        if argument.startswith(f"{name}="):
            return argument.split("=", 1)[1]
        if argument == name:
            return command[i + 1]
    raise AssertionError(f"{service} has no {name}")


def environment(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def published(service: str) -> dict[int, int]:
    """container port → host port."""
    return {int(p.split(":")[-1]): int(p.split(":")[-2]) for p in SERVICES[service].get("ports", [])}


def python_script(service: str) -> str | None:
    command = SERVICES[service]["command"]
    return command[2] if command[:2] == ["python", "-c"] else None


def test_the_parts_of_the_dev_stack_are_there():
    assert {"temporal", "vcsim", "etcd", "kube-apiserver", "kube-controller-manager", "setup", "csi-driver",
            "worker", "bridge", "jaeger"} <= set(SERVICES)
    assert PRODUCT.keys() <= PRODUCT_IMAGE


@pytest.mark.parametrize("service", sorted(PRODUCT))
def test_product_services_run_their_console_script(service):
    assert SERVICES[service]["command"] == [PRODUCT[service]]
    assert PRODUCT[service] in console_scripts()


def test_every_variable_set_on_the_product_image_is_one_the_product_reads():
    known = product_env_names() | {"PYTHONPATH"}  # Python's own: the test bed mounted from the clone
    for service in PRODUCT_IMAGE:
        unknown = set(environment(service)) - known
        assert not unknown, f"{service} sets variables nothing reads: {sorted(unknown)}"


def test_set_up_scripts_parse_and_import_what_exists():
    for service in PRODUCT_IMAGE:
        script = python_script(service)
        if script is None:
            continue
        for node in ast.walk(ast.parse(script)):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module] if isinstance(node, ast.ImportFrom) else [])
            for module in modules:
                assert importlib.util.find_spec(module) is not None, f"{service} imports {module}"
        assert "$" not in script, "compose would interpolate it"


def test_product_ports_are_the_dev_commands_and_published_as_such():
    for service, script in PRODUCT.items():
        env = environment(service)
        ports = PRODUCT_PORTS[f"{script.removeprefix('vmsnap-')}.main"]
        for variable in ("VMSNAP_HEALTH_PORT", "VMSNAP_METRICS_PORT"):
            assert env[variable] == ports[variable]
            assert published(service)[int(env[variable])] == int(env[variable])
        assert f"127.0.0.1:{env['VMSNAP_HEALTH_PORT']}/readyz" in " ".join(SERVICES[service]["healthcheck"]["test"])


def test_addresses_name_services_and_the_ports_they_listen_on():
    for service in PRODUCT:
        env = environment(service)
        host, port = env["TEMPORAL_ADDRESS"].split(":")
        assert (host, port) == ("temporal", flag("temporal", "--port"))
        assert env["TEMPORAL_NAMESPACE"] == flag("temporal", "--namespace")
        otlp = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert otlp.hostname in SERVICES and otlp.port == 4317   # Jaeger's OTLP/gRPC receiver
        assert env["KUBECONFIG"] == "/pki/kubeconfig"
    for service in ("worker", "setup"):
        vsphere = urlsplit(environment(service)["VSPHERE_URL"])
        assert (vsphere.hostname, str(vsphere.port)) == ("vcsim", flag("vcsim", "-l").split(":")[1])
        assert (vsphere.username, vsphere.password) == (flag("vcsim", "-username"), flag("vcsim", "-password"))

    # the apiserver: the port the kubeconfigs name, which the pki script writes
    assert f"https://kube-apiserver:{flag('kube-apiserver', '--secure-port')}" in python_script("pki")
    etcd_port = urlsplit(flag("etcd", "--listen-client-urls")).port
    assert flag("kube-apiserver", "--etcd-servers") == f"http://etcd:{etcd_port}"
    # the webhook: registered at the bridge's name and port, with a certificate for that name
    bridge_port = environment("bridge")["VMSNAP_WEBHOOK_PORT"]
    assert f'UrlReference("https://bridge:{bridge_port}")' in python_script("setup")
    assert 'dns=("bridge",)' in python_script("pki")


def test_temporal_has_the_dev_stacks_search_attributes():
    command = SERVICES["temporal"]["command"]
    registered = {command[i + 1] for i, a in enumerate(command) if a == "--search-attribute"}
    assert registered == set(DEV_SERVER_SEARCH_ATTRIBUTES)


def test_the_worker_is_given_time_to_drain():
    grace = re.fullmatch(r"(\d+)s", SERVICES["worker"]["stop_grace_period"]).group(1)
    assert int(grace) > float(environment("worker")["VMSNAP_GRACEFUL_SHUTDOWN_SECONDS"])


def test_dependencies_and_builds_resolve():
    for name, service in SERVICES.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{dependency} has no health check"
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build["context"]
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (REPO / context / dockerfile).is_file(), f"{name}: no {context}/{dockerfile}"
        else:
            tag = service["image"].partition(":")[2]
            assert tag and tag != "latest", f"{name}: pin {service['image']}"


def test_services_that_run_test_bed_code_mount_it():
    """The product image holds no test bed: a service that imports it mounts it from the clone."""
    for service in PRODUCT_IMAGE:
        text = yaml.safe_dump(SERVICES[service].get("command"))
        if "testbed" in text:
            assert "./testbed:/opt/vmsnap-testbed/testbed:ro" in SERVICES[service]["volumes"], service
            assert environment(service)["PYTHONPATH"] == "/opt/vmsnap-testbed", service


def test_the_override_for_this_machine_changes_only_what_it_says():
    """tests/deploy/compose_here/compose.here.yml restates the apiserver's command to add one flag: the rest must
    stay docker-compose.yml's. Its services are the file's (plus the namespace holder), with Jaeger a profile."""
    class Loader(yaml.SafeLoader):
        pass
    for tag in ("!reset", "!override"):  # compose's merge tags: the value as written
        Loader.add_constructor(tag, lambda loader, node: (loader.construct_sequence(node)
                                                          if isinstance(node, yaml.SequenceNode)
                                                          else loader.construct_mapping(node)
                                                          if isinstance(node, yaml.MappingNode)
                                                          else loader.construct_scalar(node)))
    here = yaml.load((REPO / "tests" / "deploy" / "compose_here" / "compose.here.yml").read_text(),
                     Loader=Loader)["services"]
    assert set(here) - set(SERVICES) == {"loopback"}
    apiserver = here["kube-apiserver"]["command"]
    assert apiserver == [*SERVICES["kube-apiserver"]["command"], "--advertise-address=127.0.0.1"]
    assert here["jaeger"] == {"profiles": ["tracing"]}
    for name, service in here.items():
        if name not in ("loopback", "jaeger"):
            assert service["network_mode"] == "service:loopback", name


# --- docker-compose.production.yml: the same stack with the four-service Temporal on PostgreSQL and its UI ---

class ComposeLoader(yaml.SafeLoader):
    """compose's merge tags (!reset, !override), read as the value written."""


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(_tag, lambda loader, node: (
        loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node) if isinstance(node, yaml.MappingNode)
        else loader.construct_scalar(node)))

TEMPORAL_DIR = REPO / "deploy" / "compose" / "temporal"
PRODUCTION = yaml.load((REPO / "docker-compose.production.yml").read_text(), Loader=ComposeLoader)["services"]
CLUSTER = {"frontend": "temporal-frontend", "history": "temporal-history", "matching": "temporal-matching",
           "worker": "temporal-worker"}  # Temporal service → compose service


def server_config() -> dict:
    """deploy/compose/temporal/server.yaml with its template expressions as placeholders."""
    text = (TEMPORAL_DIR / "server.yaml").read_text()
    assert text.startswith("# enable-template")  # else the server reads {{ … }} literally
    return yaml.safe_load(re.sub(r"\{\{[^}]*\}\}", "placeholder", text))


def test_production_runs_each_temporal_service_in_a_container_of_its_own():
    ports = server_config()["services"]
    metrics = set()
    for temporal_service, service in CLUSTER.items():
        assert PRODUCTION[service]["command"] == ["sh", "/etc/temporal/start.sh", temporal_service]
        assert PRODUCTION[service]["image"] == PRODUCTION["temporal-schema"]["image"]
        metrics.add(PRODUCTION[service]["environment"]["PROMETHEUS_ENDPOINT"])
        check = " ".join(PRODUCTION[service]["healthcheck"]["test"])
        assert str(ports[temporal_service]["rpc"]["grpcPort"]) in check, service
    assert len(metrics) == len(CLUSTER), "one metrics port per service (here they share one network namespace)"
    every_port = [p for rpc in (s["rpc"] for s in ports.values()) for k, p in rpc.items() if k.endswith("Port")]
    assert len(every_port) == len(set(every_port))
    assert not {int(m.rsplit(":", 1)[1]) for m in metrics} & set(every_port)
    assert PRODUCTION["temporal"] == {"profiles": ["dev-server"]}  # the dev server off


def test_production_addresses_name_the_frontend_and_postgres():
    config = server_config()
    frontend = f"{CLUSTER['frontend']}:{config['services']['frontend']['rpc']['grpcPort']}"
    for service in ("worker", "bridge"):
        assert PRODUCTION[service]["environment"]["TEMPORAL_ADDRESS"] == frontend
    assert PRODUCTION["temporal-setup"]["environment"]["TEMPORAL_ADDRESS"] == frontend
    assert config["clusterMetadata"]["clusterInformation"]["vmsnap"]["rpcAddress"] == frontend
    for store in config["persistence"]["datastores"].values():
        assert store["sql"]["connectAddr"] == "postgres:5432"
    assert "SQL_HOST=postgres SQL_PORT=5432" in (TEMPORAL_DIR / "setup-schema.sh").read_text()
    ui = yaml.safe_load((REPO / "deploy" / "compose" / "temporal-ui" / "config" / "production.yaml").read_text())
    assert ui["temporalGrpcAddress"] == frontend
    # the workflow links on the objects lead to this UI, as they do to the dev server's
    link = urlsplit(environment("worker")["TEMPORAL_UI_URL"])
    assert PRODUCTION["temporal-ui"]["ports"] == [f"{link.port}:{ui['port']}"]
    assert f"{link.port}:{link.port}" in SERVICES["temporal"]["ports"]


def test_production_namespace_job_creates_the_product_search_attributes():
    script = (TEMPORAL_DIR / "setup-namespace.sh").read_text()
    listed = re.search(r'^attributes="([^"]*)"', script, re.MULTILINE)
    assert listed is not None
    assert {f"{name}=Keyword" for name in listed.group(1).split()} == set(DEV_SERVER_SEARCH_ATTRIBUTES)
    namespace = PRODUCTION["temporal-setup"]["environment"]["TEMPORAL_NAMESPACE"]
    assert namespace == environment("worker")["TEMPORAL_NAMESPACE"]


def test_production_order_and_dependencies_resolve():
    services = {**SERVICES, **PRODUCTION}
    for name, service in PRODUCTION.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services and dependency != "temporal", f"{name} depends on {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no health check"
    # history alone first: on an empty database the services race for the cluster-metadata row
    assert PRODUCTION["temporal-history"]["depends_on"] == {
        "temporal-schema": {"condition": "service_completed_successfully"}}
    for service in ("temporal-matching", "temporal-frontend"):
        assert "temporal-history" in PRODUCTION[service]["depends_on"]
    for service in ("worker", "bridge"):
        assert PRODUCTION[service]["depends_on"]["temporal-setup"] == {"condition": "service_completed_successfully"}
    for name, service in PRODUCTION.items():
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build["context"]
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (REPO / context / dockerfile).is_file(), f"{name}: no {context}/{dockerfile}"


def test_the_production_override_for_this_machine_changes_only_what_it_says():
    here = yaml.load((REPO / "tests" / "deploy" / "compose_here" / "production.here.yml").read_text(),
                     Loader=ComposeLoader)["services"]
    assert set(here) - set(PRODUCTION) == {"loopback"}
    for name, service in here.items():
        if name in ("worker", "bridge"):  # compose.here.yml's already: only what they wait for
            assert set(service) == {"depends_on"}
        elif name != "loopback":
            assert service["network_mode"] == "service:loopback", name
        assert "command" not in service and "healthcheck" not in service, name
        assert set(service.get("environment") or {}) <= {"TEMPORAL_BROADCAST_ADDRESS"}, name
