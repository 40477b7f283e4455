"""tests/pods/overlay (the deployment on the test bed's one-node cluster) changes only what that cluster needs:
the worker's drain still fits in the kubelet's grace period, no pod holds a fixed host port, the probes check the
declared paths (the bridge's readiness, the webhook's own in the base, its port listening in the pod's process),
and every variable it sets is one the product reads."""

from __future__ import annotations

import subprocess

import yaml

from runtime.settings import Settings
from tests.admission.kube_objects import KUBECTL
from tests.deploy.manifests import REPO, build, container, env, one, product_env_names
from tests.deploy.test_manifests import value

OVERLAY = REPO / "tests" / "pods" / "overlay"


def objects() -> list[dict]:
    done = subprocess.run([str(KUBECTL), "kustomize", str(OVERLAY)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_the_overlay_keeps_the_drain_inside_the_grace_period_and_holds_no_host_port():
    built = objects()
    worker = one(built, "Deployment", "vmsnap-worker")
    drain = float(value(worker, "VMSNAP_GRACEFUL_SHUTDOWN_SECONDS",
                        Settings.model_fields["graceful_shutdown_seconds"].default))
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain
    standalone = one(build("standalone"), "Deployment", "vmsnap-worker")
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == \
        standalone["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    for name in ("vmsnap-worker", "vmsnap-bridge"):
        deployment = one(built, "Deployment", name)
        assert deployment["spec"]["template"]["spec"]["hostNetwork"] is True
        c = container(deployment)
        assert "ports" not in c and value(deployment, "VMSNAP_HEALTH_PORT", None) == "0"
        assert [c[p]["exec"]["command"][-1] for p in ("startupProbe", "livenessProbe")] == ["/healthz", "/healthz"]
        ready = c["readinessProbe"]["exec"]["command"][-1]
        if name == "vmsnap-worker":
            assert ready == "/readyz"
        else:  # the base's is the webhook's own: here, the webhook's port listening in this pod's process
            assert container(one(build("standalone"), "Deployment", name))["readinessProbe"]["httpGet"]["port"] == \
                "webhook"
            assert "VMSNAP_WEBHOOK_PORT" in ready and "/proc/1/fd" in ready, ready
        assert set(env(deployment)) - product_env_names() == set()
    assert not [o for o in built if o["apiVersion"].startswith("cert-manager.io/")]


def test_no_service_link_variables_shadow_the_products_settings():
    # Service vmsnap-webhook would set VMSNAP_WEBHOOK_PORT=tcp://…:443 in every pod of the namespace (found on the
    # test bed's kubelet: the worker, which does not set that variable itself, failed to start)
    for overlay in ("standalone", "production"):
        for name in ("vmsnap-worker", "vmsnap-bridge"):
            assert one(build(overlay), "Deployment", name)["spec"]["template"]["spec"]["enableServiceLinks"] is False
